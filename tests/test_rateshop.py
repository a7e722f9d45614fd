"""Rate shopping against a fake EasyPost: live services per origin, kept for a while, a deadline that
leaves a slow carrier out, and a circuit that stops asking a failing one until it may have recovered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from crossdock.connectors.fakes.easypost import FakeEasyPost
from crossdock.connectors.fakes.server import FakeServer
from crossdock.domain.carrier import CarrierAccount
from crossdock.domain.catalog import Node, NodeType
from crossdock.domain.order import ShipTo
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.services.rateshop import RateShop

KEY = "EZTK_test_key"
EAST = Node("east", NodeType.WAREHOUSE, "East", "07001", "US", 40.58, -74.27)
WEST = Node("west", NodeType.WAREHOUSE, "West", "91761", "US", 34.03, -117.59)
NYC = ShipTo("10001", "US")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def easypost() -> Iterator[tuple[FakeEasyPost, CarrierAccount]]:
    fake = FakeEasyPost(KEY)
    with FakeServer(fake) as server:
        yield fake, CarrierAccount("ep", "easypost", "EasyPost", {"api_key": KEY, "api_url": server.url})


def shop(clock: Clock, **kw: float) -> RateShop:
    return RateShop(AddressPolicy.from_setting("127.0.0.0/8"), clock=clock, **kw)  # type: ignore[arg-type]


def test_live_services_per_origin_and_kept_for_a_while(easypost: tuple[FakeEasyPost, CarrierAccount]) -> None:
    fake, account = easypost
    clock = Clock()
    rates = shop(clock, deadline=5.0)

    async def go() -> tuple[dict[str, tuple[object, ...]], dict[str, tuple[object, ...]], int]:
        first = await rates.services([account], [EAST, WEST], NYC, 900)
        asked = len(fake.calls)
        again = await rates.services([account], [EAST, WEST], NYC, 900)
        await rates.aclose()
        return first, again, asked

    first, again, asked = asyncio.run(go())
    assert set(first) == {"east", "west"} and all(first.values())
    assert asked == 2 and len(fake.calls) == 2  # the second order to New York asked nobody
    assert again == first
    east = {(s.carrier, s.service): s for s in first["east"]}  # type: ignore[attr-defined]
    west = {(s.carrier, s.service): s for s in first["west"]}  # type: ignore[attr-defined]
    shared = set(east) & set(west)
    assert shared and all(east[k].prices[0] <= west[k].prices[0] for k in shared)  # nearer is cheaper
    assert all(s.brackets == (1000,) for s in first["east"])  # type: ignore[attr-defined]


def test_a_slow_carrier_is_left_out_then_paused(easypost: tuple[FakeEasyPost, CarrierAccount]) -> None:
    fake, account = easypost
    fake.delay = 1.0
    clock = Clock()
    rates = shop(clock, deadline=0.1, trip_after=2, open_for=60.0)

    async def go() -> list[dict[str, object]]:
        seen = [await rates.services([account], [EAST], NYC, 500) for _ in range(3)]
        await rates.aclose()
        return seen  # type: ignore[return-value]

    assert asyncio.run(go()) == [{}, {}, {}]
    assert rates.is_open("ep")
    assert fake.arrived == 2  # the third decision did not ask (nor wait for) it at all


def test_the_circuit_closes_again(easypost: tuple[FakeEasyPost, CarrierAccount]) -> None:
    fake, account = easypost
    clock = Clock()
    rates = shop(clock, deadline=5.0, trip_after=1, open_for=60.0)

    async def go() -> tuple[object, object, object]:
        fake.fail_next(1, 500)
        failed = await rates.services([account], [EAST], NYC, 500)
        paused = await rates.services([account], [WEST], NYC, 500)
        clock.now += 61
        back = await rates.services([account], [WEST], NYC, 500)
        await rates.aclose()
        return failed, paused, back

    failed, paused, back = asyncio.run(go())
    assert failed == {} and paused == {} and set(back) == {"west"}  # type: ignore[arg-type]
    assert not rates.is_open("ep")
