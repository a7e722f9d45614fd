"""The event catalog: every event type Crossdock publishes, what it means and the JSON Schema of its
`data`. The AsyncAPI document (`events.asyncapi`) and the conformance tests are built from this.

Schemas are JSON Schema draft-07 (the AsyncAPI 3 default schema format). They stay open: a consumer
must ignore fields it does not know, since new fields are added within a version (`.v1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crossdock.domain import events as ev
from crossdock.domain.order import OrderStatus
from crossdock.domain.position import Reason
from crossdock.domain.reservation import HoldStatus
from crossdock.domain.transfer import TransferStatus
from crossdock.events.envelope import SOURCE, SPEC_VERSION

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str  # crossdock.<aggregate>.<what>.v1
    title: str
    description: str
    subject: str  # the field of `data` that the CloudEvent's `subject` equals
    data: Schema
    emitted: bool = True  # False: the type is reserved, nothing publishes it yet

    @property
    def aggregate(self) -> str:
        return self.type.split(".")[1]

    @property
    def what(self) -> str:
        return self.type.split(".")[2]

    @property
    def name(self) -> str:
        """`<aggregate>_<what>`: a key for AsyncAPI components and channels."""
        return f"{self.aggregate}_{self.what}"


# -- building blocks ------------------------------------------------------------------------------


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None, **extra: Any) -> Schema:
    return {"type": "object", "required": list(required), "properties": required | (optional or {}), **extra}


def _text(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _count(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "description": description}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


TIME = _text("RFC 3339 UTC time", format="date-time")
SKU = _text("The SKU", minLength=1)
NODE = _text("The node the stock sits at", minLength=1)
REASON = _text("Why the stock moved", enum=[str(r) for r in Reason])
REFERENCE = _text("What moved it: an order, reservation or transfer id, or the reference given with an adjustment")
QUANTITIES = _obj(
    {
        "on_hand": _count("Units physically at the node"),
        "reserved": _count("Units held for orders and checkouts"),
        "safety_stock": _count("Units kept back from selling"),
        "damaged": _count("Units that cannot be sold"),
        "inbound": _count("Units on their way to the node"),
        "available": _count("on_hand - reserved - safety_stock - damaged, never below 0"),
    },
    description="A position: the stock of one SKU at one node",
)
PICK = _obj({"node_id": NODE, "sku": SKU, "quantity": _count("Units")})

ORDER: Schema = _obj(
    {
        "order_id": _text("Crossdock's order id (the subject)"),
        "channel_id": _text("The channel the order came from"),
        "external_id": _text("The channel's own order id"),
        "status": _text("The order's status after the change", enum=[str(s) for s in OrderStatus]),
        "lines": {
            "type": "array",
            "items": _obj(
                {
                    "sku": SKU,
                    "quantity": _count("Units ordered"),
                    "allocated": _count("Units held at a node, not yet shipped"),
                    "shipped": _count("Units shipped"),
                    "cancelled": _count("Units cancelled"),
                    "backordered": _count("Units waiting for stock"),
                },
                {"group": _text("Keep-together group: lines of a group ship from one node")},
            ),
        },
        "allocations": {
            "type": "array",
            "description": "Where the order ships from, by node",
            "items": _obj(
                {
                    "node_id": NODE,
                    "lines": {
                        "type": "array",
                        "items": _obj(
                            {"sku": SKU, "quantity": _count("Units held"), "shipped": _count("Units shipped")}
                        ),
                    },
                    "carrier": _nullable(_text("Carrier chosen, if any")),
                    "service": _nullable(_text("Carrier service chosen, if any")),
                    "cost": _nullable({"type": "number", "description": "Estimated cost of shipping from here"}),
                }
            ),
        },
        "ship_to": _obj(
            {
                "postal_code": _text("Postal code"),
                "country": _text("ISO 3166-1 alpha-2 country"),
                "lat": _nullable({"type": "number"}),
                "lon": _nullable({"type": "number"}),
            }
        ),
        "deliver_by": _nullable(TIME),
        "created_at": TIME,
    },
    description="The order after the change, as `GET /v1/orders/{order_id}` shows it",
)

RESERVATION: Schema = _obj(
    {
        "reservation_id": _text("The checkout hold's id (the subject)"),
        "channel_id": _text("The channel the checkout is on"),
        "status": _text("The hold's status after the change", enum=[str(s) for s in HoldStatus]),
        "expires_at": TIME,
        "order_id": _nullable(_text("The order the hold became, once committed")),
        "lines": {"type": "array", "items": _obj({"sku": SKU, "node_id": NODE, "quantity": _count("Units held")})},
    },
    description="The checkout hold after the change, as `GET /v1/reservations/{reservation_id}` shows it",
)


def _order(extra: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None) -> Schema:
    return _obj(ORDER["properties"] | (extra or {}), optional, description=ORDER["description"])


TRANSFER: Schema = _obj(
    {
        "transfer_id": _text("The transfer's id (the subject)"),
        "sku": SKU,
        "from_node_id": _text("Where the units come from", minLength=1),
        "to_node_id": _text("Where they go", minLength=1),
        "quantity": _count("Units proposed, and held at the source once approved"),
        "shipped": _count("Units that left the source"),
        "received": _count("Units that arrived at the destination"),
        "cost": {"type": "number", "description": "Estimated cost of the move"},
        "benefit": {"type": "number", "description": "Expected saving in lost sales and holding over the horizon"},
        "status": _text("The transfer's status after the change", enum=[str(s) for s in TransferStatus]),
        "plan_id": _text("The plan that proposed it"),
        "note": _text("Why it was approved, rejected, cancelled or expired (may be empty)"),
        "created_at": TIME,
        "expires_at": TIME,
    },
    description="The transfer after the change, as `GET /v1/transfers/{transfer_id}` shows it",
)


def _transfer(extra: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None) -> Schema:
    return _obj(TRANSFER["properties"] | (extra or {}), optional, description=TRANSFER["description"])


def _reservation() -> Schema:
    return _obj(RESERVATION["properties"], description=RESERVATION["description"])


# -- the envelope ---------------------------------------------------------------------------------

ENVELOPE: Schema = _obj(
    {
        "specversion": {"type": "string", "const": SPEC_VERSION},
        "id": _text(
            "The event id (a UUIDv7): the same on every delivery, over every transport. Deduplicate on it.",
            minLength=1,
        ),
        "source": _text(f"`{SOURCE}:<aggregate>`", format="uri-reference", minLength=1),
        "type": _text("`crossdock.<aggregate>.<what>.v1`", minLength=1),
        "subject": _text(
            "What changed: the SKU (inventory), the order id (order), the reservation id (reservation) or the"
            " transfer id (transfer)",
            minLength=1,
        ),
        "time": _text("When the change was committed (RFC 3339, UTC)", format="date-time", minLength=1),
        "datacontenttype": {"type": "string", "const": "application/json"},
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "description": "Extension attribute: increases with every event of the subject. Apply an event only"
            " if its sequence is above the last one applied for its subject; drop it otherwise.",
        },
        "data": {"type": "object"},
    },
    {
        "traceparent": _text(
            "Distributed tracing extension: the W3C trace context of the request that caused the change,"
            " when it carried one (also sent as the `traceparent` header of webhooks and NATS messages)"
        ),
        "tracestate": _text("Distributed tracing extension: the W3C `tracestate` that came with `traceparent`"),
    },
    description="A CloudEvents 1.0 event in structured JSON mode",
)


def event_schema(spec: EventSpec) -> Schema:
    """The whole CloudEvent of one type, self-contained (no `$ref`)."""
    return {
        "allOf": [
            ENVELOPE,
            {
                "properties": {
                    "type": {"const": spec.type},
                    "source": {"const": f"{SOURCE}:{spec.aggregate}"},
                    "data": spec.data,
                }
            },
        ]
    }


# -- the catalog ----------------------------------------------------------------------------------

SPECS = (
    EventSpec(
        ev.POSITION_CHANGED,
        "Position changed",
        "One ledger movement changed the stock of a SKU at a node: a receipt, count, damage, return,"
        " correction, checkout hold, allocation, release or shipment. One event per movement.",
        "sku",
        _obj(
            {
                "sku": SKU,
                "node_id": NODE,
                "reason": REASON,
                "reference": REFERENCE,
                "before": QUANTITIES,
                "after": QUANTITIES,
            }
        ),
    ),
    EventSpec(
        ev.ATS_CHANGED,
        "Sellable quantity changed",
        "A channel's available-to-sell quantity of a SKU changed: the sum of `available` over the channel's"
        " nodes, less its buffer. Sent once per channel per transaction, and only when the number differs.",
        "sku",
        _obj(
            {
                "sku": SKU,
                "channel_id": _text("The channel"),
                "before": _count("Available to sell before"),
                "after": _count("Available to sell now"),
            }
        ),
    ),
    EventSpec(
        ev.LOW_STOCK,
        "Low stock at a node",
        "A node's available quantity of a SKU fell from above the SKU's `low_stock_threshold` to at or below"
        " it (with the default threshold 0: the node ran out). Sent on the crossing only, not on every change"
        " while low; judged over a whole transaction. `reason` and `reference` name the movement that took it"
        " down.",
        "sku",
        _obj(
            {
                "sku": SKU,
                "node_id": NODE,
                "available": _count("Available at the node now"),
                "threshold": _count("The SKU's low-stock threshold"),
                "reason": REASON,
                "reference": REFERENCE,
            }
        ),
    ),
    EventSpec(
        ev.ORDER_RECEIVED,
        "Order received",
        "A channel's order was taken in (once per channel and external id), or a checkout hold became an"
        " order (then `reservation_id` names it). Allocation follows in the same transaction.",
        "order_id",
        _order(optional={"reservation_id": _text("The checkout hold the order came from")}),
    ),
    EventSpec(
        ev.ORDER_ALLOCATED,
        "Order allocated",
        "Units of the order were held at nodes: at intake, from a checkout hold, or when stock arrived for a"
        " backorder. `picks` are the units held by this change.",
        "order_id",
        _order({"picks": {"type": "array", "minItems": 1, "items": PICK}}),
    ),
    EventSpec(
        ev.ORDER_BACKORDERED,
        "Order backordered",
        "Some or all of the order waits for stock: it could not be fully allocated, or a recount took held"
        " units back (`deallocated`).",
        "order_id",
        _order(optional={"deallocated": PICK}),
    ),
    EventSpec(
        ev.ORDER_CANCELLED,
        "Order cancelled",
        "The order was cancelled; what it held is released. An order with shipped units ends `shipped`.",
        "order_id",
        _order({"reason": _text("Why, as given by the caller (may be empty)")}),
    ),
    EventSpec(
        ev.ORDER_SHIPPED,
        "Order shipped",
        "A shipment left a node: its units leave on_hand and the allocation.",
        "order_id",
        _order(
            {
                "shipment": _obj(
                    {
                        "node_id": NODE,
                        "carrier": _text("Carrier"),
                        "tracking_number": _text("Tracking number"),
                        "lines": {"type": "array", "items": _obj({"sku": SKU, "quantity": _count("Units")})},
                    }
                )
            }
        ),
    ),
    EventSpec(
        ev.ORDER_TRACKING_UPDATED,
        "Shipment tracking updated",
        "A carrier (or the node's warehouse system) reported news about one of the order's shipments,"
        " newer than what the shipment showed.",
        "order_id",
        _order(
            {
                "tracking": _obj(
                    {
                        "shipment_id": _text("The shipment"),
                        "carrier": _text("Carrier named in the news"),
                        "tracking_number": _text("Tracking number"),
                        "status": _text(
                            "Where the parcel is",
                            enum=[
                                "pre_transit",
                                "in_transit",
                                "out_for_delivery",
                                "delivered",
                                "returned",
                                "failure",
                                "unknown",
                            ],
                        ),
                        "occurred_at": _text("When the carrier saw it (RFC 3339)", format="date-time"),
                    },
                    {"estimated_delivery": {"type": ["string", "null"], "format": "date-time"}},
                )
            }
        ),
    ),
    EventSpec(
        ev.RESERVATION_CREATED,
        "Checkout hold created",
        "Stock was held for a storefront checkout until `expires_at`.",
        "reservation_id",
        _reservation(),
    ),
    EventSpec(
        ev.RESERVATION_RELEASED,
        "Checkout hold released",
        "The checkout was abandoned, or a recount found less stock than held: the units are free again.",
        "reservation_id",
        _reservation(),
    ),
    EventSpec(
        ev.RESERVATION_EXPIRED,
        "Checkout hold expired",
        "The hold passed `expires_at` without being committed: the units are free again.",
        "reservation_id",
        _reservation(),
    ),
    EventSpec(
        ev.RESERVATION_COMMITTED,
        "Checkout hold committed",
        "The checkout completed: the held units became the allocation of order `order_id`.",
        "reservation_id",
        _reservation(),
    ),
    EventSpec(
        ev.TRANSFER_RECOMMENDED,
        "Transfer recommended",
        "A rebalancing plan (`POST /v1/transfers/plan`) proposes moving units of a SKU from one node to"
        " another before they are needed there: `benefit` is the expected saving in lost sales and holding"
        " over lead time plus review period, `cost` what the move costs. A proposal holds no stock; it waits"
        " for approval until `expires_at`. One event per proposed transfer, in the plan's transaction.",
        "transfer_id",
        _transfer(),
    ),
    EventSpec(
        ev.TRANSFER_APPROVED,
        "Transfer approved",
        "A person, or the auto-approval policy (`note` says so), approved a proposal: the units are reserved"
        " at the source and inbound at the destination. `ship_to` is the destination's address, for the"
        " source's warehouse system.",
        "transfer_id",
        _transfer(optional={"ship_to": _obj({"postal_code": _text("Postal code"), "country": _text("Country")})}),
    ),
    EventSpec(
        ev.TRANSFER_REJECTED,
        "Transfer rejected",
        "A proposal was turned down (`note` says why, if given). No stock changed.",
        "transfer_id",
        _transfer(),
    ),
    EventSpec(
        ev.TRANSFER_EXPIRED,
        "Transfer expired",
        "A proposal was not approved by `expires_at`, or a newer plan over its SKU and nodes replaced it"
        " (`note` says which). No stock changed.",
        "transfer_id",
        _transfer(),
    ),
    EventSpec(
        ev.TRANSFER_CANCELLED,
        "Transfer cancelled",
        "A proposal or an approved transfer not yet shipped was called off; an approval's units are free"
        " again at the source and no longer inbound at the destination.",
        "transfer_id",
        _transfer(),
    ),
    EventSpec(
        ev.TRANSFER_SHIPPED,
        "Transfer shipped",
        "`shipped` units left the source (off its on hand); any approved units not shipped are free again"
        " there. They stay inbound at the destination until received.",
        "transfer_id",
        _transfer(),
    ),
    EventSpec(
        ev.TRANSFER_RECEIVED,
        "Transfer received",
        "`received` units arrived and are on hand at the destination; `short` units shipped but not"
        " received are written off its inbound (reason `transfer_short`).",
        "transfer_id",
        _transfer({"short": _count("Units shipped that did not arrive")}),
    ),
)

CATALOG: dict[str, EventSpec] = {spec.type: spec for spec in SPECS}

if set(CATALOG) != ev.EVENT_TYPES:  # one description per type, no more, no less
    raise RuntimeError(f"event catalog and EVENT_TYPES differ: {sorted(set(CATALOG) ^ ev.EVENT_TYPES)}")
