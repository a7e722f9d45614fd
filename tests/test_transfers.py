"""Transfers through the one write path, in process: demand history from the ledger, plans, approval
(by hand and by policy), shipment, receipt, rejection, expiry, cancellation; stock conserved."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from crossdock.connectors.sdk import Line, NodeInbound, ShipmentNotice
from crossdock.domain import events as ev
from crossdock.domain.catalog import Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.errors import InsufficientStock, InvalidRequest, InvalidTransition, UnknownReference
from crossdock.domain.ids import new_id
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Reason
from crossdock.domain.transfer import Transfer, TransferStatus
from crossdock.events.fulfilment import changes_for
from crossdock.positioning.demand import Normal
from crossdock.services import catalog, queries
from crossdock.services.channel_inbox import take_in_node
from crossdock.services.demand import demand_history
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.services.orders import NewOrder, cancel_order, ingest_order
from crossdock.services.transfers import (
    PlanRequest,
    TransferPolicy,
    approve_transfer,
    cancel_transfer,
    expire_transfers,
    plan_transfers,
    receive_transfer,
    reject_transfer,
    ship_transfer,
)
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade

START = datetime(2026, 11, 2, 15, tzinfo=UTC)
NYC = ShipTo("10001", "US", 40.75, -73.99)
LA = ShipTo("90001", "US", 33.97, -118.25)
# The west is expected to sell about 20 in the horizon and has nothing; the east holds plenty.
WEST_WANTS = {("TEE", "west"): Normal(20.0, 4.0), ("TEE", "east"): Normal(2.0, 1.0)}
PLAN = PlanRequest(skus=("TEE",), forecasts=WEST_WANTS)
MANUAL = TransferPolicy()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _world(uow: Any, east: int = 40, west: int = 0) -> None:
    catalog.put_sku(uow, Sku("TEE", "Tee", 200))
    catalog.put_sku(uow, Sku("MUG", "Mug", 400))
    catalog.put_node(uow, Node("east", NodeType.WAREHOUSE, "East", "07001", "US", 40.58, -74.27))
    catalog.put_node(uow, Node("west", NodeType.WAREHOUSE, "West", "91761", "US", 34.03, -117.59))
    catalog.put_channel(uow, Channel("web", ChannelType.CUSTOM, "Web", ("east", "west")))
    seed = [
        Adjustment("TEE", "east", Reason.RECEIPT, "seed", delta=east),
        Adjustment("MUG", "east", Reason.RECEIPT, "seed", delta=30),
    ]
    if west:
        seed.append(Adjustment("TEE", "west", Reason.RECEIPT, "seed", delta=west))
    adjust_stock(uow, seed)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lite(tmp_path: Path, clock: Clock) -> Iterator[Database]:
    """SQLite only, with a clock the test moves."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    upgrade(url)
    db = open_database(url, clock=clock)
    db.run(_world)
    yield db
    db.close()


def _stock(db: Database, sku: str = "TEE") -> dict[str, dict[str, int]]:
    """Per node with any stock of the SKU (a position left at zero reads as none)."""
    view = db.read(lambda uow: queries.inventory_of(uow, sku))
    keys = ("on_hand", "reserved", "inbound", "available")
    return {n["node_id"]: {k: n[k] for k in keys} for n in view["nodes"] if any(n[k] for k in keys)}


def _events(db: Database, prefix: str = "crossdock.transfer.") -> list[dict[str, Any]]:
    rows = db.read(lambda uow: uow.all("SELECT payload FROM outbox ORDER BY position"))
    return [e for e in (orjson.loads(r[0]) for r in rows) if e["type"].startswith(prefix)]


def _movements(db: Database) -> int:
    return int(db.read(lambda uow: uow.one("SELECT COUNT(*) FROM movements"))[0])


def _plan(db: Database, req: PlanRequest = PLAN, policy: TransferPolicy = MANUAL) -> list[Any]:
    return db.run(lambda uow: plan_transfers(uow, req, policy))


# -- demand history -------------------------------------------------------------------------------


def test_demand_history_counts_sales_per_node_and_day_and_flags_stock_outs(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    db = open_database(url, clock=clock)
    try:
        clock.now = START - timedelta(days=1)  # stocked the day before (a day that starts empty is out)
        db.run(partial(_world, east=3, west=5))
        clock.now = START

        def sell(external_id: str, to: ShipTo, quantity: int) -> Any:
            return db.run(partial(ingest_order, cmd=NewOrder("web", external_id, [("TEE", quantity)], to)))[0]

        sell("a", NYC, 2)  # day 1: the east sells 2 (1 left), the west 1
        sell("b", LA, 1)
        cancelled = sell("c", LA, 1)
        db.run(partial(cancel_order, order_id=cancelled.order_id))  # a cancelled order sold nothing
        clock.now += timedelta(days=1)
        sell("d", NYC, 1)  # day 2: the east sells its last one: out of stock from then on
        clock.now += timedelta(days=1)
        sell("e", LA, 2)  # day 3: the west sells 2; the east is still out
        clock.now += timedelta(days=1)
        history = db.read(lambda uow: demand_history(uow, 3))
    finally:
        db.close()
    day1 = START.date()
    assert history.days == (day1, day1 + timedelta(days=1), day1 + timedelta(days=2))
    assert history.units["TEE", "east"] == [2, 1, 0]
    assert history.units["TEE", "west"] == [1, 0, 2]
    assert history.stocked_out["TEE", "east"] == [False, True, True]
    assert history.stocked_out["TEE", "west"] == [False, False, False]
    assert history.in_stock_days(("TEE", "east")) == [2]
    assert history.units["MUG", "east"] == [0, 0, 0] and not any(history.stocked_out["MUG", "east"])
    rows = list(history.rows())
    assert rows[0].sku == "MUG" and len(rows) == 9 and rows[-1].day == date(2026, 11, 4)
    assert history.long_rows()[3:6] == [
        ("TEE|east", day1, 2, False),
        ("TEE|east", day1 + timedelta(days=1), 1, True),
        ("TEE|east", day1 + timedelta(days=2), 0, True),
    ]


def test_demand_by_destination_sees_a_region_whose_node_is_out(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    db = open_database(url, clock=clock)
    try:
        clock.now = START - timedelta(days=1)
        db.run(partial(_world, east=60, west=0))  # the west has nothing: Los Angeles is served from the east
        for day in range(7):
            clock.now = START + timedelta(days=day)
            for i in range(2):
                db.run(partial(ingest_order, cmd=NewOrder("web", f"la{day}-{i}", [("TEE", 1)], LA)))
        clock.now = START + timedelta(days=7)
        by_node = db.read(lambda uow: demand_history(uow, 7, skus=["TEE"]))
        assert by_node.units["TEE", "east"] == [2] * 7 and ("TEE", "west") not in by_node.units
        assert _plan(db, PlanRequest(skus=("TEE",), history_days=7)) == []  # the west's demand is hidden
        (move,) = _plan(db, PlanRequest(skus=("TEE",), history_days=7, demand_from="destinations"))
        assert (move.from_node_id, move.to_node_id) == ("east", "west")
        assert 14 <= move.quantity <= 30  # two a day over 3 + 7 days
    finally:
        db.close()


# -- plans and the life of a transfer -------------------------------------------------------------


def test_a_plan_proposes_and_announces_transfers_without_touching_stock(lite: Database) -> None:
    before, moved = _stock(lite), _movements(lite)
    proposed = _plan(lite)
    (t,) = proposed
    assert (t.sku, t.from_node_id, t.to_node_id, t.status) == ("TEE", "east", "west", TransferStatus.PROPOSED)
    assert 15 <= t.quantity <= 30 and t.benefit > t.cost > 0
    assert _stock(lite) == before and _movements(lite) == moved
    (recommended,) = _events(lite)
    assert recommended["type"] == ev.TRANSFER_RECOMMENDED and recommended["subject"] == t.transfer_id
    assert recommended["data"]["quantity"] == t.quantity and recommended["sequence"] == 1
    # A second plan replaces the open proposal it covers: one open proposal, the old one expired.
    (again,) = _plan(lite)
    listed = lite.read(lambda uow: uow.transfers("proposed", None, "", 10))
    assert [x.transfer_id for x in listed] == [again.transfer_id]
    assert lite.read(lambda uow: uow.get_transfer(t.transfer_id)).status == TransferStatus.EXPIRED


def test_nothing_is_proposed_when_moving_costs_more_than_it_saves(lite: Database) -> None:
    dear = PlanRequest(skus=("TEE",), forecasts=WEST_WANTS, cost_per_unit=50.0)
    assert _plan(lite, dear) == []
    assert _events(lite) == []


def test_stock_is_conserved_through_approval_shipment_and_a_short_receipt(db: Database) -> None:
    db.run(_world)
    (t,) = _plan(db)
    q = t.quantity

    def total() -> int:
        """On hand everywhere plus in transit (shipped, not yet received)."""
        in_transit = sum(x.shipped - x.received for x in db.read(lambda uow: uow.transfers("shipped", None, "", 100)))
        return sum(p["on_hand"] for p in _stock(db).values()) + in_transit

    assert total() == 40
    approve_transfer_ = db.run(lambda uow: approve_transfer(uow, t.transfer_id, "looks right"))
    assert approve_transfer_.status == TransferStatus.APPROVED
    stock = _stock(db)
    assert stock["east"] == {"on_hand": 40, "reserved": q, "inbound": 0, "available": 40 - q}
    assert stock["west"] == {"on_hand": 0, "reserved": 0, "inbound": q, "available": 0}
    assert total() == 40
    # The held units cannot be sold twice: an order for more than is left is backordered in part.
    order, _ = db.run(partial(ingest_order, cmd=NewOrder("web", "big", [("TEE", 40)], NYC)))
    assert order.lines[0].allocated == 40 - q
    db.run(partial(cancel_order, order_id=order.order_id))

    db.run(lambda uow: ship_transfer(uow, t.transfer_id))
    stock = _stock(db)
    assert stock["east"] == {"on_hand": 40 - q, "reserved": 0, "inbound": 0, "available": 40 - q}
    assert stock["west"]["inbound"] == q and total() == 40

    received = db.run(lambda uow: receive_transfer(uow, t.transfer_id, q - 2, "two cartons crushed"))
    assert (received.status, received.shipped, received.received) == (TransferStatus.RECEIVED, q, q - 2)
    stock = _stock(db)
    assert stock["west"] == {"on_hand": q - 2, "reserved": 0, "inbound": 0, "available": q - 2}
    assert total() == 38  # the two lost in transit are written off, and booked as such
    short = db.read(
        lambda uow: uow.all(
            "SELECT node_id, d_inbound FROM movements WHERE reason = 'transfer_short' AND reference = :r",
            {"r": t.transfer_id},
        )
    )
    assert [tuple(r) for r in short] == [("west", -2)]
    assert db.read(queries.reconcile) == []
    story = [(e["type"].split(".")[2], e["sequence"]) for e in _events(db) if e["subject"] == t.transfer_id]
    assert story == [("recommended", 1), ("approved", 2), ("shipped", 3), ("received", 4)]


def test_rejected_and_expired_proposals_change_nothing(lite: Database, clock: Clock) -> None:
    before, moved = _stock(lite), _movements(lite)
    (rejected,) = _plan(lite)
    lite.run(lambda uow: reject_transfer(uow, rejected.transfer_id, "not this week"))
    with pytest.raises(InvalidTransition):
        lite.run(lambda uow: approve_transfer(uow, rejected.transfer_id))
    (late,) = _plan(lite, policy=TransferPolicy(proposal_ttl=timedelta(hours=1)))
    assert lite.run(expire_transfers) is False  # not yet
    clock.now += timedelta(hours=2)
    with pytest.raises(InvalidTransition, match="expired"):
        lite.run(lambda uow: approve_transfer(uow, late.transfer_id))
    lite.run(expire_transfers)
    assert lite.read(lambda uow: uow.get_transfer(late.transfer_id)).status == TransferStatus.EXPIRED
    assert _stock(lite) == before and _movements(lite) == moved
    kinds = [e["type"].split(".")[2] for e in _events(lite)]
    assert kinds == ["recommended", "rejected", "recommended", "expired"]


def test_approval_is_refused_when_the_units_are_no_longer_free(lite: Database) -> None:
    (t,) = _plan(lite)
    lite.run(partial(adjust_stock, adjustments=[Adjustment("TEE", "east", Reason.DAMAGE, "flood", set_quantity=5)]))
    before, moved = _stock(lite), _movements(lite)
    with pytest.raises(InsufficientStock, match="5 free"):
        lite.run(lambda uow: approve_transfer(uow, t.transfer_id))
    assert _stock(lite) == before and _movements(lite) == moved
    assert lite.read(lambda uow: uow.get_transfer(t.transfer_id)).status == TransferStatus.PROPOSED


def test_a_cancelled_approval_gives_the_units_back(lite: Database) -> None:
    before = _stock(lite)
    (t,) = _plan(lite)
    lite.run(lambda uow: approve_transfer(uow, t.transfer_id))
    lite.run(lambda uow: cancel_transfer(uow, t.transfer_id, "truck cancelled"))
    assert _stock(lite) == before
    with pytest.raises(InvalidTransition):
        lite.run(lambda uow: ship_transfer(uow, t.transfer_id))
    assert lite.read(queries.reconcile) == []


def test_a_count_below_what_an_approved_transfer_holds_calls_it_off(lite: Database) -> None:
    (t,) = _plan(lite)
    lite.run(lambda uow: approve_transfer(uow, t.transfer_id))
    count = Adjustment("TEE", "east", Reason.CYCLE_COUNT, "count", set_quantity=t.quantity - 1)
    lite.run(partial(adjust_stock, adjustments=[count]))
    assert lite.read(lambda uow: uow.get_transfer(t.transfer_id)).status == TransferStatus.CANCELLED
    assert _stock(lite) == {
        "east": {"on_hand": t.quantity - 1, "reserved": 0, "inbound": 0, "available": t.quantity - 1}
    }
    assert lite.read(queries.reconcile) == []


def test_a_partial_shipment_frees_the_rest_at_the_source(lite: Database) -> None:
    (t,) = _plan(lite)
    lite.run(lambda uow: approve_transfer(uow, t.transfer_id))
    with pytest.raises(InvalidRequest):
        lite.run(lambda uow: ship_transfer(uow, t.transfer_id, t.quantity + 1))
    lite.run(lambda uow: ship_transfer(uow, t.transfer_id, 10))
    stock = _stock(lite)
    assert stock["east"] == {"on_hand": 30, "reserved": 0, "inbound": 0, "available": 30}
    assert stock["west"]["inbound"] == 10
    with pytest.raises(InvalidRequest, match="more than was shipped"):
        lite.run(lambda uow: receive_transfer(uow, t.transfer_id, 11))
    lite.run(lambda uow: receive_transfer(uow, t.transfer_id))
    assert _stock(lite)["west"] == {"on_hand": 10, "reserved": 0, "inbound": 0, "available": 10}


def test_auto_approval_respects_its_thresholds(lite: Database) -> None:
    wants = WEST_WANTS | {("MUG", "west"): Normal(4.0, 1.0), ("MUG", "east"): Normal(1.0, 0.5)}
    req = PlanRequest(skus=("TEE", "MUG"), forecasts=wants)
    manual = _plan(lite, req)
    big = next(t for t in manual if t.sku == "TEE")
    small = next(t for t in manual if t.sku == "MUG")
    assert small.quantity < big.quantity
    policy = TransferPolicy(auto_approve_max_quantity=small.quantity, auto_approve_max_cost=small.cost + 0.01)
    planned = {t.sku: t for t in _plan(lite, req, policy)}
    assert planned["MUG"].status == TransferStatus.APPROVED and "auto" in planned["MUG"].note
    assert planned["TEE"].status == TransferStatus.PROPOSED
    assert _stock(lite, "MUG")["east"]["reserved"] == small.quantity
    assert _stock(lite)["east"]["reserved"] == 0
    # A cost limit alone: the cheaper move passes, the dearer does not.
    lite.run(lambda uow: cancel_transfer(uow, planned["MUG"].transfer_id))
    by_cost = {t.sku: t for t in _plan(lite, req, TransferPolicy(auto_approve_max_cost=big.cost - 0.01))}
    assert (by_cost["MUG"].status, by_cost["TEE"].status) == (TransferStatus.APPROVED, TransferStatus.PROPOSED)
    assert lite.read(queries.reconcile) == []


def test_bad_plans_are_refused(lite: Database) -> None:
    with pytest.raises(UnknownReference):
        _plan(lite, PlanRequest(node_ids=("east", "mars")))
    with pytest.raises(UnknownReference):
        _plan(lite, PlanRequest(skus=("NOPE",)))
    with pytest.raises(InvalidRequest):
        _plan(lite, PlanRequest(node_ids=("east",)))
    with pytest.raises(InvalidRequest):
        _plan(lite, PlanRequest(lead_time_days=0, review_days=0))


# -- a source behind a warehouse system -----------------------------------------------------------


def test_an_approved_transfer_becomes_a_transfer_order_and_the_node_ships_it(lite: Database) -> None:
    (t,) = _plan(lite)
    lite.run(lambda uow: approve_transfer(uow, t.transfer_id))
    rows = lite.read(lambda uow: uow.outbox_after(0, None, 1000, {ev.TRANSFER_APPROVED}))
    steps = changes_for(rows, {"east"})
    assert [kind for kind, _ in steps] == ["add"]
    (request,) = steps[0][1]
    assert (request.order_id, request.node_id, request.lines) == (t.transfer_id, "east", (Line("TEE", t.quantity),))
    assert (request.ship_to.postal_code, request.ship_to.country) == ("91761", "US")
    assert changes_for(rows, {"west"}) == []  # a source without a connector ships through the API

    notice = ShipmentNotice(t.transfer_id, (Line("TEE", t.quantity),), "fedex-freight", "PRO123")
    inbound = NodeInbound("shipment.created", "evt-1", START, shipments=(notice,))
    outcome = lite.run(lambda uow: take_in_node(uow, "east", inbound))
    assert outcome["shipments"] == [{"transfer_id": t.transfer_id, "status": "shipped"}]
    assert _stock(lite)["east"]["on_hand"] == 40 - t.quantity


# -- from the ledger's own history, on the command line ----------------------------------------------


def test_crossdock_rebalance_plans_from_recent_sales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from crossdock.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(days=8)
    db = open_database(url, clock=clock)
    try:
        db.run(partial(_world, east=40, west=20))
        for day in range(7):  # the west sells two a day; the east, with plenty, sells none
            clock.now += timedelta(days=1)
            for i in range(2):
                db.run(partial(ingest_order, cmd=NewOrder("web", f"w{day}-{i}", [("TEE", 1)], LA)))
    finally:
        db.close()
    monkeypatch.setenv("CROSSDOCK_DATABASE_URL", url)
    runner = CliRunner()
    shown = runner.invoke(app, ["rebalance", "--json", "--sku", "TEE"])
    assert shown.exit_code == 0, shown.output
    out = orjson.loads(shown.output)
    (move,) = out["transfers"]
    # Two a day over 3 + 7 days is about 20 wanted in the west, which holds 6: the east sends the rest.
    assert (move["from_node_id"], move["to_node_id"], out["stored"]) == ("east", "west", False)
    assert 12 <= move["quantity"] <= 24 and move["benefit"] > move["cost"]
    stored = runner.invoke(app, ["rebalance", "--json", "--propose", "--sku", "TEE"])
    assert stored.exit_code == 0 and orjson.loads(stored.output)["transfers"][0]["status"] == "proposed"
    refused = runner.invoke(app, ["rebalance", "--node", "east"])
    assert refused.exit_code == 2 and "two nodes" in refused.output


def _proposal(uow: Any, quantity: int, to: str = "west") -> Any:
    t = Transfer(
        new_id("tr"),
        "TEE",
        "east",
        to,
        quantity,
        1.0,
        2.0,
        TransferStatus.PROPOSED,
        uow.now,
        uow.now + timedelta(days=1),
    )
    uow.insert_transfers([t])
    return t


def test_two_approvals_at_once_never_hold_more_than_is_free(db: Database) -> None:
    db.run(_world)  # 40 TEE at the east
    first, second = db.run(lambda uow: [_proposal(uow, 30), _proposal(uow, 30)])
    outcomes = [db.submit(partial(approve_transfer, transfer_id=t.transfer_id)) for t in (first, second)]
    errors = [f.exception(timeout=30) for f in outcomes]
    assert sorted(type(e).__name__ for e in errors) == ["InsufficientStock", "NoneType"]
    assert _stock(db)["east"] == {"on_hand": 40, "reserved": 30, "inbound": 0, "available": 10}
    assert db.read(queries.reconcile) == []


def test_stock_is_conserved_over_any_sequence_of_transfer_actions(lite: Database) -> None:
    rng = random.Random(5)
    open_ids: list[str] = []
    written_off = 0
    for _ in range(60):
        step = rng.choice(["propose", "approve", "ship", "receive", "cancel", "reject"])
        try:
            if step == "propose":
                open_ids.append(lite.run(lambda uow: _proposal(uow, rng.randint(1, 15))).transfer_id)
                continue
            if not open_ids:
                continue
            chosen = rng.choice(open_ids)
            if step == "approve":
                lite.run(partial(approve_transfer, transfer_id=chosen))
            elif step == "ship":
                t = lite.read(lambda uow, c=chosen: uow.get_transfer(c))
                lite.run(partial(ship_transfer, transfer_id=chosen, quantity=rng.randint(1, t.quantity)))
            elif step == "receive":
                t = lite.read(lambda uow, c=chosen: uow.get_transfer(c))
                got = rng.randint(0, t.shipped) if t.shipped else 0
                lite.run(partial(receive_transfer, transfer_id=chosen, quantity=got))
                written_off += t.shipped - got
            elif step == "cancel":
                lite.run(partial(cancel_transfer, transfer_id=chosen))
            else:
                lite.run(partial(reject_transfer, transfer_id=chosen))
        except (InvalidTransition, InsufficientStock, InvalidRequest):
            continue  # refused: nothing changed (checked below with everything else)
        transfers = lite.read(lambda uow: uow.transfers(None, "TEE", "", 1000))
        stock = _stock(lite)
        in_transit = sum(t.shipped - t.received for t in transfers if t.status == TransferStatus.SHIPPED)
        held = sum(t.quantity for t in transfers if t.status == TransferStatus.APPROVED)
        on_the_way = held + in_transit
        assert sum(p["on_hand"] for p in stock.values()) + in_transit + written_off == 40
        assert stock.get("east", {}).get("reserved", 0) == held
        assert stock.get("west", {}).get("inbound", 0) == on_the_way
    assert lite.read(queries.reconcile) == []
    seen = {t.status for t in lite.read(lambda uow: uow.transfers(None, "TEE", "", 1000))}
    assert {TransferStatus.RECEIVED, TransferStatus.CANCELLED, TransferStatus.REJECTED} <= seen
