"""The Meta connector: push-only (Meta's order API was retired in 2026), against FakeMeta."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from crossdock.connectors.channels.meta import MetaConnector
from crossdock.connectors.fakes.meta import FakeMeta
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.sdk import (
    FEED_DONE,
    FEED_FAILED,
    FEED_PENDING,
    ChannelError,
    FeedChannel,
    FeedOutcome,
    PayloadError,
    PushResult,
    QuantityUpdate,
    RawWebhook,
    SignatureError,
)
from crossdock.domain.catalog import Channel, ChannelType

TOKEN = "meta-test-token"
T = TypeVar("T")


def channel(api_url: str = "http://127.0.0.1:9", **config: object) -> Channel:
    base: dict[str, object] = {"catalog_id": "1234567890", "access_token": TOKEN, "api_url": api_url}
    return Channel("ig", ChannelType.META, "Instagram shop", ("wh-1",), config={**base, **config})


@pytest.fixture
def fake() -> Iterator[tuple[FakeMeta, str]]:
    meta = FakeMeta("1234567890", TOKEN)
    with FakeServer(meta) as server:
        yield meta, server.url


def run(conn_channel: Channel, action: Callable[[MetaConnector], Awaitable[T]]) -> T:
    async def go() -> T:
        async with httpx.AsyncClient(timeout=10) as http:
            return await action(MetaConnector(conn_channel, http))

    return asyncio.run(go())


def test_webhooks_are_refused_because_the_order_api_is_retired() -> None:
    conn = MetaConnector(channel(), None)  # type: ignore[arg-type]
    webhook = RawWebhook(
        "https://x/v1/channels/ig/webhooks", {"x-hub-signature-256": "sha256=00"}, b"{}", datetime.now(UTC)
    )
    with pytest.raises(SignatureError, match="retired in 2026"):
        conn.verify(webhook)
    with pytest.raises(PayloadError, match="commerce order API was retired"):
        conn.parse(webhook)


def test_push_and_read_back_with_paging(fake: tuple[FakeMeta, str]) -> None:
    meta, url = fake
    skus = [f"RID-{i:03d}" for i in range(130)]
    for s in skus:
        meta.add_product(s)

    async def both(c: MetaConnector) -> tuple[Any, dict[str, int]]:
        return await c.push([QuantityUpdate(s, i, 1) for i, s in enumerate(skus)]), await c.read([*skus, "NOT-THERE"])

    result, read = run(channel(url), both)
    assert sorted(result.accepted) == skus and result.rejected == {}
    assert meta.quantity("RID-129") == 129
    assert read == {s: i for i, s in enumerate(skus)}
    # 130 retailer ids read in filter chunks of 100, each followed through its pages
    assert sum(1 for m, p in meta.calls if p.endswith("/products")) >= 2
    assert ("POST", "/v23.0/1234567890/items_batch") in meta.calls


def test_unknown_item_rejected_and_stale_sequence_dropped(fake: tuple[FakeMeta, str]) -> None:
    meta, url = fake
    meta.add_product("A", 1)

    async def steps(c: MetaConnector) -> list[Any]:
        return [
            await c.push([QuantityUpdate("A", 5, 2), QuantityUpdate("GHOST", 3, 1)]),
            await c.push([QuantityUpdate("A", 9, 1)]),  # older than what was pushed
            await c.push([QuantityUpdate("A", -4, 3)]),  # never a negative quantity
        ]

    first, stale, third = run(channel(url), steps)
    assert first.accepted == ("A",)
    assert first.rejected == {"GHOST": "Item does not exist and allow_upsert is false"}
    assert meta.quantity("GHOST") is None  # not created as an empty product
    assert stale.accepted == () and stale.rejected == {}
    assert third.accepted == ("A",)
    assert meta.history("A") == [5, 0]


def test_a_batch_in_progress_is_pending_until_it_finishes(fake: tuple[FakeMeta, str]) -> None:
    meta, url = fake
    for sku in ("A", "B", "C"):
        meta.add_product(sku, 1)
    meta.batch_steps = 2  # the check in push and the first settle find it in_progress
    meta.refuse("B", "(#2000) This item cannot be sold here")

    async def steps(c: MetaConnector) -> tuple[PushResult, list[FeedOutcome], int | None, list[FeedOutcome]]:
        assert isinstance(c, FeedChannel)
        result = await c.push([QuantityUpdate(s, 6, 1) for s in ("A", "B", "C")])
        first = await c.settle(result.pending)
        return result, first, meta.quantity("A"), await c.settle(result.pending)

    result, first, meanwhile, second = run(channel(url), steps)
    assert result.accepted == () and [sorted(u.sku for u in f.updates) for f in result.pending] == [["A", "C"]]
    assert result.rejected == {"B": "(#2000) This item cannot be sold here"}  # reported while in progress
    assert first[0].status == FEED_PENDING and meanwhile == 1
    assert (second[0].status, dict(second[0].rejected)) == (FEED_DONE, {})
    assert (meta.quantity("A"), meta.quantity("B"), meta.quantity("C")) == (6, 1, 6)


def test_a_batch_that_ends_in_error_is_reported_failed_and_applies_nothing(fake: tuple[FakeMeta, str]) -> None:
    meta, url = fake
    meta.add_product("A", 1)
    meta.batch_steps = 1
    meta.end_next_batches(1)

    async def steps(c: MetaConnector) -> list[FeedOutcome]:
        result = await c.push([QuantityUpdate("A", 6, 1)])
        return await c.settle(result.pending)

    [outcome] = run(channel(url), steps)
    assert (outcome.status, outcome.error) == (FEED_FAILED, "Meta batch ended 'error'")
    assert meta.quantity("A") == 1 and meta.history("A") == []


@pytest.mark.parametrize(("status", "code", "permanent"), [(500, 2, False), (400, 80014, False), (400, 190, True)])
def test_graph_errors_become_channel_errors(
    fake: tuple[FakeMeta, str], status: int, code: int, permanent: bool
) -> None:
    meta, url = fake
    meta.add_product("A")
    meta.fail_next(1, status=status, code=code)
    with pytest.raises(ChannelError) as caught:
        run(channel(url), lambda c: c.push([QuantityUpdate("A", 1, 1)]))
    assert caught.value.permanent is permanent
    assert f"code {code}" in str(caught.value)
    assert meta.quantity("A") == 0


def test_bad_token_is_permanent(fake: tuple[FakeMeta, str]) -> None:
    _, url = fake
    with pytest.raises(ChannelError) as caught:
        run(channel(url, access_token="expired"), lambda c: c.read(["A"]))
    assert caught.value.permanent and "code 190" in str(caught.value)
