"""The demo's events: a webhook endpoint on a local receiver takes every event of the sale, and the
demo checks from the outside that each committed event arrived, signed, in order per subject."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.table import Table

from crossdock.api.schemas import CloudEventOut
from crossdock.benchmarks.receiver import Receiver
from crossdock.client import Crossdock
from crossdock.events.webhooks.signing import sign
from crossdock.store.clock import from_text

SETTLE_SECONDS = 15.0


@dataclass
class Subscription:
    receiver: Receiver
    secret: str
    after: str  # the feed cursor when the endpoint was registered: what follows is for it


@dataclass
class EventsProof:
    committed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    delivered: int = 0  # distinct events received
    repeats: int = 0
    missing: int = 0
    invented: int = 0
    bad_signatures: int = 0
    out_of_order: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.committed > 0 and not (self.missing or self.invented or self.bad_signatures or self.out_of_order)


def subscribe(crossdock: Crossdock, receiver: Receiver) -> Subscription:
    _, end = _feed(crossdock, "0")
    created = crossdock.create_webhook_endpoint(
        {"url": receiver.url, "description": "the demo's receiver: every event"}
    )
    assert created.secret is not None  # a new endpoint's answer always holds it
    return Subscription(receiver, created.secret, end)


def _feed(crossdock: Crossdock, after: str) -> tuple[dict[str, CloudEventOut], str]:
    """The events after a cursor, by id, and the cursor at the end."""
    events: dict[str, CloudEventOut] = {}
    while page := crossdock.events(after, limit=1000):
        if not page.events:
            return events, page.next_cursor
        events.update((e.id, e) for e in page.events)
        after = page.next_cursor
    raise AssertionError("unreachable")


def prove_events(crossdock: Crossdock, sub: Subscription) -> EventsProof:
    committed, _ = _feed(crossdock, sub.after)
    deadline = time.monotonic() + SETTLE_SECONDS
    while {orjson.loads(d.body)["id"] for d in sub.receiver.deliveries} < committed.keys():
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)

    proof = EventsProof(committed=len(committed), by_type=Counter(e.type for e in committed.values()))
    seen: set[str] = set()
    last: dict[str, int] = defaultdict(int)
    for d in list(sub.receiver.deliveries):
        event = orjson.loads(d.body)
        expected = sign(sub.secret, d.headers["webhook-id"], int(d.headers["webhook-timestamp"]), d.body)
        proof.bad_signatures += expected not in d.headers["webhook-signature"].split()
        if event["id"] not in committed:
            proof.invented += 1
            continue
        if event["id"] in seen:
            proof.repeats += 1
            continue
        seen.add(event["id"])
        proof.out_of_order += event["sequence"] <= last[event["subject"]]
        last[event["subject"]] = event["sequence"]
        proof.latencies_ms.append((d.arrived - from_text(event["time"]).timestamp()) * 1000)
    proof.delivered = len(seen)
    proof.missing = len(committed.keys() - seen)
    return proof


def events_table(proof: EventsProof, percentile: Any) -> Table:
    t = Table(title="Events: every change as a signed webhook (Standard Webhooks)", title_justify="left")
    t.add_column("event type")
    t.add_column("committed", justify="right")
    for kind, n in sorted(proof.by_type.items()):
        t.add_row(kind.removeprefix("crossdock.").removesuffix(".v1"), f"{n:,}")
    lat = proof.latencies_ms
    t.add_section()
    t.add_row("delivered to the local receiver (distinct, repeats)", f"{proof.delivered:,}, {proof.repeats:,}")
    t.add_row("missing / not committed / bad signature", f"{proof.missing} / {proof.invented} / {proof.bad_signatures}")
    t.add_row("out of order for their SKU or order", str(proof.out_of_order))
    t.add_row(
        "commit -> webhook p50 / p99 (ms), at the sale's full load",
        f"{percentile(lat, 50):.1f} / {percentile(lat, 99):.1f}",
    )
    return t
