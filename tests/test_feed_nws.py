"""The NWS weather-alert feed against a fake api.weather.gov: alerts become disruptions by severity,
updates replace and cancels remove what they reference, zone-only alerts get their zones' shapes,
failures are connector errors; a sync keeps the stored disruptions in step, and the poller of a
running server fills them in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from crossdock.connectors.fakes.nws import FakeNws, sample_alerts
from crossdock.connectors.fakes.server import FakeServer
from crossdock.connectors.feeds.nws import NwsFeed
from crossdock.connectors.registry import feed_connectors
from crossdock.connectors.sdk import ChannelError, ConfigError, FeedConnector, PayloadError
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport
from crossdock.routing.disruptions import Disruption, Policy, SeverityRule
from crossdock.services.disruptions import sync_feed
from crossdock.store.database import Database
from tests.conftest import LiveServer

CINCINNATI = (39.10, -84.51)
CHICAGO_LOOP = (41.88, -87.62)
EAST_DC = (40.58, -74.27)  # the East DC of tests/world.py, in New Jersey


@pytest.fixture
def fake() -> Iterator[tuple[FakeNws, str]]:
    nws = FakeNws(sample_alerts(datetime.now(UTC)))
    with FakeServer(nws) as server:
        yield nws, server.url


def read(url: str, policy: Policy | None = None, **config: Any) -> tuple[list[Disruption], NwsFeed]:
    async def go() -> tuple[list[Disruption], NwsFeed]:
        transport = CheckedTransport(AddressPolicy.from_setting("127.0.0.0/8"))
        async with httpx.AsyncClient(transport=transport, timeout=10) as http:
            feed = NwsFeed({"api_url": url, **config}, http, policy or Policy())
            return await feed.disruptions(), feed

    return asyncio.run(go())


def by_title(found: list[Disruption]) -> dict[str, Disruption]:
    return {d.title: d for d in found}


def alert_id(nws: FakeNws, event: str, message_type: str = "Alert") -> str:
    return str(
        next(
            f["properties"]["id"]
            for f in nws.alerts
            if f["properties"]["event"] == event and f["properties"]["messageType"] == message_type
        )
    )


def test_the_feed_is_an_installed_feed_connector() -> None:
    assert feed_connectors()["nws"] is NwsFeed
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    assert isinstance(NwsFeed({}, http), FeedConnector)


def test_alerts_become_disruptions_by_severity(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    found, feed = read(url)
    alerts = by_title(found)
    assert set(alerts) == {"Hurricane Warning", "Winter Storm Warning", "Flood Watch"}  # the advisory was cancelled

    hurricane = alerts["Hurricane Warning"]
    source = next(f["properties"] for f in nws.alerts if f["properties"]["event"] == "Hurricane Warning")
    assert hurricane.id == source["id"] and hurricane.source == "nws"
    assert (hurricane.severity, hurricane.effect, hurricane.extra_days) == ("extreme", "exclude", 2)
    assert hurricane.covers(*EAST_DC) and not hurricane.covers(*CHICAGO_LOOP)
    assert hurricane.starts_at == datetime.fromisoformat(source["onset"])
    assert hurricane.ends_at == datetime.fromisoformat(source["expires"])  # no `ends`: the message's expiry
    assert hurricane.note == source["headline"]

    storm = alerts["Winter Storm Warning"]
    assert (storm.severity, storm.effect, storm.penalty, storm.extra_days) == ("moderate", "penalty", 10.0, 1)
    assert storm.covers(*CHICAGO_LOOP)
    storm_source = next(f["properties"] for f in nws.alerts if f["properties"]["event"] == "Winter Storm Warning")
    assert storm.ends_at == datetime.fromisoformat(storm_source["ends"])

    path, query, headers = nws.calls[0]
    assert path == "/alerts/active"
    assert "status=actual" in query and "message_type=alert%2Cupdate%2Ccancel" in query
    assert headers["accept"] == "application/geo+json" and headers["user-agent"]
    assert feed.skipped == {}


def test_a_zone_only_alert_takes_its_zones_shapes(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    flood = by_title(read(url)[0])["Flood Watch"]
    assert flood.severity == "severe" and flood.effect == "penalty"  # a watch ("Possible") counts a level lower
    assert flood.covers(*CINCINNATI)
    assert flood.covers(39.10, -84.0)  # Clermont, the second zone
    assert not flood.covers(40.0, -84.51)
    assert sorted(p for p, _, _ in nws.calls if p.startswith("/zones/")) == [
        "/zones/forecast/OHZ077",
        "/zones/forecast/OHZ078",
    ]


def test_zones_are_fetched_once_and_unknown_ones_leave_the_alert_out(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake

    async def twice() -> tuple[list[Disruption], NwsFeed]:
        async with httpx.AsyncClient(transport=CheckedTransport(AddressPolicy.from_setting("127.0.0.0/8"))) as http:
            feed = NwsFeed({"api_url": url}, http)
            await feed.disruptions()
            return await feed.disruptions(), feed

    asyncio.run(twice())
    assert sum(1 for p, _, _ in nws.calls if p.startswith("/zones/")) == 2
    nws.zones.clear()
    found, feed = read(url)
    assert "Flood Watch" not in by_title(found)
    flood_id = alert_id(nws, "Flood Watch")
    assert "OHZ077" in feed.skipped[flood_id]
    found, feed = read(url, resolve_zones=False)
    assert "Flood Watch" not in by_title(found) and "not resolved" in feed.skipped[flood_id]


def test_an_update_replaces_the_alert_and_a_cancel_removes_it(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    storm_id = alert_id(nws, "Winter Storm Warning")
    later = datetime.now(UTC)
    new_id = nws.update(storm_id, later, severity="Severe", event="Winter Storm Warning")
    alerts = by_title(read(url)[0])
    assert alerts["Winter Storm Warning"].id == new_id
    assert alerts["Winter Storm Warning"].effect == "exclude"  # upgraded to severe
    assert [d.id for d in read(url)[0]].count(storm_id) == 0

    hurricane_id = alert_id(nws, "Hurricane Warning")
    nws.cancel(hurricane_id, later)
    assert "Hurricane Warning" not in by_title(read(url)[0])


def test_minor_alerts_and_the_policy(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    found, _ = read(url, policy=Policy(moderate=SeverityRule(None), downgrade_uncertain=False))
    alerts = by_title(found)
    assert set(alerts) == {"Hurricane Warning", "Flood Watch"}
    assert alerts["Flood Watch"].effect == "exclude"  # severe, not downgraded
    found, _ = read(url, area="IL")
    assert set(by_title(found)) == {"Winter Storm Warning"}
    assert "area=IL" in nws.calls[-1][1]


def test_failures_are_connector_errors(fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    nws.fail_next(1, 503)
    with pytest.raises(ChannelError) as failed:
        read(url)
    assert not failed.value.permanent and "503" in str(failed.value)
    nws.fail_next(1, 429, retry_after=7)
    with pytest.raises(ChannelError) as limited:
        read(url)
    assert limited.value.retry_after == 7
    nws.fail_next(1, 404)
    with pytest.raises(ChannelError) as refused:
        read(url)
    assert refused.value.permanent and "unexpected problem" in str(refused.value)  # NWS's problem detail
    with pytest.raises(ConfigError):
        read(url, user_agent="")
    with pytest.raises(ChannelError, match="could not be reached"):
        read("http://127.0.0.1:9")  # nothing listens on the discard port


def test_an_answer_that_is_not_a_feature_collection_is_a_payload_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/alerts/active":
            return httpx.Response(200, json={"type": "Feature"})
        return httpx.Response(200, content=b"<html>")

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            await NwsFeed({"api_url": "https://nws.test"}, http).disruptions()

    with pytest.raises(PayloadError, match="FeatureCollection"):
        asyncio.run(go())


def test_a_sync_writes_what_the_feed_lists_and_ends_what_it_no_longer_does(
    fake: tuple[FakeNws, str], db: Database
) -> None:
    nws, url = fake
    first = db.run(lambda uow: sync_feed(uow, "nws", read(url)[0]))
    assert first == {"listed": 3, "written": 3, "ended": 0}
    assert db.run(lambda uow: sync_feed(uow, "nws", read(url)[0]))["written"] == 0  # nothing changed

    manual = Disruption("strike", "Port strike", node_ids=frozenset({"wh-east"}))
    db.run(lambda uow: uow.put_disruption(manual))  # type: ignore[attr-defined]
    hurricane_id = alert_id(nws, "Hurricane Warning")
    nws.cancel(hurricane_id, datetime.now(UTC))
    second = db.run(lambda uow: sync_feed(uow, "nws", read(url)[0]))
    assert second == {"listed": 2, "written": 0, "ended": 1}

    active = {d.id for d in db.read(lambda uow: uow.active_disruptions())}
    # The flood watch starts in two hours: stored, not active yet; the hurricane is over.
    assert active == {alert_id(nws, "Winter Storm Warning"), "strike"}
    ended = db.read(lambda uow: uow.get_disruption(hurricane_id))  # type: ignore[attr-defined]
    assert ended is not None and ended.ends_at is not None  # kept on record, ended
    stored = {d.id: d.source for d in db.read(lambda uow: uow.disruptions())}  # type: ignore[attr-defined]
    assert stored[alert_id(nws, "Flood Watch")] == "nws" and stored["strike"] == "manual"


def test_a_running_server_polls_the_feed(database_url: str, fake: tuple[FakeNws, str]) -> None:
    nws, url = fake
    settings = {"weather_feed_url": url, "weather_poll_seconds": 0.2, "webhook_allow_private": "127.0.0.0/8"}
    with LiveServer(database_url, **settings) as live, live.client() as http:
        listed = _eventually(lambda: http.get("/v1/disruptions", params={"active": "true"}).json()["disruptions"])
        assert {d["title"] for d in listed} == {"Hurricane Warning", "Winter Storm Warning"}
        assert all(d["source"] == "nws" for d in listed)
        square = [[[-88.0, 41.0], [-87.0, 41.0], [-87.0, 42.0], [-88.0, 42.0], [-88.0, 41.0]]]
        mine = {"title": "mine", "area": {"type": "Polygon", "coordinates": square}}
        r = http.put("/v1/disruptions/" + listed[0]["id"], json=mine)
        assert r.status_code == 422 and "nws feed" in r.json()["detail"]  # the next read would undo it
        nws.cancel(alert_id(nws, "Hurricane Warning"), datetime.now(UTC))

        def active_titles() -> list[str]:
            found = http.get("/v1/disruptions", params={"active": "true"}).json()["disruptions"]
            return sorted(d["title"] for d in found)

        _eventually(lambda: active_titles() == ["Winter Storm Warning"])
        assert active_titles() == ["Winter Storm Warning"]


def _eventually(probe: Any, within: float = 20.0) -> Any:
    """The probe's first non-empty answer; the poller runs on its own schedule."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
