"""Feeds a channel applies later (Amazon JSON_LISTINGS_FEEDs here): the channel worker stores them
with the push, checks them until they end, marks the SKUs a finished feed refused, pushes again the
SKUs of a feed that ended FATAL (their newest quantity), and goes on checking after a restart."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossdock.api.app import create_app
from crossdock.client import ClientCredentials
from crossdock.config import Settings
from crossdock.connectors.fakes.amazon import TOKEN_PATH, FakeAmazon
from crossdock.connectors.fakes.server import FakeServer
from crossdock.events.channel_sync import ChannelSync, SyncSettings
from crossdock.events.relay import Relay
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.provisioning import create_client
from crossdock.store.database import Database, open_database
from crossdock.store.migrate import upgrade
from tests.webhook_helpers import AppServer
from tests.world import NODES

LOOPBACK = "127.0.0.0/8"
SKUS = [f"F{n:02d}" for n in range(12)]  # more than Amazon's SMALL_PUSH: they go as one feed
SETTINGS = SyncSettings(
    feed_check=timedelta(seconds=0.05),
    feed_check_most=timedelta(seconds=0.2),
    policy=AddressPolicy.from_setting(LOOPBACK),
    pause=timedelta(seconds=1),
)


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Hub:
    def __init__(self, db: Database, http: httpx.Client) -> None:
        self.db, self.http = db, http
        self.relay: Relay | None = None

    def start_sync(self) -> None:
        self.relay = Relay(self.db, [ChannelSync(SETTINGS)], poll_seconds=0.05).start()

    def stop_sync(self) -> None:
        assert self.relay is not None
        self.relay.stop()
        self.relay = None

    def sync(self, channel_id: str = "amz") -> dict[str, Any]:
        answer = self.http.get(f"/v1/channels/{channel_id}/sync")
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def refusal(self, sku: str, channel_id: str = "amz") -> str | None:
        def read(uow: Any) -> str | None:
            row = uow.one(
                "SELECT refused FROM channel_stock WHERE channel_id = :c AND sku = :s", {"c": channel_id, "s": sku}
            )
            return row[0] if row else None

        return self.db.read(read)

    def stock(self, quantities: dict[str, int]) -> None:
        adjustments = [
            {"sku": sku, "node_id": "wh-east", "delta": q, "reason": "receipt"} for sku, q in quantities.items()
        ]
        self.http.post("/v1/inventory/adjustments", json={"adjustments": adjustments}).raise_for_status()


@pytest.fixture
def amazon() -> Iterator[tuple[FakeAmazon, str]]:
    fake = FakeAmazon()
    for sku in SKUS:
        fake.add_listing(sku, 0)
    with FakeServer(fake) as server:
        yield fake, server.url


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    url = f"sqlite:///{tmp_path / 'feeds.db'}"
    upgrade(url)
    db = open_database(url)
    client, secret = create_client(url, "tests", "admin")
    settings = Settings(database_url=url, webhook_allow_private=LOOPBACK, hold_sweep_seconds=3600)
    try:
        with (
            AppServer(create_app(settings, db=db)) as server,
            httpx.Client(base_url=server.base_url, auth=ClientCredentials(client.client_id, secret)) as http,
        ):
            running = Hub(db, http)
            http.put("/v1/nodes/wh-east", json=NODES["wh-east"]).raise_for_status()
            for sku in SKUS:
                http.put(f"/v1/skus/{sku}", json={"name": sku, "weight_grams": 100}).raise_for_status()
            running.stock(dict.fromkeys(SKUS, 5))
            running.start_sync()
            try:
                yield running
            finally:
                with contextlib.suppress(AssertionError):
                    running.stop_sync()
    finally:
        db.close()


def add_amazon(hub: Hub, fake: FakeAmazon, url: str) -> None:
    config = {
        "seller_id": fake.seller_id,
        "marketplace_ids": [fake.marketplace_id],
        "lwa_client_id": fake.client_id,
        "lwa_client_secret": fake.client_secret,
        "refresh_token": fake.refresh_token,
        "lwa_url": url + TOKEN_PATH,
        "api_url": url,
    }
    body = {
        "type": "amazon",
        "name": "Amazon",
        "node_ids": ["wh-east"],
        "buffer": {"units": 0, "percent": 0},
        "config": config,
    }
    hub.http.put("/v1/channels/amz", json=body).raise_for_status()


def test_a_finished_feed_marks_the_skus_it_refused(hub: Hub, amazon: tuple[FakeAmazon, str]) -> None:
    fake, url = amazon
    fake.feed_steps = 10**6  # in progress until released
    fake.refuse_in_feeds("F03", "The listing is locked by Amazon.")
    add_amazon(hub, fake, url)
    eventually(lambda: hub.sync()["pending_feeds"] == 1)  # the new channel's first sync, as one feed
    status = hub.sync()
    assert status["pending"] == 0 and status["refused"] == 0 and fake.quantity("F00") == 0
    fake.release_feeds()
    eventually(lambda: hub.sync()["pending_feeds"] == 0)
    status = hub.sync()
    assert status["refused"] == 1 and status["pending"] == 0
    assert hub.refusal("F03") == "90000900: The listing is locked by Amazon."
    assert hub.refusal("F00") is None
    assert [fake.quantity(s) for s in SKUS] == [0 if s == "F03" else 5 for s in SKUS]
    assert len(fake.feeds) == 1 and fake.patches == []


def test_a_fatal_feed_is_pushed_again_with_the_newest_quantities(hub: Hub, amazon: tuple[FakeAmazon, str]) -> None:
    fake, url = amazon
    fake.feed_steps = 10**6
    fake.end_next_feeds(1, "FATAL")
    add_amazon(hub, fake, url)
    eventually(lambda: hub.sync()["pending_feeds"] == 1)
    changed = SKUS[:4]
    hub.stock(dict.fromkeys(changed, 2))  # newer quantities (7), pushed while the feed is pending
    eventually(lambda: all(fake.quantity(s) == 7 for s in changed))
    fake.feed_steps = 0
    fake.release_feeds()
    eventually(lambda: fake.feed_status("50000") == "FATAL" and all(fake.quantity(s) == 5 for s in SKUS[4:]))
    eventually(lambda: hub.sync()["pending_feeds"] == 0 and hub.sync()["pending"] == 0)
    assert [fake.quantity(s) for s in SKUS] == [7] * 4 + [5] * 8
    assert all(fake.history(s) == [7] for s in changed)  # never the older 5 after the newer 7
    assert all(fake.history(s) == [5] for s in SKUS[4:])
    assert hub.sync()["refused"] == 0


def test_pending_feeds_are_checked_again_after_a_restart(hub: Hub, amazon: tuple[FakeAmazon, str]) -> None:
    fake, url = amazon
    fake.feed_steps = 10**6
    fake.refuse_in_feeds("F07", "The listing is locked by Amazon.")
    add_amazon(hub, fake, url)
    eventually(lambda: hub.sync()["pending_feeds"] == 1)
    hub.stop_sync()
    assert hub.sync()["pending_feeds"] == 1  # stored, not only in the stopped worker
    checked_before = fake.requests.count(("GET", "/feeds/2021-06-30/feeds/50000"))
    fake.feed_steps = 0
    fake.release_feeds()
    hub.start_sync()
    eventually(lambda: hub.refusal("F07") is not None)
    assert fake.requests.count(("GET", "/feeds/2021-06-30/feeds/50000")) > checked_before
    assert fake.feed_status("50000") == "DONE"
    eventually(lambda: hub.sync()["pending_feeds"] == 0)
