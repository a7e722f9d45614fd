"""Every event the core emits, produced over HTTP and read back from the feed, conforms to CloudEvents
1.0 and to its entry in the event catalog; the feed pages, filters and long-polls as documented."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from crossdock.connectors.fakes.warehouse import signed_webhook
from crossdock.domain import events as ev
from crossdock.events.asyncapi import document_text
from crossdock.events.catalog import CATALOG, event_schema
from tests.conftest import LiveServer
from tests.world import LA, NYC, behind_warehouse, order, seed

CLOUDEVENTS_SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared/real-world/conformance/cloudevents/spec_json_schema/cloudevents.json"
)
PROBLEM = "application/problem+json"
# Transfer events are produced and checked against the catalog in tests/test_transfers_api.py.
EMITTED = {t for t, spec in CATALOG.items() if spec.emitted and spec.aggregate != "transfer"}

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; this is the RFC 3339 subset we emit.
    return not isinstance(value, str) or (
        "T" in value and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    )


def closed(schema: Any) -> Any:
    """The schema with every object closed: a field the catalog does not describe fails the test.
    (The published schemas stay open so that consumers accept fields added later.)"""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


VALIDATORS = {
    t: jsonschema.Draft7Validator(closed(event_schema(s)), format_checker=FORMATS) for t, s in CATALOG.items()
}


def read_feed(http: httpx.Client, after: str = "0", limit: int = 50, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every event after the cursor, a page at a time, and the cursor to read on from. A short wait
    on the last page lets PostgreSQL's horizon pass transactions that have just committed."""
    events: list[dict[str, Any]] = []
    while True:
        r = http.get("/v1/events", params={"after": after, "limit": limit, "wait": 0.3, **params})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["events"]) <= limit
        events += page["events"]
        after = page["next_cursor"]
        if not page["events"]:
            return events, after


def post(http: httpx.Client, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


def hold(http: httpx.Client, sku: str, ttl_seconds: int = 60) -> str:
    body = {"channel_id": "web", "lines": [{"sku": sku, "quantity": 1}], "ttl_seconds": ttl_seconds}
    return str(post(http, "/v1/reservations", body)["reservation_id"])


def adjust(http: httpx.Client, *changes: dict[str, Any]) -> None:
    post(http, "/v1/inventory/adjustments", {"adjustments": list(changes)}, 200)


def test_every_event_conforms_to_cloudevents_and_the_catalog(http: httpx.Client) -> None:
    if not CLOUDEVENTS_SCHEMA.exists():
        pytest.skip("the shared real-world folder is absent")
    cloudevents_schema = json.loads(CLOUDEVENTS_SCHEMA.read_text())
    spec_validator = jsonschema.Draft7Validator(cloudevents_schema, format_checker=FORMATS)

    seed(http, {"TEE": {"wh-east": 5}, "MUG": {"wh-east": 1}})
    sku = {"name": "Tee", "weight_grams": 200, "low_stock_threshold": 3}
    r = http.put("/v1/skus/TEE", json=sku)
    assert r.status_code == 200 and r.json()["low_stock_threshold"] == 3, r.text
    assert http.get("/v1/skus/TEE").json() == {"sku": "TEE", **sku}

    shipped = post(http, "/v1/orders", order("A", {"TEE": 3}))  # TEE at wh-east: 5 -> 2 available, low
    partial = post(http, "/v1/orders", order("B", {"MUG": 2}))  # 1 allocated (MUG runs out), 1 backordered
    assert (shipped["status"], partial["status"]) == ("allocated", "partially_allocated")
    post(http, f"/v1/orders/{partial['order_id']}/cancel", {"reason": "changed mind"}, 200)
    shipment = {
        "node_id": "wh-east",
        "lines": [{"sku": "TEE", "quantity": 3}],
        "carrier": "ups",
        "tracking_number": "1Z",
    }
    post(http, f"/v1/orders/{shipped['order_id']}/shipments", shipment)
    secret = behind_warehouse(http, "wh-east")  # its warehouse system reports the carrier's news
    news = {"type": "tracking.updated", "carrier": "ups", "tracking_number": "1Z", "status": "in_transit"}
    body, headers = signed_webhook(news | {"occurred_at": "2026-11-20T08:00:00Z"}, secret)
    assert http.post("/v1/nodes/wh-east/webhooks", content=body, headers=headers).status_code == 200
    committed = hold(http, "TEE")  # TEE is already low: no second low_stock
    checkout = {"external_id": "C", "ship_to": LA}
    from_hold = post(http, f"/v1/reservations/{committed}/commit", checkout)
    released = hold(http, "MUG")
    post(http, f"/v1/reservations/{released}/release", {}, 200)
    expired = hold(http, "MUG", ttl_seconds=1)
    deadline = time.monotonic() + 10
    while http.get(f"/v1/reservations/{expired}").json()["status"] != "expired":
        assert time.monotonic() < deadline, "the hold did not expire"
        time.sleep(0.1)

    events, _ = read_feed(http, limit=7)
    assert {e["type"] for e in events} == EMITTED
    assert len({e["id"] for e in events}) == len(events)

    # The served AsyncAPI document is the catalog's, and its payload schemas take the real events.
    served = http.get("/asyncapi.json")
    assert served.status_code == 200 and served.text == document_text()
    asyncapi = served.json()
    assert "/asyncapi.json" in http.get("/openapi.json").json()["info"]["description"]

    sequences: dict[str, list[int]] = defaultdict(list)
    for event in events:
        where = f"{event['type']} {event['subject']} #{event['sequence']}"
        spec = CATALOG[event["type"]]
        spec_validator.validate(event)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATORS[event["type"]].iter_errors(event)]
        assert not errors, f"{where}: {errors}"
        payload = {"$ref": f"#/components/messages/{spec.name}/payload", "components": asyncapi["components"]}
        jsonschema.Draft7Validator(payload).validate(event)

        message = HTTPMessage({"content-type": "application/cloudevents+json"}, json.dumps(event).encode())
        parsed = from_http(message, JSONFormat())
        assert parsed.get_specversion() == "1.0"
        assert (parsed.get_id(), parsed.get_type(), parsed.get_subject()) == (
            event["id"],
            event["type"],
            event["subject"],
        )
        assert parsed.get_source() == f"urn:crossdock:{spec.aggregate}"
        assert parsed.get_datacontenttype() == "application/json"
        assert parsed.get_extension("sequence") == event["sequence"]
        assert parsed.get_data() == event["data"]
        parsed_time = parsed.get_time()
        assert parsed_time is not None and parsed_time.utcoffset() == UTC.utcoffset(None)

        assert event["subject"] == event["data"][spec.subject], where
        sequences[event["subject"]].append(event["sequence"])
    for subject, seen in sequences.items():
        assert seen == list(range(1, len(seen) + 1)), f"{subject}: sequences {seen}"

    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_type[event["type"]].append(event["data"])
    low = [
        (d["sku"], d["node_id"], d["available"], d["threshold"], d["reason"], d["reference"])
        for d in by_type[ev.LOW_STOCK]
    ]
    assert low == [
        ("TEE", "wh-east", 2, 3, "allocation", shipped["order_id"]),
        ("MUG", "wh-east", 0, 0, "allocation", partial["order_id"]),
        ("MUG", "wh-east", 0, 0, "hold", released),
        ("MUG", "wh-east", 0, 0, "hold", expired),
    ]
    assert all(d["before"] != d["after"] for d in by_type[ev.ATS_CHANGED])
    reasons = {d["reason"] for d in by_type[ev.POSITION_CHANGED]}
    assert {"receipt", "allocation", "deallocation", "shipment", "hold", "hold_released", "hold_expired"} <= reasons

    def story(subject: str) -> list[str]:
        return [e["type"].split(".")[2] for e in events if e["subject"] == subject]

    assert story(shipped["order_id"]) == ["received", "allocated", "shipped", "tracking_updated"]
    assert story(partial["order_id"]) == ["received", "allocated", "backordered", "cancelled"]
    assert story(from_hold["order_id"]) == ["received", "allocated"]
    assert story(committed) == ["created", "committed"]
    assert story(released) == ["created", "released"]
    assert story(expired) == ["created", "expired"]
    received = next(d for d in by_type[ev.ORDER_RECEIVED] if d["order_id"] == from_hold["order_id"])
    assert (received["reservation_id"], received["status"], received["allocations"]) == (committed, "received", [])
    cancelled = next(d for d in by_type[ev.ORDER_CANCELLED] if d["order_id"] == partial["order_id"])
    assert (cancelled["reason"], cancelled["status"]) == ("changed mind", "cancelled")


def test_low_stock_fires_on_the_downward_crossing_only(http: httpx.Client) -> None:
    seed(http, {"CUP": {}})
    assert http.put("/v1/skus/CUP", json={"name": "Cup", "low_stock_threshold": -1}).status_code == 422
    assert http.put("/v1/skus/CUP", json={"name": "Cup", "low_stock_threshold": "5"}).status_code == 422
    http.put("/v1/skus/CUP", json={"name": "Cup", "low_stock_threshold": 5}).raise_for_status()
    at_east = {"sku": "CUP", "node_id": "wh-east"}
    adjust(http, at_east | {"delta": 10, "reason": "receipt"})  # up from 0: nothing
    adjust(  # down to 4 and back to 10 in one transaction: no crossing
        http,
        at_east | {"delta": -6, "reason": "damage"},
        at_east | {"delta": 6, "reason": "correction"},
    )
    adjust(http, at_east | {"set_on_hand": 5, "reason": "cycle_count", "reference": "count-1"})  # 10 -> 5: fires
    adjust(http, at_east | {"delta": -1, "reason": "damage"})  # already low: nothing
    adjust(http, at_east | {"delta": 10, "reason": "receipt"})  # back up to 14
    placed = post(http, "/v1/orders", order("CUP-1", {"CUP": 10}, ship_to=NYC))  # 14 -> 4: fires
    http.put("/v1/skus/CUP", json={"name": "Cup", "low_stock_threshold": 20}).raise_for_status()  # no movement
    assert http.get("/v1/skus/CUP").json()["low_stock_threshold"] == 20

    events, _ = read_feed(http, types=ev.LOW_STOCK)
    assert [e["data"] for e in events] == [
        {
            "sku": "CUP",
            "node_id": "wh-east",
            "available": 5,
            "threshold": 5,
            "reason": "cycle_count",
            "reference": "count-1",
        },
        {
            "sku": "CUP",
            "node_id": "wh-east",
            "available": 4,
            "threshold": 5,
            "reason": "allocation",
            "reference": placed["order_id"],
        },
    ]


def test_the_feed_pages_filters_and_long_polls(server: LiveServer, http: httpx.Client) -> None:
    seed(http, {"TEE": {"wh-east": 4, "wh-west": 4}})
    for i in range(3):
        post(http, "/v1/orders", order(f"F-{i}", {"TEE": 1}))
    everything = http.get("/v1/events", params={"limit": 1000, "wait": 0.3}).json()
    events, end = everything["events"], everything["next_cursor"]
    assert len(events) > 12

    # Paging: pages of at most `limit`, resumable from any cursor, nothing lost or repeated.
    paged, cursors, after = [], [], "0"
    while True:
        page = http.get("/v1/events", params={"after": after, "limit": 4}).json()
        assert len(page["events"]) <= 4
        if not page["events"]:
            break
        paged += page["events"]
        after = page["next_cursor"]
        cursors.append(after)
    assert [e["id"] for e in paged] == [e["id"] for e in events]
    assert after == end
    resumed, _ = read_feed(http, after=cursors[1], limit=5)
    assert [e["id"] for e in resumed] == [e["id"] for e in events[8:]]
    caught_up = http.get("/v1/events", params={"after": end}).json()
    assert caught_up == {"events": [], "next_cursor": end}

    # Filtering: only the types asked for, in order; the cursor passes the others.
    wanted = {ev.ORDER_RECEIVED, ev.ORDER_ALLOCATED}
    filtered, filtered_end = read_feed(http, limit=2, types=f" {ev.ORDER_RECEIVED}, {ev.ORDER_ALLOCATED} ")
    assert [e["id"] for e in filtered] == [e["id"] for e in events if e["type"] in wanted]
    assert len(filtered) == 6 and filtered_end == end

    # Long poll: answers as soon as an event is committed, not at the end of the wait.
    def later() -> None:
        time.sleep(0.4)
        with server.client() as other:
            adjust(other, {"sku": "TEE", "node_id": "wh-east", "delta": 1, "reason": "receipt", "reference": "late"})

    writer = threading.Thread(target=later)
    started = time.monotonic()
    writer.start()
    r = http.get("/v1/events", params={"after": end, "wait": 20})
    took = time.monotonic() - started
    writer.join()
    assert r.status_code == 200, r.text
    arrived = r.json()["events"]
    assert arrived and arrived[0]["data"]["reference"] == "late"
    assert 0.3 < took < 5, took
    started = time.monotonic()
    quiet = http.get("/v1/events", params={"after": r.json()["next_cursor"], "types": ev.LOW_STOCK, "wait": 0.5})
    assert quiet.json()["events"] == [] and 0.45 < time.monotonic() - started < 5

    # Bad input: problem+json, with the kind of problem.
    for params, kind in [
        ({"after": "abc"}, "validation-error"),
        ({"after": "-1"}, "validation-error"),
        ({"limit": 0}, "validation-error"),
        ({"limit": 1001}, "validation-error"),
        ({"wait": 31}, "validation-error"),
        ({"types": "crossdock.order.teleported.v1"}, "invalid-request"),
    ]:
        bad = http.get("/v1/events", params=params)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.headers["content-type"].split(";")[0] == PROBLEM, params
        assert bad.json()["type"].endswith("/" + kind), (params, bad.json())
