"""Property: however the sellable-quantity changes arrive (shuffled, repeated, some pushes held back
and sent late), a channel ends holding the newest quantity of every SKU, and nothing stays queued.

The real parts: the channel_stock tables (SQLite), the custom channel's connector and a storefront
that keeps what it is sent, over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossdock.connectors.channels.custom import CustomConnector
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.fakes.storefront import FakeStorefront
from crossdock.connectors.sdk import QuantityUpdate
from crossdock.domain.catalog import Channel, ChannelType
from crossdock.domain.channel_stock import DesiredStock
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade

SKUS = ["A", "B", "C"]
EXAMPLES = itertools.count()
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture(scope="module")
def shop() -> Iterator[tuple[FakeStorefront, str]]:
    storefront = FakeStorefront()
    with FakeServer(storefront) as server:
        yield storefront, server.url


# A change: (SKU, its new quantity); sequences are given in order per SKU when the changes are made.
changes = st.lists(st.tuples(st.sampled_from(SKUS), st.integers(0, 50)), min_size=1, max_size=25)
# What happens to the stream: a shuffle, repeats, and where pushes happen or are held back.
steps = st.lists(st.sampled_from(["record", "record", "push", "hold", "release"]), min_size=1, max_size=40)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(made=changes, order=st.randoms(use_true_random=False), repeats=st.integers(0, 10), plan=steps)
def test_a_channel_ends_with_the_newest_quantity(
    shop: tuple[FakeStorefront, str], made: list[tuple[str, int]], order: random.Random, repeats: int, plan: list[str]
) -> None:
    storefront, url = shop
    folder = Path(tempfile.mkdtemp(prefix="crossdock-prop-"))
    database = f"sqlite:///{folder / 'p.db'}"
    upgrade(database)
    db = open_database(database, writers=1)
    channel_id = f"c{next(EXAMPLES)}"  # its SKUs are the example's own at the storefront
    try:
        asyncio.run(_play(db, storefront, url, channel_id, made, order, repeats, plan))
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _play(
    db: Database,
    storefront: FakeStorefront,
    url: str,
    channel_id: str,
    made: list[tuple[str, int]],
    rng: random.Random,
    repeats: int,
    plan: list[str],
) -> None:
    seq: dict[str, int] = {}
    rows: list[DesiredStock] = []
    for sku, qty in made:
        seq[sku] = seq.get(sku, 0) + 1
        rows.append(DesiredStock(channel_id, f"{channel_id}-{sku}", qty, seq[sku], NOW))
    newest = {r.sku: r.available for r in rows}  # the last change of each SKU
    stream = rows + [rng.choice(rows) for _ in range(repeats)]
    rng.shuffle(stream)

    config = {"push_url": f"{url}/push", "secret": storefront.secret}
    channel = Channel(channel_id, ChannelType.CUSTOM, "prop", (), config=config)
    held: list[list[DesiredStock]] = []
    async with httpx.AsyncClient(timeout=10) as http:
        connector = CustomConnector(channel, http)

        async def push(batch: list[DesiredStock]) -> None:
            if not batch:
                return
            result = await connector.push([QuantityUpdate(r.sku, r.available, r.sequence) for r in batch])
            pushed = [(r.sku, r.sequence) for r in batch if r.sku not in result.rejected]
            db.submit(lambda uow: uow.mark_pushed(channel_id, pushed, {})).result()

        def pending() -> list[DesiredStock]:
            return db.read(lambda uow: uow.pending_stock(channel_id, 100))

        for step in plan:
            if step == "record" and stream:
                n = rng.randint(1, 4)
                take = stream[:n]
                del stream[:n]
                db.submit(lambda uow, t=take: uow.record_desired(t)).result()
            elif step == "push":
                await push(pending())
            elif step == "hold":
                held.append(pending())  # read now, pushed late: by then it may be old news
            elif step == "release" and held:
                await push(held.pop(0))
        db.submit(lambda uow: uow.record_desired(stream)).result()  # whatever had not arrived yet
        for batch in held:
            await push(batch)
        while batch := pending():
            await push(batch)

    assert {sku: storefront.quantity(sku) for sku in newest} == newest
    assert pending_count(db, channel_id) == 0


def pending_count(db: Database, channel_id: str) -> int:
    return len(db.read(lambda uow: uow.pending_stock(channel_id, 1000)))
