"""Taking in what channels' webhooks say, on both databases: a delivery once, news about an order
only when newer than what was taken, cancellations, in-store sales leaving the store's shelf."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from crossdock.connectors.sdk import Cancellation, ChannelOrder, Inbound, Line, Refund
from crossdock.domain.catalog import Channel, ChannelType, Node, NodeType, Sku
from crossdock.domain.order import ShipTo
from crossdock.domain.position import Reason
from crossdock.services import catalog
from crossdock.services.channel_inbox import take_in
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.database import Database

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NYC = ShipTo("10001", "US")


def seed(db: Database) -> None:
    def job(uow: Any) -> None:
        catalog.put_sku(uow, Sku("TEE", "Tee", 200))
        catalog.put_node(uow, Node("dc", NodeType.WAREHOUSE, "DC", "07001", "US", 40.58, -74.27))
        catalog.put_node(uow, Node("store", NodeType.STORE, "Store", "60601", "US", 41.88, -87.62))
        catalog.put_channel(uow, Channel("pos", ChannelType.SQUARE, "POS", ("store", "dc")))
        adjust_stock(
            uow,
            [
                Adjustment("TEE", "dc", Reason.RECEIPT, "seed", delta=10),
                Adjustment("TEE", "store", Reason.RECEIPT, "seed", delta=3),
            ],
        )

    db.submit(job).result()


def take(db: Database, inbound: Inbound) -> dict[str, Any]:
    result: dict[str, Any] = db.submit(partial(take_in, channel_id="pos", inbound=inbound)).result()
    return result


def order(external_id: str, quantity: int = 1, node_id: str | None = None) -> ChannelOrder:
    return ChannelOrder(external_id, (Line("TEE", quantity),), NYC, node_id=node_id)


def position(db: Database, node_id: str) -> tuple[int, int]:
    p = db.read(lambda uow: next(p for p in uow.positions(["TEE"]) if p.node_id == node_id))
    return p.on_hand, p.reserved


def orders(db: Database) -> list[str]:
    return db.read(lambda uow: uow.order_ids("pos", None, "", 100))


def test_a_delivery_is_taken_once(db: Database) -> None:
    seed(db)
    inbound = Inbound("orders/create", event_id="evt-1", occurred_at=T0, orders=(order("A-1"),))
    first = take(db, inbound)
    assert first["status"] == "applied" and first["orders"][0]["new"] is True
    assert take(db, inbound) == {"status": "duplicate", "topic": "orders/create"}
    # Another delivery of the same news (no event id): the order is not made twice either.
    again = take(db, Inbound("orders/create", orders=(order("A-1"),)))
    assert again["orders"][0]["new"] is False
    assert len(orders(db)) == 1
    assert position(db, "dc") == (10, 1)  # routed: the nearest node to New York


def test_older_news_about_an_order_is_dropped(db: Database) -> None:
    seed(db)
    take(db, Inbound("orders/create", event_id="e1", occurred_at=T0, orders=(order("B-1"),)))
    cancel = Inbound(
        "orders/cancelled", event_id="e3", occurred_at=T0 + timedelta(minutes=2), cancellations=(Cancellation("B-1"),)
    )
    assert take(db, cancel)["orders"][0]["status"] == "cancelled"
    # An update from before the cancellation arrives late: dropped, the order stays cancelled.
    late = Inbound("orders/updated", event_id="e2", occurred_at=T0 + timedelta(minutes=1), orders=(order("B-1"),))
    outcome = take(db, late)
    assert outcome["status"] == "stale" and outcome["stale"] == ["B-1"]
    assert sum(position(db, n)[1] for n in ("dc", "store")) == 0  # nothing held again


def test_a_cancellation_releases_and_an_unknown_one_is_reported(db: Database) -> None:
    seed(db)
    take(db, Inbound("orders/create", event_id="c1", occurred_at=T0, orders=(order("C-1", 2),)))
    assert sum(position(db, n)[1] for n in ("dc", "store")) == 2
    done = take(db, Inbound("orders/cancelled", event_id="c2", cancellations=(Cancellation("C-1", "customer"),)))
    assert done["orders"][0]["status"] == "cancelled"
    assert sum(position(db, n)[1] for n in ("dc", "store")) == 0
    unknown = take(db, Inbound("orders/cancelled", event_id="c3", cancellations=(Cancellation("nope"),)))
    assert unknown["orders"][0]["order_id"] is None and "unknown" in unknown["orders"][0]["status"]
    twice = take(db, Inbound("orders/cancelled", event_id="c4", cancellations=(Cancellation("C-1"),)))
    assert twice["orders"][0]["status"] == "cancelled"


def test_an_in_store_sale_leaves_that_store_at_once(db: Database) -> None:
    seed(db)
    outcome = take(db, Inbound("order.created", event_id="p1", orders=(order("POS-1", 2, node_id="store"),)))
    assert outcome["orders"][0]["status"] == "shipped"
    assert position(db, "store") == (1, 0)  # handed over at the counter
    assert position(db, "dc") == (10, 0)  # no routing: the warehouse is untouched
    # More than the store has: what it had goes out, the rest waits for the store's stock.
    short = take(db, Inbound("order.created", event_id="p2", orders=(order("POS-2", 3, node_id="store"),)))
    assert short["orders"][0]["status"] == "partially_shipped"
    assert position(db, "store") == (0, 0) and position(db, "dc") == (10, 0)


def test_refunds_are_recorded_without_moving_stock(db: Database) -> None:
    seed(db)
    take(db, Inbound("orders/create", event_id="r1", orders=(order("R-1"),)))
    before = [position(db, n) for n in ("dc", "store")]
    outcome = take(db, Inbound("refunds/create", event_id="r2", refunds=(Refund("R-1", "ref-9", (Line("TEE", 1),)),)))
    assert outcome["refunds"] == [{"external_id": "R-1", "refund_id": "ref-9", "restock_lines": 1}]
    assert [position(db, n) for n in ("dc", "store")] == before


def test_an_ignored_delivery_is_remembered(db: Database) -> None:
    seed(db)
    ping = Inbound("ping", event_id="ping-1", ignored="a ping")
    assert take(db, ping) == {"status": "ignored", "topic": "ping", "reason": "a ping"}
    assert take(db, ping)["status"] == "duplicate"
