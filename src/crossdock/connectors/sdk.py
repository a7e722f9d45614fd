"""The connector SDK: what an adapter for a sales channel implements, and the canonical shapes it
speaks in. Crossdock's core never sees a channel's own payloads; a connector turns them into these.

A channel connector, for one configured channel (`Channel.config` holds its credentials):
- verifies an inbound webhook with the channel's own signature scheme (`verify`) and turns it into
  canonical orders, cancellations and refunds (`parse`), naming the channel's event id (repeats are
  dropped) and when the change happened (older news about an order than what was seen is dropped);
- pushes sellable quantities in bulk (`push`), at most `max_batch` per call, and reads the
  channel's current quantities back (`read`) for reconciliation;
- optionally, for a channel without webhooks, polls orders (`PollingChannel`); for a channel whose
  webhooks only name what changed, fetches the orders they name (`FetchingChannel`).

Connectors are found through the `crossdock.connectors` entry-point group (`connectors.registry`):
a package adds a channel type without touching Crossdock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

import httpx

from crossdock.domain.catalog import Channel
from crossdock.domain.order import ShipTo


class SignatureError(Exception):
    """The webhook is not signed by the channel (or the signature is stale): refuse it, 401."""


class PayloadError(Exception):
    """The webhook is signed but says something Crossdock cannot take (the message says why)."""


class ConfigError(Exception):
    """The channel's `config` lacks what the connector needs (the message names it)."""


class ChannelError(Exception):
    """A channel's API refused or failed a call. `retry_after`: seconds the channel asked to wait;
    `permanent`: retrying the same call cannot succeed (bad credentials, unknown item)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class RawWebhook:
    """A webhook as it arrived: the URL the channel called, headers with lower-case names, the
    body byte for byte (signatures are over the exact bytes)."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    """An order as Crossdock takes it in. `node_id`: the node it was sold at in person (a store's
    point of sale): its stock leaves that node and no routing happens."""

    external_id: str
    lines: tuple[Line, ...]
    ship_to: ShipTo
    deliver_by: datetime | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cancellation:
    external_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Refund:
    """Money given back for (some of) an order. `restock`: lines that go back on the shelf."""

    external_id: str
    refund_id: str
    restock: tuple[Line, ...] = ()


@dataclass(frozen=True, slots=True)
class Inbound:
    """What one webhook says. `event_id`: the channel's id of this delivery (a repeat is dropped);
    `occurred_at`: when the channel says the change happened (a change older than one already
    taken for the same order is dropped); `ignored`: why nothing is taken (a ping, an unused topic)."""

    topic: str
    event_id: str | None = None
    occurred_at: datetime | None = None
    orders: tuple[ChannelOrder, ...] = ()
    cancellations: tuple[Cancellation, ...] = ()
    refunds: tuple[Refund, ...] = ()
    ignored: str | None = None
    # A thin webhook names what changed without saying it: the channel's ids of the orders to fetch
    # (`FetchingChannel.fetch`) before anything is taken in.
    to_fetch: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuantityUpdate:
    """A SKU's sellable quantity for the channel. `sequence` grows with every change of the SKU: a
    connector that sees an older one after a newer one drops it."""

    sku: str
    available: int
    sequence: int


@dataclass(frozen=True, slots=True)
class PendingFeed:
    """A bulk push the channel took but applies later (an Amazon feed, a Meta batch): `feed_id` is
    the channel's id for it, `updates` the quantities it sets."""

    feed_id: str
    updates: tuple[QuantityUpdate, ...]


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: SKUs the channel took, SKUs it refused for good (with why), and the feeds
    it is still working on (their SKUs are neither accepted nor refused yet)."""

    accepted: tuple[str, ...] = ()
    rejected: Mapping[str, str] = field(default_factory=dict)
    pending: tuple[PendingFeed, ...] = ()


FEED_PENDING, FEED_DONE, FEED_FAILED = "pending", "done", "failed"


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """Where a pending feed stands. `pending`: still being worked on; `done`: applied, except the
    SKUs in `rejected` (with why); `failed`: the channel gave up on the whole feed (`error` says
    why), so none of it can be taken as applied and its SKUs are pushed again."""

    feed_id: str
    status: str  # FEED_PENDING, FEED_DONE or FEED_FAILED
    rejected: Mapping[str, str] = field(default_factory=dict)
    error: str = ""


@runtime_checkable
class FeedChannel(Protocol):
    """A channel whose bulk pushes finish later (`PushResult.pending`): Crossdock asks how they ended."""

    async def settle(self, feeds: Sequence[PendingFeed]) -> list[FeedOutcome]:
        """One outcome per feed; ChannelError when the channel cannot be asked now."""


@runtime_checkable
class ChannelConnector(Protocol):
    kind: ClassVar[str]  # the channel type it serves: "shopify", "woocommerce", ...
    max_batch: ClassVar[int]  # most quantity updates in one push call

    def __init__(self, channel: Channel, http: httpx.AsyncClient) -> None: ...

    def verify(self, webhook: RawWebhook) -> None:
        """Raises SignatureError unless the channel signed this webhook."""

    def parse(self, webhook: RawWebhook) -> Inbound:
        """The webhook's meaning; raises PayloadError with a reason when it cannot be taken."""

    async def push(self, updates: Sequence[QuantityUpdate]) -> PushResult:
        """Sets these sellable quantities at the channel; raises ChannelError when the call fails."""

    async def read(self, skus: Sequence[str]) -> dict[str, int]:
        """The quantities the channel shows now for these SKUs (those it knows)."""


@runtime_checkable
class PollingChannel(Protocol):
    """A channel without order webhooks: Crossdock asks for what changed since `cursor`."""

    async def poll_orders(self, cursor: str | None) -> tuple[Sequence[Inbound], str]:
        """Orders changed since `cursor` (None: from the start), and the cursor to resume from."""


@runtime_checkable
class FetchingChannel(Protocol):
    """A channel whose webhooks only name the orders that changed (BigCommerce, Square)."""

    async def fetch(self, inbound: Inbound) -> Inbound:
        """`inbound` with the orders, cancellations and refunds of `inbound.to_fetch` filled in from
        the channel's API (and `to_fetch` emptied); ChannelError when the API fails."""


@dataclass(frozen=True, slots=True)
class Parcel:
    """What is to be shipped: one parcel from a node to a destination."""

    from_postal_code: str
    from_country: str
    to_postal_code: str
    to_country: str
    weight_grams: int


@dataclass(frozen=True, slots=True)
class Rate:
    """A carrier's price and transit time for a parcel by one of its services."""

    carrier: str
    service: str
    price: float
    currency: str
    transit_days: int | None


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    """A carrier's news about a parcel (from its tracking webhook or API)."""

    carrier: str
    tracking_number: str
    status: str  # pre_transit, in_transit, out_for_delivery, delivered, returned, failure, unknown
    occurred_at: datetime | None
    event_id: str | None = None
    estimated_delivery: datetime | None = None


@runtime_checkable
class CarrierConnector(Protocol):
    """A carrier or a carrier aggregator: rates for a parcel, tracking news in."""

    kind: ClassVar[str]

    async def rates(self, parcel: Parcel) -> list[Rate]:
        """The services that can carry the parcel, with price and transit days; ChannelError when
        the carrier's API fails."""

    def verify(self, webhook: RawWebhook) -> None:
        """Raises SignatureError unless the carrier signed this tracking webhook."""

    def tracking(self, webhook: RawWebhook) -> list[TrackingUpdate]:
        """The tracking news in a webhook; PayloadError when it cannot be read."""


@dataclass(frozen=True, slots=True)
class FulfilmentRequest:
    """Ask a node (a WMS or 3PL) to ship what an order holds there. `request_id` is the same for a
    retry of the same request, so the node can drop repeats."""

    request_id: str
    order_id: str
    node_id: str
    lines: tuple[Line, ...]
    ship_to: ShipTo
    carrier: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class FulfilmentCancel:
    """Take back a fulfilment request the node took: the order was cancelled. `cancel_id` is the same
    on every retry (its Idempotency-Key); `reference` is the node's own id for the request (what
    `send` returned)."""

    cancel_id: str
    request_id: str
    reference: str
    order_id: str
    node_id: str
    reason: str = ""


class CancelRefused(ChannelError):
    """The node cannot cancel the request any more (picked, packed or shipped): final, not retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True, slots=True)
class ShipmentNotice:
    """A node shipped (some of) an order."""

    order_id: str
    lines: tuple[Line, ...]
    carrier: str
    tracking_number: str


@dataclass(frozen=True, slots=True)
class StockCount:
    """What a node counted on its shelf for a SKU."""

    sku: str
    on_hand: int


@dataclass(frozen=True, slots=True)
class NodeInbound:
    """What one webhook from a node says. `event_id`: a repeat is dropped."""

    topic: str
    event_id: str | None = None
    occurred_at: datetime | None = None
    shipments: tuple[ShipmentNotice, ...] = ()
    counts: tuple[StockCount, ...] = ()
    tracking: tuple[TrackingUpdate, ...] = ()
    ignored: str | None = None


@runtime_checkable
class NodeConnector(Protocol):
    """A warehouse system or 3PL behind a node: fulfilment requests out, shipments, tracking and
    stock counts in. `config` is the node's connector settings (`Node.config`)."""

    kind: ClassVar[str]

    def __init__(self, node_id: str, config: Mapping[str, object], http: httpx.AsyncClient) -> None: ...

    async def send(self, request: FulfilmentRequest) -> str:
        """Hands the request to the node; returns the node's reference for it. ChannelError when it
        failed (retried with the same request_id)."""

    def verify(self, webhook: RawWebhook) -> None:
        """Raises SignatureError unless the node signed this webhook."""

    def parse(self, webhook: RawWebhook) -> NodeInbound:
        """The webhook's meaning; PayloadError with a reason when it cannot be taken."""


@runtime_checkable
class CancellableNode(Protocol):
    """A node connector that can take a request back. Optional, so that node connectors written
    before cancellations existed keep working: a cancellation for a node whose connector lacks it
    is recorded as refused."""

    async def cancel(self, request: FulfilmentCancel) -> None:
        """Cancels the request at the node; the same `cancel_id` on every retry. CancelRefused when
        the node can no longer cancel it (already shipped), ChannelError when the call failed."""


def config_text(channel: Channel, key: str) -> str:
    """A required text setting of the channel's `config`."""
    value = channel.config.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"channel {channel.channel_id!r} has no {key!r} in its config")
    return value


# Here rather than at the top: added with the feed connectors, and routing's model imports nothing back.
from crossdock.routing.disruptions import Disruption  # noqa: E402


@runtime_checkable
class FeedConnector(Protocol):
    """A feed of disruptions (weather alerts, say): what it lists now, as disruptions for routing.
    `config` holds its settings (`api_url`, a User-Agent, the areas to watch...)."""

    kind: ClassVar[str]

    def __init__(self, config: Mapping[str, object], http: httpx.AsyncClient) -> None: ...

    async def disruptions(self) -> list[Disruption]:
        """Every disruption the feed lists now, with cancelled and superseded ones left out.
        ChannelError when the feed's API fails, PayloadError when its answer cannot be read."""
