"""The demo's events: a webhook endpoint on a local receiver takes every event of the sale, and the
demo checks from the outside that each committed event arrived, signed, in order per subject."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from rich.table import Table

from crossdock.benchmarks.receiver import Receiver
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


async def subscribe(client: httpx.AsyncClient, receiver: Receiver) -> Subscription:
    _, end = await _feed(client, "0")
    body = {"url": receiver.url, "description": "the demo's receiver: every event"}
    created = (await client.post("/v1/webhook-endpoints", json=body)).raise_for_status().json()
    return Subscription(receiver, created["secret"], end)


async def _feed(client: httpx.AsyncClient, after: str) -> tuple[dict[str, dict[str, Any]], str]:
    """The events after a cursor, by id, and the cursor at the end."""
    events: dict[str, dict[str, Any]] = {}
    while True:
        response = await client.get("/v1/events", params={"after": after, "limit": 1000})
        page = response.raise_for_status().json()
        if not page["events"]:
            return events, str(page["next_cursor"])
        events.update((e["id"], e) for e in page["events"])
        after = page["next_cursor"]


async def prove_events(client: httpx.AsyncClient, sub: Subscription) -> EventsProof:
    committed, _ = await _feed(client, sub.after)
    deadline = time.monotonic() + SETTLE_SECONDS
    while {orjson.loads(d.body)["id"] for d in sub.receiver.deliveries} < committed.keys():
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)

    proof = EventsProof(committed=len(committed), by_type=Counter(e["type"] for e in committed.values()))
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
