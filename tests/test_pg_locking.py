"""PostgreSQL: a transaction that waited for a SKU's lock sees the positions its predecessor left."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
import pytest

from crossdock.domain.position import Reason
from crossdock.services.inventory import Adjustment, adjust_stock
from crossdock.store.database import open_database
from crossdock.store.migrate import upgrade
from tests.conftest import fresh_postgres
from tests.test_relay import SKUS, seed


def last_position_event(uow: Any) -> dict[str, Any]:
    row = uow.one("SELECT payload FROM outbox WHERE type LIKE '%position_changed%' ORDER BY position DESC LIMIT 1")
    data: dict[str, Any] = orjson.loads(row[0])["data"]
    return data


def test_a_count_that_waited_for_the_lock_counts_from_the_committed_positions(pg_server: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    url = fresh_postgres(pg_server)
    upgrade(url)
    db = open_database(url, writers=2)
    try:
        seed(db)
        sku = SKUS[0]
        db.run(partial(adjust_stock, adjustments=[Adjustment(sku, "n1", Reason.RECEIPT, delta=10)]))
        with psycopg.connect(url) as other:
            other.execute("SELECT 1 FROM skus WHERE sku = %s FOR UPDATE", (sku,))
            other.execute("UPDATE positions SET on_hand = on_hand + 5 WHERE sku = %s", (sku,))
            count = db.submit(
                partial(adjust_stock, adjustments=[Adjustment(sku, "n1", Reason.CYCLE_COUNT, set_quantity=3)])
            )
            time.sleep(0.3)
            assert not count.done(), "the count waits for the SKU's lock"
            other.commit()
        (position,) = count.result(timeout=10)
        assert position.on_hand == 3
        event = db.read(last_position_event)
        assert event["before"]["on_hand"] == 15, "the count started from what the other transaction committed"
        assert event["after"]["on_hand"] == 3
    finally:
        db.close()
