"""A stateful property test of the one write path, on SQLite and on PostgreSQL.

Hypothesis drives the services directly (adjustments, checkout holds, orders, shipments, cancels,
hold expiry under a fake clock) through a real `Database`. Before each call the machine predicts
from the stored state whether the call must succeed or be refused (and with which error); after it,
it checks what was written. After every step it reads the whole database and checks the ledger's
invariants: positions are the fold of movements, nothing is oversold, every unit reserved has an
owner, order lines add up, and the outbox has every event with gap-free per-aggregate sequences.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from crossdock.domain import events as ev
from crossdock.domain.catalog import Buffer, Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.errors import (
    CompareFailed,
    DomainError,
    InsufficientStock,
    InvalidRequest,
    InvalidTransition,
    NotFound,
    UnknownReference,
)
from crossdock.domain.order import ShipTo
from crossdock.domain.position import ADJUSTMENT_REASONS, BUCKETS
from crossdock.services import catalog, holds, orders, queries
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.clock import from_text
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from tests.conftest import fresh_postgres

# -- the world --------------------------------------------------------------------------------------

NODES = (
    Node("east", NodeType.WAREHOUSE, "East DC", "07001", "US", 40.58, -74.27),
    Node("west", NodeType.WAREHOUSE, "West DC", "91761", "US", 34.03, -117.59),
    Node("store", NodeType.STORE, "Chicago store", "60601", "US", 41.88, -87.62),
)
CHANNELS = (
    Channel("web", ChannelType.SHOPIFY, "Web", ("east", "west", "store")),
    Channel("amz", ChannelType.AMAZON, "Amazon", ("west", "east"), Buffer(units=2, percent=10)),
)
SKUS = ("A", "B", "C")
NODE_IDS = tuple(n.node_id for n in NODES)
CHANNEL_BY_ID = {c.channel_id: c for c in CHANNELS}
ADJUSTABLE = ("on_hand", "safety_stock", "damaged", "inbound")
SHIP_TOS = (
    ShipTo("10001", "US", 40.75, -73.99),
    ShipTo("90001", "US", 33.97, -118.25),
    ShipTo("60601", "US", 41.88, -87.62),
    ShipTo("99999", "US"),  # no coordinates: the channel's node order decides
)
EXTERNAL_IDS = tuple(f"X{i}" for i in range(8))  # small, so channels see the same external id again
TERMINAL = ("shipped", "cancelled")

Key = tuple[str, str]
Refusal = type[DomainError] | tuple[type[DomainError], ...] | None  # the error(s) a call must answer with


# -- reading the whole database ---------------------------------------------------------------------


@dataclass
class State:
    """Everything the write path may change, read in one transaction."""

    positions: dict[Key, dict[str, int]]
    movements: int
    outbox: list[tuple[int, str, str, str, int, str]]  # (position, aggregatetype, aggregateid, type, sequence, payload)
    orders: dict[str, dict[str, Any]]
    holds: dict[str, dict[str, Any]]
    sku_seq: dict[str, int]
    history: int
    drift: list[Any] = field(compare=False)
    inventory: dict[str, dict[str, Any]] = field(compare=False)

    def free(self, sku: str, node_id: str) -> int:
        p = self.positions.get((sku, node_id))
        if p is None:
            return 0
        return p["on_hand"] - p["reserved"] - p["safety_stock"] - p["damaged"]

    def sellable(self, sku: str, channel_id: str) -> int:
        """Units the placeholder allocator can find for a line on this channel."""
        return sum(max(0, self.free(sku, n)) for n in CHANNEL_BY_ID[channel_id].node_ids)

    def order_id_for(self, channel_id: str, external_id: str) -> str | None:
        for oid, o in self.orders.items():
            if o["channel_id"] == channel_id and o["external_id"] == external_id:
                return oid
        return None


def read_state(uow: Any) -> State:
    positions = {
        (r[0], r[1]): dict(zip(BUCKETS, (int(v) for v in r[2:]), strict=True))
        for r in uow.all(
            "SELECT sku, node_id, on_hand, reserved, safety_stock, damaged, inbound FROM positions"
            " ORDER BY sku, node_id"
        )
    }
    outbox = [
        (int(r[0]), r[1], r[2], r[3], int(r[4]), r[5])
        for r in uow.all(
            "SELECT position, aggregatetype, aggregateid, type, sequence, payload FROM outbox ORDER BY position"
        )
    ]
    orders_: dict[str, dict[str, Any]] = {
        r[0]: {
            "channel_id": r[1],
            "external_id": r[2],
            "status": r[3],
            "seq": int(r[4]),
            "lines": {},
            "allocations": {},
        }
        for r in uow.all("SELECT order_id, channel_id, external_id, status, seq FROM orders")
    }
    for r in uow.all("SELECT order_id, sku, quantity, allocated, shipped, cancelled FROM order_lines"):
        orders_[r[0]]["lines"][r[1]] = {
            "quantity": int(r[2]),
            "allocated": int(r[3]),
            "shipped": int(r[4]),
            "cancelled": int(r[5]),
        }
    for r in uow.all("SELECT order_id, node_id, sku, quantity, shipped FROM allocations"):
        orders_[r[0]]["allocations"][(r[1], r[2])] = {"quantity": int(r[3]), "shipped": int(r[4])}
    holds_: dict[str, dict[str, Any]] = {
        r[0]: {
            "channel_id": r[1],
            "status": r[2],
            "expires_at": from_text(r[3]),
            "order_id": r[4],
            "seq": int(r[5]),
            "lines": {},
        }
        for r in uow.all("SELECT reservation_id, channel_id, status, expires_at, order_id, seq FROM holds")
    }
    for r in uow.all("SELECT reservation_id, sku, node_id, quantity FROM hold_lines"):
        holds_[r[0]]["lines"][(r[1], r[2])] = int(r[3])
    return State(
        positions=positions,
        movements=int(uow.one("SELECT COUNT(*) FROM movements")[0]),
        outbox=outbox,
        orders=orders_,
        holds=holds_,
        sku_seq={r[0]: int(r[1]) for r in uow.all("SELECT sku, seq FROM skus")},
        history=int(uow.one("SELECT COUNT(*) FROM order_history")[0]),
        drift=queries.reconcile(uow),
        inventory={sku: queries.inventory_of(uow, sku) for sku in SKUS},
    )


def expected_ats(available_by_node: dict[str, int], channel: Channel) -> int:
    """The channel's sellable quantity, computed here independently of the domain code."""
    total = sum(available_by_node.get(n, 0) for n in channel.node_ids)
    held = channel.buffer.units + math.ceil(total * channel.buffer.percent / 100)
    return max(0, total - held)


def expected_status(order: dict[str, Any]) -> str:
    lines = order["lines"].values()
    if order["status"] == "cancelled":
        return "cancelled"
    total = sum(ln["quantity"] - ln["cancelled"] for ln in lines)
    shipped = sum(ln["shipped"] for ln in lines)
    allocated = sum(ln["allocated"] for ln in lines)
    if total and shipped == total:
        return "shipped"
    if shipped:
        return "partially_shipped"
    if allocated == total:
        return "allocated"
    return "partially_allocated" if allocated else "backordered"


# -- strategies -------------------------------------------------------------------------------------

skus = st.sampled_from(SKUS)
nodes = st.sampled_from(NODE_IDS)
channels = st.sampled_from(tuple(CHANNEL_BY_ID))
order_lines = st.lists(st.tuples(skus, st.integers(1, 5)), min_size=1, max_size=3, unique_by=lambda t: t[0])
hold_lines = st.lists(st.tuples(skus, st.integers(1, 3)), min_size=1, max_size=2, unique_by=lambda t: t[0])
adjustment_specs = st.fixed_dictionaries(
    {
        "sku": skus,
        "node_id": nodes,
        "bucket": st.sampled_from(ADJUSTABLE),
        "change": st.one_of(
            st.tuples(st.just("delta"), st.integers(-6, 8).filter(bool)),
            st.tuples(st.just("set"), st.integers(0, 12)),
        ),
        "compare": st.sampled_from((None, None, "right", "wrong")),
        "reason": st.sampled_from(ADJUSTMENT_REASONS),
    }
)

# Refusals the services must answer without changing anything: (name, job, expected error).
BAD_CALLS: tuple[tuple[str, Callable[[Any], Any], type[DomainError]], ...] = (
    (
        "order for an unknown SKU",
        lambda uow: orders.ingest_order(uow, orders.NewOrder("web", "bad-1", [("A", 1), ("NOPE", 1)], SHIP_TOS[0])),
        UnknownReference,
    ),
    (
        "order on an unknown channel",
        lambda uow: orders.ingest_order(uow, orders.NewOrder("ebay", "bad-2", [("A", 1)], SHIP_TOS[0])),
        UnknownReference,
    ),
    (
        "order with a zero quantity",
        lambda uow: orders.ingest_order(uow, orders.NewOrder("web", "bad-3", [("A", 1), ("B", 0)], SHIP_TOS[0])),
        InvalidRequest,
    ),
    (
        "order naming a SKU twice",
        lambda uow: orders.ingest_order(uow, orders.NewOrder("web", "bad-4", [("A", 1), ("A", 2)], SHIP_TOS[0])),
        InvalidRequest,
    ),
    ("hold without a ttl", lambda uow: holds.create_hold(uow, "web", [("A", 1)], 0), InvalidRequest),
    ("hold of a negative quantity", lambda uow: holds.create_hold(uow, "web", [("A", -1)], 60), InvalidRequest),
    ("hold of an unknown SKU", lambda uow: holds.create_hold(uow, "web", [("NOPE", 1)], 60), UnknownReference),
    ("hold on an unknown channel", lambda uow: holds.create_hold(uow, "ebay", [("A", 1)], 60), UnknownReference),
    (
        "adjustment at an unknown node",
        lambda uow: adjust_stock(
            uow,
            [
                Adjustment("A", "east", ADJUSTMENT_REASONS[0], delta=1),
                Adjustment("A", "mars", ADJUSTMENT_REASONS[0], delta=1),
            ],
        ),
        UnknownReference,
    ),
    (
        "adjustment of an unknown SKU",
        lambda uow: adjust_stock(uow, [Adjustment("NOPE", "east", ADJUSTMENT_REASONS[0], delta=1)]),
        UnknownReference,
    ),
    (
        "adjustment of reserved",
        lambda uow: adjust_stock(uow, [Adjustment("A", "east", ADJUSTMENT_REASONS[0], delta=1, bucket="reserved")]),
        InvalidRequest,
    ),
    (
        "adjustment with both a delta and a count",
        lambda uow: adjust_stock(uow, [Adjustment("A", "east", ADJUSTMENT_REASONS[0], delta=1, set_quantity=3)]),
        InvalidRequest,
    ),
    ("empty adjustment batch", lambda uow: adjust_stock(uow, []), InvalidRequest),
    ("cancel of an unknown order", lambda uow: orders.cancel_order(uow, "ord_nope"), NotFound),
    ("release of an unknown hold", lambda uow: holds.release_hold(uow, "res_nope"), NotFound),
    (
        "commit of an unknown hold",
        lambda uow: holds.commit_hold(uow, "res_nope", "bad-5", SHIP_TOS[0]),
        NotFound,
    ),
    (
        "shipment of an unknown order",
        lambda uow: orders.ship_order(uow, "ord_nope", "east", [("A", 1)], "ups", "1Z"),
        NotFound,
    ),
)


# -- the machine ------------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    new_url: Callable[[], str]  # a fresh, empty database URL; set per database by the test below
    drop_url: Callable[[str], None]

    held = Bundle("holds")
    placed = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.url = type(self).new_url()
        upgrade(self.url)
        self.db: Database = open_database(self.url, writers=1, clock=lambda: self.now)
        self.counter = itertools.count()

        def seed(uow: Any) -> None:
            for sku in SKUS:
                catalog.put_sku(uow, Sku(sku, f"SKU {sku}", 250))
            for node in NODES:
                catalog.put_node(uow, node)
            for channel in CHANNELS:
                catalog.put_channel(uow, channel)

        self.db.run(seed)
        self.state = self.db.read(read_state)

    def teardown(self) -> None:
        self.db.close()
        type(self).drop_url(self.url)

    # -- the write path, observed -------------------------------------------------------------------

    def call(self, job: Callable[[Any], Any], refusal: Refusal) -> tuple[Any, State, State]:
        """Runs a job that must succeed (refusal None) or be refused with that error (or one of them).

        A refusal must change nothing. A success must write one position_changed event per
        movement and an ats_changed event for exactly the (SKU, channel) pairs whose sellable
        quantity moved, each from the old to the new value."""
        before = self.state
        try:
            result = self.db.run(job)
        except DomainError as exc:
            after = self.db.read(read_state)
            assert refusal is not None, f"expected success, got {type(exc).__name__}: {exc.detail}"
            allowed = refusal if isinstance(refusal, tuple) else (refusal,)
            assert type(exc) in allowed, f"expected {allowed}, got {type(exc).__name__}: {exc.detail}"
            assert after == before, f"refused {type(exc).__name__} changed the database"
            self.state = after
            return exc, before, after
        after = self.db.read(read_state)
        assert refusal is None, f"expected {refusal}, the call succeeded with {result!r}"
        new = after.outbox[: len(before.outbox)]
        assert new == before.outbox, "outbox rows were changed or removed"
        new_events = after.outbox[len(before.outbox) :]
        moved = after.movements - before.movements
        assert moved >= 0
        types = Counter(e[3] for e in new_events)
        assert types[ev.POSITION_CHANGED] == moved, f"{moved} movements but {types[ev.POSITION_CHANGED]} events"
        for position, atype, aid, type_, sequence, payload in new_events:
            body = json.loads(payload)
            envelope = (body["specversion"], body["type"], body["subject"], body["sequence"])
            assert envelope == ("1.0", type_, aid, sequence)
            assert position > 0 and atype in ("inventory", "order", "reservation")
        ats_data = [json.loads(e[5])["data"] for e in new_events if e[3] == ev.ATS_CHANGED]
        ats_events = {(d["sku"], d["channel_id"]): d for d in ats_data}
        assert len(ats_events) == types[ev.ATS_CHANGED], "two ats_changed events for one SKU and channel"
        for sku in SKUS:
            for channel in CHANNELS:
                was = self._ats(before, sku, channel.channel_id)
                now = self._ats(after, sku, channel.channel_id)
                got = ats_events.get((sku, channel.channel_id))
                if was == now:
                    assert got is None, f"ats_changed for {sku} on {channel.channel_id} that did not change"
                else:
                    assert got is not None, f"{sku} on {channel.channel_id} went {was} -> {now} without an event"
                    assert (got["before"], got["after"]) == (was, now)
        self.state = after
        return result, before, after

    @staticmethod
    def _ats(state: State, sku: str, channel_id: str) -> int:
        by_node = {n: max(0, state.free(sku, n)) for n in NODE_IDS}
        return expected_ats(by_node, CHANNEL_BY_ID[channel_id])

    @staticmethod
    def _new_events(before: State, after: State) -> list[tuple[str, str, str]]:
        return [(e[1], e[2], e[3]) for e in after.outbox[len(before.outbox) :]]

    # -- rules --------------------------------------------------------------------------------------

    @initialize(stock=st.dictionaries(st.tuples(skus, nodes), st.integers(1, 8), max_size=6))
    def opening_stock(self, stock: dict[Key, int]) -> None:
        if stock:
            items = [Adjustment(s, n, ADJUSTMENT_REASONS[0], "opening", delta=q) for (s, n), q in stock.items()]
            self.call(adjust_stock_job(items), None)

    @rule(sku=skus, node_id=nodes, quantity=st.integers(1, 8))
    def receive(self, sku: str, node_id: str, quantity: int) -> None:
        job = adjust_stock_job([Adjustment(sku, node_id, ADJUSTMENT_REASONS[0], "po", delta=quantity)])
        _, before, after = self.call(job, None)
        was = before.positions.get((sku, node_id), {}).get("on_hand", 0)
        assert after.positions[(sku, node_id)]["on_hand"] == was + quantity

    @rule(specs=st.lists(adjustment_specs, min_size=1, max_size=2))
    def adjust(self, specs: list[dict[str, Any]]) -> None:
        """Deltas and absolute counts of any adjustable bucket (counts below what is held included),
        optionally compare-and-set; a batch applies all or nothing."""
        values = {key: dict(p) for key, p in self.state.positions.items()}
        items: list[Adjustment] = []
        refusal: type[DomainError] | None = None
        for spec in specs:
            key = (spec["sku"], spec["node_id"])
            current = values.setdefault(key, dict.fromkeys(BUCKETS, 0))[spec["bucket"]]
            kind, amount = spec["change"]
            compare = {None: None, "right": current, "wrong": current + 1}[spec["compare"]]
            target = current + amount if kind == "delta" else amount
            if refusal is None:
                if compare is not None and compare != current:
                    refusal = CompareFailed
                elif target < 0:
                    refusal = InvalidRequest
            values[key][spec["bucket"]] = target
            items.append(
                Adjustment(
                    spec["sku"],
                    spec["node_id"],
                    spec["reason"],
                    f"count-{next(self.counter)}",
                    delta=amount if kind == "delta" else None,
                    set_quantity=amount if kind == "set" else None,
                    compare_quantity=compare,
                    bucket=spec["bucket"],
                )
            )
        _, _, after = self.call(adjust_stock_job(items), refusal)
        if refusal is None:
            for key, buckets in values.items():
                for bucket in ADJUSTABLE:
                    assert after.positions.get(key, dict.fromkeys(BUCKETS, 0))[bucket] == buckets[bucket], (key, bucket)

    @rule(data=st.data())
    def count_below_held(self, data: st.DataObject) -> None:
        """A cycle count finds fewer units than are held: the newest holds and allocations give
        way (orders go back to backorder) and the count is taken as is."""
        held_at = sorted(k for k, p in self.state.positions.items() if p["reserved"])
        if not held_at:
            return
        by_holds = sorted({k for h in self.state.holds.values() if h["status"] == "active" for k in h["lines"]})
        if by_holds and data.draw(st.booleans(), label="where a checkout holds stock"):
            held_at = by_holds
        sku, node_id = data.draw(st.sampled_from(held_at), label="position")
        count = data.draw(st.integers(0, self.state.positions[(sku, node_id)]["reserved"] - 1), label="count")
        item = Adjustment(sku, node_id, ADJUSTMENT_REASONS[1], f"count-{next(self.counter)}", set_quantity=count)
        _, _, after = self.call(adjust_stock_job([item]), None)
        assert after.positions[(sku, node_id)]["on_hand"] == count

    @rule(target=held, channel_id=channels, lines=hold_lines, ttl=st.integers(1, 120) | st.just(3600))
    def create_hold(self, channel_id: str, lines: list[tuple[str, int]], ttl: int) -> Any:
        # A checkout holds at most what the channel sells: its available-to-sell, after the buffer.
        fits = all(self._ats(self.state, sku, channel_id) >= q for sku, q in lines)
        result, before, after = self.call(
            lambda uow: holds.create_hold(uow, channel_id, lines, ttl), None if fits else InsufficientStock
        )
        if not fits:
            return multiple()
        rid = result.reservation_id
        h = after.holds[rid]
        assert h["status"] == "active" and h["expires_at"] == self.now + timedelta(seconds=ttl)
        for sku, q in lines:
            assert sum(n for (s, _), n in h["lines"].items() if s == sku) == q
            assert all(node in CHANNEL_BY_ID[channel_id].node_ids for s, node in h["lines"] if s == sku)
        assert ("reservation", rid, ev.RESERVATION_CREATED) in self._new_events(before, after)
        return rid

    @rule(rid=held, external_id=st.sampled_from(EXTERNAL_IDS), ship_to=st.sampled_from(SHIP_TOS))
    def commit_hold(self, rid: str, external_id: str, ship_to: ShipTo) -> None:
        h = self.state.holds[rid]
        refusal: type[DomainError] | None = None
        if h["status"] == "committed":
            pass  # a repeated commit answers with the order it made
        elif h["status"] != "active" or self.now >= h["expires_at"]:
            refusal = InvalidTransition
        elif self.state.order_id_for(h["channel_id"], external_id) is not None:
            refusal = InvalidRequest
        result, before, after = self.call(lambda uow: holds.commit_hold(uow, rid, external_id, ship_to), refusal)
        if refusal is not None:
            return
        order, created = result
        assert created == (h["status"] == "active")
        if not created:
            assert order.order_id == h["order_id"]
            assert after == before, "a repeated commit changed something"
            return
        assert after.holds[rid]["status"] == "committed" and after.holds[rid]["order_id"] == order.order_id
        o = after.orders[order.order_id]
        assert o["status"] == "allocated"
        allocated = {k: a["quantity"] for k, a in o["allocations"].items()}
        assert allocated == {(n, s): q for (s, n), q in h["lines"].items()}
        assert after.movements == before.movements, "a commit moves no stock: the held units become the allocation"
        new = self._new_events(before, after)
        assert ("order", order.order_id, ev.ORDER_RECEIVED) in new
        assert ("reservation", rid, ev.RESERVATION_COMMITTED) in new

    @rule(rid=held)
    def release_hold(self, rid: str) -> None:
        h = self.state.holds[rid]
        refusal = None if h["status"] == "active" else InvalidTransition
        _, before, after = self.call(lambda uow: holds.release_hold(uow, rid), refusal)
        if refusal is None:
            assert after.holds[rid]["status"] == "released"
            assert ("reservation", rid, ev.RESERVATION_RELEASED) in self._new_events(before, after)

    def any_active_hold(self) -> bool:
        return any(h["status"] == "active" for h in self.state.holds.values())

    @precondition(any_active_hold)
    @rule(seconds=st.integers(1, 150))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @precondition(any_active_hold)
    @rule()
    def expire_holds(self) -> None:
        due = {rid for rid, h in self.state.holds.items() if h["status"] == "active" and h["expires_at"] <= self.now}
        count, before, after = self.call(holds.expire_holds, None)
        assert count == len(due)
        for rid, h in after.holds.items():
            assert (h["status"] == "expired") == (rid in due or before.holds[rid]["status"] == "expired"), rid
        expired_events = {aid for atype, aid, t in self._new_events(before, after) if t == ev.RESERVATION_EXPIRED}
        assert expired_events == due
        if not due:
            assert after == before

    @rule(
        target=placed,
        channel_id=channels,
        external_id=st.sampled_from(EXTERNAL_IDS),
        lines=order_lines,
        ship_to=st.sampled_from(SHIP_TOS),
    )
    def ingest_order(self, channel_id: str, external_id: str, lines: list[tuple[str, int]], ship_to: ShipTo) -> Any:
        existing = self.state.order_id_for(channel_id, external_id)
        expect = {sku: min(q, self.state.sellable(sku, channel_id)) for sku, q in lines}
        cmd = orders.NewOrder(channel_id, external_id, lines, ship_to)
        (order, created), before, after = self.call(lambda uow: orders.ingest_order(uow, cmd), None)
        if existing is not None:
            assert not created and order.order_id == existing
            assert after == before, "taking in a known order again changed something"
            return multiple()
        assert created
        o = after.orders[order.order_id]
        assert {s: ln["allocated"] for s, ln in o["lines"].items()} == expect
        if all(expect[s] == q for s, q in lines):
            assert o["status"] == "allocated"
        else:
            assert o["status"] == ("partially_allocated" if any(expect.values()) else "backordered")
        new = self._new_events(before, after)
        assert ("order", order.order_id, ev.ORDER_RECEIVED) in new
        assert (("order", order.order_id, ev.ORDER_ALLOCATED) in new) == any(expect.values())
        return order.order_id

    @rule(order_id=placed)
    def cancel_order(self, order_id: str) -> None:
        o = self.state.orders[order_id]
        refusal = InvalidTransition if o["status"] in TERMINAL else None
        _, before, after = self.call(lambda uow: orders.cancel_order(uow, order_id, "changed mind"), refusal)
        if refusal is None:
            now = after.orders[order_id]
            assert now["status"] == ("shipped" if any(ln["shipped"] for ln in o["lines"].values()) else "cancelled")
            assert all(a["quantity"] == 0 for a in now["allocations"].values())
            assert ("order", order_id, ev.ORDER_CANCELLED) in self._new_events(before, after)

    @rule(order_id=placed, data=st.data())
    def ship(self, order_id: str, data: st.DataObject) -> None:
        o = self.state.orders[order_id]
        held_at = [(n, s, a["quantity"]) for (n, s), a in sorted(o["allocations"].items()) if a["quantity"]]
        if held_at and data.draw(st.booleans(), label="from an allocation"):
            node_id = data.draw(st.sampled_from(sorted({n for n, _, _ in held_at})), label="node")
            here = [(s, q) for n, s, q in held_at if n == node_id]
            chosen = data.draw(st.lists(st.sampled_from(here), min_size=1, unique=True), label="lines")
            lines = [(s, data.draw(st.integers(1, q + 1), label=f"quantity of {s}")) for s, q in chosen]
        else:
            node_id = data.draw(nodes, label="node")
            lines = [(data.draw(skus, label="sku"), data.draw(st.integers(1, 3), label="quantity"))]
        refusal: Refusal = None
        if o["status"] in TERMINAL:
            # a line the order does not have may be reported before the order's state
            refusal = (
                InvalidTransition if all(s in o["lines"] for s, _ in lines) else (InvalidTransition, InvalidRequest)
            )
        elif any(o["allocations"].get((node_id, s), {"quantity": 0})["quantity"] < q for s, q in lines):
            refusal = InvalidRequest
        job = lambda uow: orders.ship_order(uow, order_id, node_id, lines, "ups", "1Z999")  # noqa: E731
        _, before, after = self.call(job, refusal)
        if refusal is None:
            for sku, q in lines:
                was = before.positions[(sku, node_id)]
                now = after.positions[(sku, node_id)]
                assert (now["on_hand"], now["reserved"]) == (was["on_hand"] - q, was["reserved"] - q)
                assert after.orders[order_id]["lines"][sku]["shipped"] == o["lines"][sku]["shipped"] + q
            assert ("order", order_id, ev.ORDER_SHIPPED) in self._new_events(before, after)

    @rule(bad=st.sampled_from(BAD_CALLS))
    def refused(self, bad: tuple[str, Callable[[Any], Any], type[DomainError]]) -> None:
        _, job, error = bad
        self.call(job, error)

    # -- invariants, read from the database after every step ------------------------------------------

    @invariant()
    def ledger_holds(self) -> None:
        s = self.db.read(read_state)
        assert s == self.state, "the database changed outside of a call"
        assert s.drift == [], f"positions differ from the fold of movements: {s.drift}"

        owed: Counter[Key] = Counter()
        for h in s.holds.values():
            if h["status"] == "active":
                owed.update(h["lines"])
            if h["status"] == "committed":
                assert h["order_id"] in s.orders
        for oid, o in s.orders.items():
            for (node_id, sku), a in o["allocations"].items():
                assert a["quantity"] >= 0 and a["shipped"] >= 0
                owed[(sku, node_id)] += a["quantity"]
            for sku, ln in o["lines"].items():
                assert min(ln.values()) >= 0, (oid, sku, ln)
                assert ln["allocated"] + ln["shipped"] + ln["cancelled"] <= ln["quantity"], (oid, sku, ln)
                mine = [a for (_, s_), a in o["allocations"].items() if s_ == sku]
                assert ln["allocated"] == sum(a["quantity"] for a in mine), (oid, sku)
                assert ln["shipped"] == sum(a["shipped"] for a in mine), (oid, sku)
            assert o["status"] == expected_status(o), (oid, o)
            if o["status"] in TERMINAL:
                assert all(ln["allocated"] == 0 for ln in o["lines"].values()), oid
            else:
                # A waiting line means none of the channel's nodes has a free unit of it (backorders
                # are served as soon as stock frees up).
                channel = CHANNEL_BY_ID[o["channel_id"]]
                for sku, ln in o["lines"].items():
                    if ln["quantity"] - ln["allocated"] - ln["shipped"] - ln["cancelled"] > 0:
                        free = {n: s.free(sku, n) for n in channel.node_ids}
                        assert all(f <= 0 for f in free.values()), f"{oid} waits for {sku} while {free} is free"

        for key in s.positions.keys() | owed.keys():
            p = s.positions.get(key, dict.fromkeys(BUCKETS, 0))
            assert min(p.values()) >= 0, (key, p)
            assert p["reserved"] <= p["on_hand"], (key, p)
            assert p["reserved"] == owed[key], f"{key}: reserved {p['reserved']}, holds and allocations {owed[key]}"

        for sku, inv in s.inventory.items():
            by_node = {n["node_id"]: n for n in inv["nodes"]}
            for n in by_node.values():
                assert n["available"] == max(0, s.free(sku, n["node_id"])) >= 0
            ats = {c["channel_id"]: c["available_to_sell"] for c in inv["channels"]}
            for channel in CHANNELS:
                want = expected_ats({k: v["available"] for k, v in by_node.items()}, channel)
                assert ats[channel.channel_id] == want >= 0, (sku, channel.channel_id)

        # Per-aggregate sequences: 1, 2, 3 ... in outbox order, and the aggregate row keeps the last.
        seqs: dict[tuple[str, str], list[int]] = {}
        for _, atype, aid, _, sequence, _ in s.outbox:
            seqs.setdefault((atype, aid), []).append(sequence)
        for (atype, aid), got in seqs.items():
            assert got == list(range(1, len(got) + 1)), f"{atype} {aid} sequences {got}"
        for sku, seq in s.sku_seq.items():
            assert seq == len(seqs.get(("inventory", sku), [])), sku
        for oid, o in s.orders.items():
            assert o["seq"] == len(seqs.get(("order", oid), [])), oid
        for rid, h in s.holds.items():
            assert h["seq"] == len(seqs.get(("reservation", rid), [])), rid


def adjust_stock_job(items: list[Adjustment]) -> Callable[[Any], Any]:
    return lambda uow: adjust_stock(uow, items)


# A run costs about 12 s on SQLite and 25-35 s on PostgreSQL (a fresh database per example) on a
# two-core machine. STATEFUL_EXAMPLES / STATEFUL_STEPS make a longer hunt.
EXAMPLES = {"sqlite": 150, "postgresql": 45}
STEPS = int(os.environ.get("STATEFUL_STEPS", "40"))


@dataclass(frozen=True)
class Databases:
    """Makes and drops one empty database per example."""

    dialect: str
    new_url: Callable[[], str]
    drop_url: Callable[[str], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Databases:
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("stateful")
        names = itertools.count()

        def drop_sqlite(url: str) -> None:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(url.removeprefix("sqlite:///") + suffix)

        return Databases("sqlite", lambda: f"sqlite:///{folder / f'run{next(names)}.db'}", drop_sqlite)
    import psycopg

    server: str = request.getfixturevalue("pg_server")

    def drop_postgres(url: str) -> None:
        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return Databases("postgresql", lambda: fresh_postgres(server), drop_postgres)


def test_ledger_state_machine(databases: Databases) -> None:
    machine = type(
        f"LedgerMachine_{databases.dialect}",
        (LedgerMachine,),
        {"new_url": staticmethod(databases.new_url), "drop_url": staticmethod(databases.drop_url)},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("STATEFUL_EXAMPLES", EXAMPLES[databases.dialect])),
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
