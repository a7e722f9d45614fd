"""W3C trace context: from a request into its events (CloudEvents `traceparent` extension) and on
into the webhook and NATS headers they are delivered with."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from crossdock.events.tracecontext import context, from_payload, valid_traceparent
from tests.conftest import LiveServer
from tests.webhook_helpers import LOOPBACK, Receiver
from tests.world import order, seed

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (PARENT, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),  # later versions may add fields
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("", False),
        (None, False),
    ],
)
def test_traceparent_validation(value: str | None, ok: bool) -> None:
    assert (valid_traceparent(value) is not None) is ok


def test_context_and_payload() -> None:
    assert context("garbage", "a=b") is None
    assert context(PARENT, "vendor=x") == {"traceparent": PARENT, "tracestate": "vendor=x"}
    assert from_payload('{"id": "1"}') == {}
    assert from_payload(b'{"traceparent": "%s"}' % PARENT.encode()) == {"traceparent": PARENT}


def _nats_headers(url: str, subject: str) -> dict[str, str]:
    async def fetch() -> dict[str, str]:
        nc = await nats.connect(url)
        try:
            sub = await nc.jetstream().pull_subscribe(subject, stream="CROSSDOCK")
            msg = (await sub.fetch(1, timeout=10))[0]
            return dict(msg.headers or {})
        finally:
            await nc.close()

    return asyncio.run(fetch())


def test_traceparent_follows_the_change_to_webhooks_and_nats(tmp_path: Path, nats_server: str) -> None:
    settings: dict[str, Any] = {"webhook_allow_private": LOOPBACK, "nats_url": nats_server}
    with (
        Receiver() as receiver,
        LiveServer(f"sqlite:///{tmp_path / 't.db'}", **settings) as live,
        live.client() as http,
    ):
        seed(http, {"TEE": {"wh-east": 3}})
        assert http.post("/v1/webhook-endpoints", json={"url": receiver.url}).status_code == 201
        headers = {"traceparent": PARENT, "tracestate": "vendor=x"}
        r = http.post("/v1/orders", json=order("T-1", {"TEE": 1}), headers=headers)
        assert r.status_code == 201, r.text
        order_id = r.json()["order_id"]
        untraced = http.post("/v1/orders", json=order("T-2", {"TEE": 1})).json()["order_id"]

        events = http.get("/v1/events", params={"types": "crossdock.order.received.v1", "limit": 100}).json()
        by_subject = {e["subject"]: e for e in events["events"]}
        assert by_subject[order_id]["traceparent"] == PARENT
        assert by_subject[order_id]["tracestate"] == "vendor=x"
        assert "traceparent" not in by_subject[untraced]

        deadline = time.monotonic() + 15
        while not any(d.event["subject"] == untraced for d in receiver.received()):
            assert time.monotonic() < deadline, "webhooks did not arrive"
            time.sleep(0.02)
        for delivery in receiver.received():
            if delivery.event["subject"] == order_id:
                assert delivery.headers["traceparent"] == PARENT
                assert delivery.headers["tracestate"] == "vendor=x"
            if delivery.event["subject"] == untraced:
                assert "traceparent" not in delivery.headers

        nats_headers = _nats_headers(nats_server, f"crossdock.order.received.{order_id}")
        assert nats_headers["traceparent"] == PARENT and nats_headers["tracestate"] == "vendor=x"


def test_with_opentelemetry_the_events_hang_under_the_request_span(tmp_path: Path) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # "global": the provider the process has, as an embedding app sets it
    with LiveServer(f"sqlite:///{tmp_path / 'o.db'}", tracing="global") as live, live.client() as http:
        seed(http, {"TEE": {"wh-east": 3}})
        r = http.post("/v1/orders", json=order("O-1", {"TEE": 1}), headers={"traceparent": PARENT})
        assert r.status_code == 201, r.text
        order_id = r.json()["order_id"]
        assert http.get(f"/v1/orders/{order_id}").status_code == 200
        events = http.get("/v1/events", params={"types": "crossdock.order.received.v1"}).json()["events"]
    spans = {s.name: s for s in exporter.get_finished_spans()}
    post, get = spans["POST /v1/orders"], spans["GET /v1/orders/{order_id}"]
    assert post.kind == trace.SpanKind.SERVER
    assert post.attributes is not None and post.attributes["http.route"] == "/v1/orders"
    assert post.attributes["http.response.status_code"] == 201
    assert get.attributes is not None and get.attributes["http.route"] == "/v1/orders/{order_id}"
    trace_id = PARENT.split("-")[1]
    assert f"{post.context.trace_id:032x}" == trace_id  # continues the caller's trace
    assert post.parent is not None and f"{post.parent.span_id:016x}" == PARENT.split("-")[2]
    event = next(e for e in events if e["subject"] == order_id)
    _, event_trace, event_parent, _ = event["traceparent"].split("-")
    assert (event_trace, event_parent) == (trace_id, f"{post.context.span_id:016x}")  # under the request's span
