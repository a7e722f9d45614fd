"""Bad input over HTTP, on both databases: every refusal is an RFC 9457 problem that says what is
wrong, carries a Request-Id, is documented in the OpenAPI document, and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from crossdock.store.database import open_database
from tests.world import LA, NYC, order, seed

PROBLEM = "application/problem+json"
TYPE_BASE = "https://crossdock.dev/problems/"
ONE_MIB = 1 << 20
SKUS = ("TEE", "MUG")
TABLES = (
    "skus",
    "nodes",
    "channels",
    "positions",
    "movements",
    "orders",
    "order_lines",
    "allocations",
    "order_history",
    "holds",
    "hold_lines",
    "outbox",
    "idempotency_keys",
)

Snapshot = dict[str, Any]


# -- what "changes nothing" means --------------------------------------------------------------------


def _read_state(uow: Any) -> Snapshot:
    out: Snapshot = {t: int(uow.one(f"SELECT COUNT(*) FROM {t}")[0]) for t in TABLES}
    queries = {
        "position rows": "SELECT sku, node_id, on_hand, reserved, safety_stock, damaged, inbound FROM positions"
        " ORDER BY sku, node_id",
        "order rows": "SELECT order_id, status, seq FROM orders ORDER BY order_id",
        "line rows": "SELECT order_id, line_no, allocated, shipped, cancelled FROM order_lines"
        " ORDER BY order_id, line_no",
        "allocation rows": "SELECT order_id, node_id, sku, quantity, shipped FROM allocations"
        " ORDER BY order_id, node_id, sku",
        "hold rows": "SELECT reservation_id, status, seq FROM holds ORDER BY reservation_id",
        "sku rows": "SELECT sku, name, weight_grams, seq FROM skus ORDER BY sku",
        "catalog version": "SELECT version FROM catalog_version",
    }
    for name, sql in queries.items():
        out[name] = [tuple(r) for r in uow.all(sql)]
    return out


@pytest.fixture
def snapshot(http: httpx.Client, database_url: str) -> Iterator[Callable[[], Snapshot]]:
    """The state as the API shows it (inventory, reconciliation) and as the database holds it."""
    db = open_database(database_url, writers=1)

    def take() -> Snapshot:
        state = db.read(_read_state)
        for sku in SKUS:
            r = http.get(f"/v1/inventory/{sku}")
            assert r.status_code == 200, r.text
            state[f"inventory {sku}"] = r.json()
        reconciliation = http.get("/v1/admin/reconciliation").json()
        assert reconciliation["ok"] is True, reconciliation
        return state

    yield take
    db.close()


@pytest.fixture
def spec(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


# -- checks -----------------------------------------------------------------------------------------


def assert_problem(r: httpx.Response, status: int, kind: str, mentions: tuple[str, ...] = ()) -> dict[str, Any]:
    where = f"{r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:500]}"
    assert r.status_code == status, where
    assert r.headers["content-type"].split(";")[0].strip() == PROBLEM, where
    assert r.headers.get("request-id"), f"no Request-Id: {where}"
    body: dict[str, Any] = r.json()
    assert body["type"] == TYPE_BASE + kind, where
    assert isinstance(body["title"], str) and body["title"], where
    assert body["status"] == status == r.status_code, where
    assert isinstance(body["detail"], str) and body["detail"], where
    for word in mentions:
        assert word.lower() in body["detail"].lower(), f"detail should mention {word!r}: {where}"
    return body


def assert_documented(spec: dict[str, Any], method: str, path: str, status: int) -> None:
    """The operation's OpenAPI entry lists this status as a problem+json answer."""
    operation = spec["paths"][path][method.lower()]
    answer = operation["responses"].get(str(status))
    assert answer is not None, f"{method} {path} does not document {status}: {sorted(operation['responses'])}"
    assert_problem_content(answer, f"{method} {path} {status}")


def assert_problem_content(answer: dict[str, Any], where: str) -> None:
    content = answer.get("content", {})
    assert set(content) == {PROBLEM}, f"{where}: problems are {PROBLEM}, documented as {sorted(content)}"
    assert content[PROBLEM].get("schema") == {"$ref": "#/components/schemas/Problem"}, f"{where}: {content}"


# -- the world --------------------------------------------------------------------------------------


@dataclass
class World:
    shipped_order: str
    allocated_order: str  # 1 MUG held at wh-east
    released_hold: str
    expired_hold: str
    active_hold: str


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def build_world(http: httpx.Client) -> World:
    seed(http, {"TEE": {"wh-east": 5, "wh-west": 5}, "MUG": {"wh-east": 3}})
    shipped = _ok(http.post("/v1/orders", json=order("S-1", {"TEE": 1}, ship_to=NYC)), 201)
    node = shipped["allocations"][0]["node_id"]
    shipment = {"node_id": node, "lines": [{"sku": "TEE", "quantity": 1}], "carrier": "ups", "tracking_number": "1Z1"}
    assert _ok(http.post(f"/v1/orders/{shipped['order_id']}/shipments", json=shipment), 201)["status"] == "shipped"
    allocated = _ok(http.post("/v1/orders", json=order("A-1", {"MUG": 1}, ship_to=NYC)), 201)
    assert allocated["status"] == "allocated" and allocated["allocations"][0]["node_id"] == "wh-east"
    hold = {"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}], "ttl_seconds": 900}
    released = _ok(http.post("/v1/reservations", json=hold), 201)["reservation_id"]
    _ok(http.post(f"/v1/reservations/{released}/release"))
    expired = _ok(http.post("/v1/reservations", json=hold | {"ttl_seconds": 1}), 201)["reservation_id"]
    active = _ok(http.post("/v1/reservations", json=hold | {"lines": [{"sku": "MUG", "quantity": 1}]}), 201)
    deadline = time.monotonic() + 15
    while _ok(http.get(f"/v1/reservations/{expired}"))["status"] != "expired":  # the sweeper's work
        assert time.monotonic() < deadline, "the hold sweeper did not expire a 1 s hold"
        time.sleep(0.1)
    return World(shipped["order_id"], allocated["order_id"], released, expired, active["reservation_id"])


def _order(**changes: Any) -> dict[str, Any]:
    body = order("NEW-1", {"TEE": 1}, ship_to=LA)
    return body | changes


def _line(**changes: Any) -> dict[str, Any]:
    return _order(lines=[{"sku": "TEE", "quantity": 1} | changes])


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _adjust(*items: dict[str, Any]) -> dict[str, Any]:
    return {"adjustments": list(items)}


def _adj(**changes: Any) -> dict[str, Any]:
    base = {"sku": "TEE", "node_id": "wh-east", "delta": 1, "reason": "receipt"}
    return {k: v for k, v in (base | changes).items() if v is not None}


def _hold(**changes: Any) -> dict[str, Any]:
    return {"channel_id": "web", "lines": [{"sku": "TEE", "quantity": 1}], "ttl_seconds": 60} | changes


def _ship(**changes: Any) -> dict[str, Any]:
    base = {"node_id": "wh-east", "lines": [{"sku": "MUG", "quantity": 1}], "carrier": "ups", "tracking_number": "1Z"}
    return {k: v for k, v in (base | changes).items() if v is not None}


COMMIT = {"external_id": "C-1", "ship_to": NYC}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    route: str  # the OpenAPI path template
    path: Callable[[World], str]
    status: int
    kind: str
    json: Any = None
    content: bytes | None = None
    mentions: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


def fixed(path: str) -> Callable[[World], str]:
    return lambda _: path


ORDERS, ADJUSTMENTS, RESERVATIONS = fixed("/v1/orders"), fixed("/v1/inventory/adjustments"), fixed("/v1/reservations")

CASES = (
    # -- orders: unknown references, quantities, types, fields
    Case("order: unknown SKU", "POST", "/v1/orders", ORDERS, 422, "unknown-reference",
         _order(lines=[{"sku": "TEE", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]), mentions=("NOPE",)),
    Case("order: unknown channel", "POST", "/v1/orders", ORDERS, 422, "unknown-reference",
         _order(channel_id="ebay"), mentions=("ebay",)),
    Case("order: zero quantity", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(quantity=0), mentions=("quantity",)),
    Case("order: negative quantity", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(quantity=-2), mentions=("quantity",)),
    Case("order: fractional quantity", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(quantity=1.5), mentions=("quantity",)),
    Case("order: quantity as a string", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(quantity="2"), mentions=("quantity",)),
    Case("order: list where an int goes", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(quantity=[1]), mentions=("quantity",)),
    Case("order: string where an object goes", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _order(ship_to="10001"), mentions=("ship_to",)),
    Case("order: object where a list goes", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _order(lines={"sku": "TEE", "quantity": 1}), mentions=("lines",)),
    Case("order: a list as the body", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         [_order()], mentions=("object",)),
    Case("order: no external_id", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _without(_order(), "external_id"), mentions=("external_id",)),
    Case("order: no ship_to", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _without(_order(), "ship_to"), mentions=("ship_to",)),
    Case("order: no lines", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _order(lines=[]), mentions=("lines",)),
    Case("order: unknown field", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _order(coupon="FREE"), mentions=("coupon",)),
    Case("order: unknown field in a line", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _line(price=9.99), mentions=("price",)),
    Case("order: the same SKU twice", "POST", "/v1/orders", ORDERS, 422, "validation-error",
         _order(lines=[{"sku": "TEE", "quantity": 1}, {"sku": "TEE", "quantity": 2}]), mentions=("TEE", "twice")),
    Case("order: malformed JSON", "POST", "/v1/orders", ORDERS, 400, "malformed-json",
         content=b'{"channel_id": "web", "lines": [', mentions=("JSON",)),
    Case("order: overlong Idempotency-Key", "POST", "/v1/orders", ORDERS, 422, "invalid-request",
         _order(), mentions=("Idempotency-Key",), headers={"Idempotency-Key": "k" * 300}),
    # -- stock adjustments
    Case("adjust: unknown node", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "unknown-reference",
         _adjust(_adj(node_id="wh-moon")), mentions=("wh-moon",)),
    Case("adjust: unknown SKU", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "unknown-reference",
         _adjust(_adj(sku="NOPE")), mentions=("NOPE",)),
    Case("adjust: a good change, then an unknown node", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "unknown-reference", _adjust(_adj(delta=7), _adj(node_id="wh-moon")), mentions=("wh-moon",)),
    Case("adjust: a good change, then a negative count", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "invalid-request", _adjust(_adj(delta=7), _adj(sku="MUG", delta=-100)), mentions=("MUG", "on_hand")),
    Case("adjust: zero delta", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(delta=0)), mentions=("delta",)),
    Case("adjust: fractional delta", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(delta=1.5)), mentions=("delta",)),
    Case("adjust: delta as a string", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(delta="2")), mentions=("delta",)),
    Case("adjust: negative count", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(delta=None, set_on_hand=-1)), mentions=("set_on_hand",)),
    Case("adjust: both a delta and a count", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "validation-error", _adjust(_adj(set_on_hand=3)), mentions=("delta", "set_on_hand")),
    Case("adjust: neither a delta nor a count", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "validation-error", _adjust(_adj(delta=None)), mentions=("delta",)),
    Case("adjust: unknown reason", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(reason="theft")), mentions=("reason",)),
    Case("adjust: reserved is not adjustable", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "validation-error", _adjust(_adj(quantity_name="reserved")), mentions=("quantity_name",)),
    Case("adjust: no reason", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(reason=None)), mentions=("reason",)),
    Case("adjust: unknown field", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(_adj(location="A-3")), mentions=("location",)),
    Case("adjust: object where a list goes", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422,
         "validation-error", {"adjustments": _adj()}, mentions=("adjustments",)),
    Case("adjust: empty batch", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "validation-error",
         _adjust(), mentions=("adjustments",)),
    Case("adjust: below zero", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 422, "invalid-request",
         _adjust(_adj(delta=-100)), mentions=("TEE", "on_hand")),
    Case("adjust: compare-and-set finds another count", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 409,
         "compare-failed", _adjust(_adj(delta=None, set_on_hand=10, compare_quantity=99)), mentions=("is 4", "99")),
    Case("adjust: malformed JSON", "POST", "/v1/inventory/adjustments", ADJUSTMENTS, 400, "malformed-json",
         content=b'{"adjustments": [{"sku": "TEE",,}]}', mentions=("JSON",)),
    # -- checkout holds
    Case("hold: unknown SKU", "POST", "/v1/reservations", RESERVATIONS, 422, "unknown-reference",
         _hold(lines=[{"sku": "NOPE", "quantity": 1}]), mentions=("NOPE",)),
    Case("hold: unknown channel", "POST", "/v1/reservations", RESERVATIONS, 422, "unknown-reference",
         _hold(channel_id="ebay"), mentions=("ebay",)),
    Case("hold: more than there is", "POST", "/v1/reservations", RESERVATIONS, 409, "insufficient-stock",
         _hold(lines=[{"sku": "TEE", "quantity": 1}, {"sku": "MUG", "quantity": 50}]), mentions=("MUG",)),
    Case("hold: zero quantity", "POST", "/v1/reservations", RESERVATIONS, 422, "validation-error",
         _hold(lines=[{"sku": "TEE", "quantity": 0}]), mentions=("quantity",)),
    Case("hold: zero ttl", "POST", "/v1/reservations", RESERVATIONS, 422, "validation-error",
         _hold(ttl_seconds=0), mentions=("ttl_seconds",)),
    Case("hold: ttl as a string", "POST", "/v1/reservations", RESERVATIONS, 422, "validation-error",
         _hold(ttl_seconds="60"), mentions=("ttl_seconds",)),
    Case("hold: the same SKU twice", "POST", "/v1/reservations", RESERVATIONS, 422, "validation-error",
         _hold(lines=[{"sku": "TEE", "quantity": 1}, {"sku": "TEE", "quantity": 1}]), mentions=("TEE",)),
    Case("hold: malformed JSON", "POST", "/v1/reservations", RESERVATIONS, 400, "malformed-json",
         content=b"channel_id=web", mentions=("JSON",)),
    Case("commit: a released hold", "POST", "/v1/reservations/{reservation_id}/commit",
         lambda w: f"/v1/reservations/{w.released_hold}/commit", 409, "invalid-state", COMMIT, mentions=("released",)),
    Case("commit: an expired hold", "POST", "/v1/reservations/{reservation_id}/commit",
         lambda w: f"/v1/reservations/{w.expired_hold}/commit", 409, "invalid-state", COMMIT, mentions=("expired",)),
    Case("commit: an unknown hold", "POST", "/v1/reservations/{reservation_id}/commit",
         fixed("/v1/reservations/res_nope/commit"), 404, "not-found", COMMIT, mentions=("res_nope",)),
    Case("commit: no ship_to", "POST", "/v1/reservations/{reservation_id}/commit",
         lambda w: f"/v1/reservations/{w.active_hold}/commit", 422, "validation-error",
         _without(COMMIT, "ship_to"), mentions=("ship_to",)),
    Case("release: a released hold", "POST", "/v1/reservations/{reservation_id}/release",
         lambda w: f"/v1/reservations/{w.released_hold}/release", 409, "invalid-state", mentions=("released",)),
    Case("release: an unknown hold", "POST", "/v1/reservations/{reservation_id}/release",
         fixed("/v1/reservations/res_nope/release"), 404, "not-found", mentions=("res_nope",)),
    # -- cancels and shipments
    Case("cancel: a shipped order", "POST", "/v1/orders/{order_id}/cancel",
         lambda w: f"/v1/orders/{w.shipped_order}/cancel", 409, "invalid-state", {}, mentions=("shipped",)),
    Case("cancel: an unknown order", "POST", "/v1/orders/{order_id}/cancel", fixed("/v1/orders/ord_nope/cancel"),
         404, "not-found", {}, mentions=("ord_nope",)),
    Case("cancel: reason as a number", "POST", "/v1/orders/{order_id}/cancel",
         lambda w: f"/v1/orders/{w.allocated_order}/cancel", 422, "validation-error", {"reason": 5},
         mentions=("reason",)),
    Case("ship: more than is allocated", "POST", "/v1/orders/{order_id}/shipments",
         lambda w: f"/v1/orders/{w.allocated_order}/shipments", 422, "invalid-request",
         _ship(lines=[{"sku": "MUG", "quantity": 2}]), mentions=("MUG",)),
    Case("ship: from an unknown node", "POST", "/v1/orders/{order_id}/shipments",
         lambda w: f"/v1/orders/{w.allocated_order}/shipments", 422, "unknown-reference", _ship(node_id="wh-moon"),
         mentions=("wh-moon",)),
    Case("ship: a shipped order", "POST", "/v1/orders/{order_id}/shipments",
         lambda w: f"/v1/orders/{w.shipped_order}/shipments", 409, "invalid-state",
         _ship(lines=[{"sku": "TEE", "quantity": 1}]), mentions=("shipped",)),
    Case("ship: an unknown order", "POST", "/v1/orders/{order_id}/shipments", fixed("/v1/orders/ord_nope/shipments"),
         404, "not-found", _ship(), mentions=("ord_nope",)),
    Case("ship: zero quantity", "POST", "/v1/orders/{order_id}/shipments",
         lambda w: f"/v1/orders/{w.allocated_order}/shipments", 422, "validation-error",
         _ship(lines=[{"sku": "MUG", "quantity": 0}]), mentions=("quantity",)),
    Case("ship: no carrier", "POST", "/v1/orders/{order_id}/shipments",
         lambda w: f"/v1/orders/{w.allocated_order}/shipments", 422, "validation-error", _ship(carrier=None),
         mentions=("carrier",)),
    # -- reads of what does not exist
    Case("get: unknown order", "GET", "/v1/orders/{order_id}", fixed("/v1/orders/ord_nope"), 404, "not-found",
         mentions=("ord_nope",)),
    Case("get: unknown SKU", "GET", "/v1/inventory/{sku}", fixed("/v1/inventory/NOPE"), 404, "not-found",
         mentions=("NOPE",)),
    Case("get: unknown hold", "GET", "/v1/reservations/{reservation_id}", fixed("/v1/reservations/res_nope"), 404,
         "not-found", mentions=("res_nope",)),
    Case("get: inventory of an unknown channel", "GET", "/v1/channels/{channel_id}/inventory",
         fixed("/v1/channels/ebay/inventory"), 404, "not-found", mentions=("ebay",)),
    Case("get: page size zero", "GET", "/v1/channels/{channel_id}/inventory",
         fixed("/v1/channels/web/inventory?limit=0"), 422, "validation-error", mentions=("limit",)),
    # -- catalog
    Case("sku: id with a space", "PUT", "/v1/skus/{sku}", fixed("/v1/skus/BAD%20ID"), 422, "validation-error",
         {"name": "Bad"}, mentions=("sku",)),
    Case("sku: negative weight", "PUT", "/v1/skus/{sku}", fixed("/v1/skus/NEW"), 422, "validation-error",
         {"name": "New", "weight_grams": -1}, mentions=("weight_grams",)),
    Case("node: unknown type", "PUT", "/v1/nodes/{node_id}", fixed("/v1/nodes/wh-new"), 422, "validation-error",
         {"type": "moon", "name": "N", "postal_code": "10001", "country": "US"}, mentions=("type",)),
    Case("node: id with a space", "PUT", "/v1/nodes/{node_id}", fixed("/v1/nodes/wh%20new"), 422,
         "validation-error", {"type": "store", "name": "N", "postal_code": "10001", "country": "US"},
         mentions=("node_id",)),
    Case("channel: unknown node", "PUT", "/v1/channels/{channel_id}", fixed("/v1/channels/ebay"), 422,
         "unknown-reference", {"type": "custom", "name": "eBay", "node_ids": ["wh-moon"]}, mentions=("wh-moon",)),
    Case("channel: a node twice", "PUT", "/v1/channels/{channel_id}", fixed("/v1/channels/ebay"), 422,
         "invalid-request", {"type": "custom", "name": "eBay", "node_ids": ["wh-east", "wh-east"]},
         mentions=("twice",)),
    Case("channel: buffer over 100%", "PUT", "/v1/channels/{channel_id}", fixed("/v1/channels/web"), 422,
         "validation-error", {"type": "shopify", "name": "Web", "node_ids": ["wh-east"], "buffer": {"percent": 150}},
         mentions=("percent",)),
)  # fmt: skip


def test_bad_requests_answer_problems_and_change_nothing(
    http: httpx.Client, snapshot: Callable[[], Snapshot], spec: dict[str, Any]
) -> None:
    world = build_world(http)
    east = next(n for n in http.get("/v1/inventory/TEE").json()["nodes"] if n["node_id"] == "wh-east")
    assert east["on_hand"] == 4  # what the compare-and-set case expects to be told
    before = snapshot()
    for case in CASES:
        headers = dict(case.headers)
        if case.method == "POST":
            headers.setdefault("Idempotency-Key", f"bad-{case.name}")  # a refusal stores no response
        if case.content is not None:
            headers["content-type"] = "application/json"
        r = http.request(case.method, case.path(world), json=case.json, content=case.content, headers=headers)
        try:
            assert_problem(r, case.status, case.kind, case.mentions)
            assert_documented(spec, case.method, case.route, case.status)
            assert snapshot() == before, "the refused request changed something"
        except AssertionError as exc:
            raise AssertionError(f"case {case.name!r}: {exc}") from exc


def test_oversized_bodies_are_refused_before_reading(http: httpx.Client, snapshot: Callable[[], Snapshot]) -> None:
    """More than 1 MiB is a 413, whether the size is declared (Content-Length) or streamed (chunked)."""
    seed(http, {"TEE": {"wh-east": 5}, "MUG": {"wh-west": 1}})
    before = snapshot()
    lines = [{"sku": "TEE", "quantity": 1}] * 40_000
    big_order = httpx.Request("POST", "/", json=_order(lines=lines)).content
    big_adjustment = httpx.Request("POST", "/", json=_adjust(*[_adj()] * 40_000)).content
    assert len(big_order) > ONE_MIB and len(big_adjustment) > ONE_MIB

    def chunks(body: bytes) -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    for path, body in (("/v1/orders", big_order), ("/v1/inventory/adjustments", big_adjustment)):
        declared = http.post(path, content=body, headers={"content-type": "application/json"})
        assert_problem(declared, 413, "payload-too-large", ("bytes",))
        streamed = http.post(path, content=chunks(body), headers={"content-type": "application/json"})
        assert "content-length" not in streamed.request.headers
        assert_problem(streamed, 413, "payload-too-large", ("bytes",))
        assert snapshot() == before, path


def test_idempotency_key_replays_or_refuses(http: httpx.Client, snapshot: Callable[[], Snapshot]) -> None:
    seed(http, {"TEE": {"wh-east": 5}, "MUG": {"wh-west": 1}})
    body = order("IDEM-1", {"TEE": 2})
    first = http.post("/v1/orders", json=body, headers={"Idempotency-Key": "order-key-1"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = snapshot()

    again = http.post("/v1/orders", json=body, headers={"Idempotency-Key": "order-key-1"})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["request-id"] and again.headers["request-id"] != first.headers["request-id"]
    assert snapshot() == after_first, "a replay changed something"

    other = body | {"lines": [{"sku": "TEE", "quantity": 3}]}
    reused = http.post("/v1/orders", json=other, headers={"Idempotency-Key": "order-key-1"})
    assert_problem(reused, 422, "idempotency-key-reused", ("order-key-1",))
    assert snapshot() == after_first, "a refused key reuse changed something"

    # A stock change with a key applies once, however often it is sent.
    delta = _adjust(_adj(delta=3))
    applied = http.post("/v1/inventory/adjustments", json=delta, headers={"Idempotency-Key": "count-7"})
    assert applied.status_code == 200, applied.text
    after_adjust = snapshot()
    replay = http.post("/v1/inventory/adjustments", json=delta, headers={"Idempotency-Key": "count-7"})
    assert replay.status_code == 200 and replay.json() == applied.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert snapshot() == after_adjust
    changed = http.post(
        "/v1/inventory/adjustments", json=_adjust(_adj(delta=4)), headers={"Idempotency-Key": "count-7"}
    )
    assert_problem(changed, 422, "idempotency-key-reused", ("count-7",))
    assert snapshot() == after_adjust


def test_openapi_documents_every_problem(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    operations = [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    ]
    assert len(operations) >= 15
    for method, path, op in operations:
        where = f"{method} {path}"
        answers = op["responses"]
        for status, answer in answers.items():
            if status.startswith(("4", "5")):
                assert_problem_content(answer, f"{where} {status}")
        if op.get("parameters") or "requestBody" in op:
            assert "422" in answers, f"{where} takes input but documents no 422"
        if "requestBody" in op:
            for status in ("400", "413"):  # malformed JSON, oversized body
                assert status in answers, f"{where} takes a body but documents no {status}"
        if "{" in path and method == "GET":
            assert "404" in answers or "422" in answers, f"{where} reads by id but documents no 404"
