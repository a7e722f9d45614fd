"""Outbound webhooks end to end: real receivers on local sockets, the real API, relay and database.

Deliveries are checked by outside parties: the `standardwebhooks` reference library verifies every
signature, the `cloudevents` SDK parses every body and the CloudEvents JSON schema validates it.
Retry schedules run on a fake clock shared by the database and the relay: no real waiting.
"""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from crossdock.domain.events import ORDER_ALLOCATED, ORDER_RECEIVED, POSITION_CHANGED
from crossdock.domain.webhooks import RETRY_SCHEDULE, TEST_EVENT_TYPE
from crossdock.events.relay import compact
from crossdock.events.webhooks import signing
from crossdock.localserver import ServerProcess
from tests.conftest import LiveServer
from tests.webhook_helpers import (
    LOOPBACK,
    Answer,
    Delivery,
    Hub,
    Receiver,
    assert_signed,
    eventually,
    hub,
    parse_time,
    until,
)
from tests.world import order, seed

REAL_WORLD = Path(__file__).resolve().parents[2] / "shared/real-world/conformance"
SCHEMA_PATH = REAL_WORLD / "cloudevents/spec_json_schema/cloudevents.json"
VECTORS_PATH = REAL_WORLD / "signature_vectors/vectors.json"


@pytest.fixture(scope="module")
def cloudevents_schema() -> dict[str, Any]:
    if not SCHEMA_PATH.exists():
        pytest.skip("the real-world conformance material is not here")
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def local_is_ipv4_only() -> bool:
    return {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)} <= {"127.0.0.1"}


def register(http: httpx.Client, url: str, types: list[str] | None = None, **more: Any) -> dict[str, Any]:
    r = http.post("/v1/webhook-endpoints", json={"url": url, "event_types": types or [], **more})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["secret"].startswith("whsec_")
    return body


def adjust(http: httpx.Client, sku: str, delta: int = 1, node: str = "wh-east") -> None:
    r = http.post(
        "/v1/inventory/adjustments",
        json={"adjustments": [{"sku": sku, "node_id": node, "delta": delta, "reason": "receipt"}]},
    )
    assert r.status_code == 200, r.text


def check_delivery(delivery: Delivery, secret: str, schema: dict[str, Any]) -> None:
    assert_signed(delivery, secret)
    assert delivery.headers["content-type"] == "application/cloudevents+json"
    event = from_http(HTTPMessage(delivery.headers, delivery.body), JSONFormat())
    assert event.get_id() == delivery.id == delivery.event["id"]
    assert event.get_specversion() == "1.0"
    jsonschema.validate(delivery.event, schema)


def messages(http: httpx.Client, endpoint_id: str, status: str | None = None) -> list[dict[str, Any]]:
    r = http.get(f"/v1/webhook-endpoints/{endpoint_id}/messages", params={"status": status} if status else {})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["messages"]
    return found


def attempts(http: httpx.Client, endpoint_id: str, **params: Any) -> list[dict[str, Any]]:
    r = http.get(f"/v1/webhook-endpoints/{endpoint_id}/attempts", params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["attempts"]
    return found


def endpoint_state(http: httpx.Client, endpoint_id: str) -> dict[str, Any]:
    r = http.get(f"/v1/webhook-endpoints/{endpoint_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def switched_off(http: httpx.Client, endpoint_id: str) -> dict[str, Any]:
    return until(lambda: endpoint_state(http, endpoint_id), lambda e: not e["enabled"])


def message_after(hub: Hub, endpoint_id: str, subject: str, attempts_made: int) -> dict[str, Any]:
    """The subject's first message once it has had this many attempts (and they are written)."""

    def first() -> dict[str, Any] | None:
        return next((m for m in messages(hub.http, endpoint_id) if m["subject"] == subject), None)

    found = until(first, lambda m: m is not None and m["attempts"] >= attempts_made)
    assert found is not None
    return found


# -- signatures -----------------------------------------------------------------------------------


def test_signatures_match_the_standard_webhooks_vectors() -> None:
    if not VECTORS_PATH.exists():
        pytest.skip("the real-world conformance material is not here")
    vector = json.loads(VECTORS_PATH.read_text())["standard_webhooks"]
    body = vector["body"].encode()
    assert signing.sign(vector["secret"], vector["msg_id"], vector["timestamp"], body) == vector["expected"]
    secret = signing.new_secret()
    assert 24 <= len(signing.secret_key(secret)) <= 64
    headers = signing.headers([secret, vector["secret"]], vector["msg_id"], vector["timestamp"], body)
    assert headers["webhook-signature"].split(" ")[1] == vector["expected"]
    with pytest.raises(ValueError, match="whsec_"):
        signing.secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


# -- delivery -------------------------------------------------------------------------------------


def test_every_event_arrives_signed_valid_and_in_order_per_subject(
    database_url: str, cloudevents_schema: dict[str, Any]
) -> None:
    with (
        Receiver() as everything,
        Receiver() as orders_only,
        LiveServer(database_url, webhook_allow_private=LOOPBACK) as live,
        live.client() as http,
    ):
        # By name when the name is only 127.0.0.1 here (the allow-list covers that network only).
        by_name = everything.url.replace("127.0.0.1", "localhost") if local_is_ipv4_only() else everything.url
        all_types = register(http, by_name, description="all of it")
        some = register(http, orders_only.url, [ORDER_RECEIVED, ORDER_ALLOCATED])
        seed(http, {"TEE": {"wh-east": 5, "wh-west": 5}, "MUG": {"wh-east": 3}})
        for i in range(4):
            assert http.post("/v1/orders", json=order(f"W-{i}", {"TEE": 1, "MUG": 1})).status_code == 201

        # On PostgreSQL the feed shows a commit once no earlier transaction can still commit: wait
        # until it and the receiver agree.
        def feed() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = http.get("/v1/events", params={"limit": 1000}).json()["events"]
            return events

        feed_now = until(feed, lambda f: {e["id"] for e in f} == {d.id for d in everything.received()})
        assert len(feed_now) > 20
        got = everything.received()
        picked = [e for e in feed_now if e["type"] in (ORDER_RECEIVED, ORDER_ALLOCATED)]
        got_orders = orders_only.wait(lambda ds: len(ds) >= len(picked))
        feed = feed_now

        assert sorted(d.id for d in got) == sorted(e["id"] for e in feed)  # each once, none missing
        stored = {e["id"]: e for e in feed}
        for delivery in got:
            check_delivery(delivery, all_types["secret"], cloudevents_schema)
            assert delivery.event == stored[delivery.id]
            # Connected to the checked address, speaking to the name.
            assert delivery.headers["host"] == httpx.URL(by_name).netloc.decode()
        for delivery in got_orders:
            check_delivery(delivery, some["secret"], cloudevents_schema)
            with pytest.raises(WebhookVerificationError):
                Webhook(all_types["secret"]).verify(delivery.body, delivery.headers)
        assert sorted(d.id for d in got_orders) == sorted(e["id"] for e in picked)

        by_subject: dict[str, list[int]] = defaultdict(list)
        for delivery in got:
            by_subject[delivery.event["subject"]].append(delivery.event["sequence"])
        assert set(by_subject) >= {"TEE", "MUG"}
        for subject, sequences in by_subject.items():
            assert sequences == sorted(sequences), subject

        logged = until(lambda: attempts(http, all_types["id"], limit=1000), lambda a: len(a) == len(feed))
        assert {a["status"] for a in logged} == {"succeeded"}
        assert {(a["trigger"], a["attempt"], a["response_code"]) for a in logged} == {("scheduled", 1, 200)}
        assert all(a["response_excerpt"] == "thanks" and a["duration_ms"] >= 0 for a in logged)
        assert messages(http, all_types["id"]) == []  # all delivered at the first attempt


def test_rotation_signs_with_both_secrets_during_the_overlap(
    cloudevents_schema: dict[str, Any], tmp_path: Path
) -> None:
    with (
        Receiver() as receiver,
        LiveServer(f"sqlite:///{tmp_path / 'rotate.db'}", webhook_allow_private=LOOPBACK) as live,
        live.client() as http,
    ):
        once = {"url": receiver.url, "event_types": [POSITION_CHANGED]}
        first = http.post("/v1/webhook-endpoints", json=once, headers={"Idempotency-Key": "ep-1"})
        again = http.post("/v1/webhook-endpoints", json=once, headers={"Idempotency-Key": "ep-1"})
        assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json() and len(http.get("/v1/webhook-endpoints").json()["endpoints"]) == 1
        endpoint = first.json()
        old = endpoint["secret"]
        seed(http, {"TEE": {"wh-east": 1}})
        receiver.wait(lambda ds: len(ds) == 1)

        r = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={})
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new != old and new.startswith("whsec_") and r.json()["previous_secret_expires_at"]
        assert "secret" not in http.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()

        ping = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers={"Idempotency-Key": "ping-1"})
        assert ping.status_code == 200, ping.text
        assert ping.json()["status"] == "succeeded" and ping.json()["trigger"] == "test"
        repeat = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers={"Idempotency-Key": "ping-1"})
        assert repeat.json() == ping.json() and repeat.headers["idempotent-replayed"] == "true"
        assert len(receiver.received()) == 2  # the repeat sent nothing
        test_delivery = receiver.received()[-1]
        assert test_delivery.event["type"] == TEST_EVENT_TYPE
        assert test_delivery.id == ping.json()["event_id"]

        def rotated_delivery() -> Delivery | None:
            adjust(http, "TEE")
            two = [d for d in receiver.received()[2:] if len(d.signatures) == 2]
            return two[-1] if two else None

        # The dispatcher picks the new secrets up within a moment of the rotation.
        for delivery in (test_delivery, eventually(rotated_delivery, every=0.05)):
            assert len(delivery.signatures) == 2
            check_delivery(delivery, new, cloudevents_schema)
            check_delivery(delivery, old, cloudevents_schema)

        r = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 0})
        newest = r.json()["secret"]
        ping = http.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
        last = receiver.received()[-1]
        assert last.id == ping.json()["event_id"] and len(last.signatures) == 1
        check_delivery(last, newest, cloudevents_schema)
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(last.body, last.headers)
        logged = attempts(http, endpoint["id"], event_id=last.id)
        assert [(a["trigger"], a["status"]) for a in logged] == [("test", "succeeded")]


def test_chaos_receiver_gets_the_message_once_on_the_retry_schedule(
    database_url: str, cloudevents_schema: dict[str, Any]
) -> None:
    script = iter(
        [
            Answer(500, body=b"database on fire"),
            Answer(200, delay=2.0),  # answers after the sender's 0.3 s timeout
            Answer(429, {"Retry-After": "3600"}),
            Answer(302, {"Location": "http://127.0.0.1:9/elsewhere"}),
            Answer(200, body=b"got it"),
        ]
    )
    with Receiver(lambda d: next(script)) as receiver, hub(database_url) as h:
        endpoint = register(h.http, receiver.url, [POSITION_CHANGED])
        seed(h.http, {"TEE": {"wh-east": 5}})
        first = receiver.wait(lambda ds: len(ds) == 1)[0]

        times = []
        for attempts_made, (low, high) in enumerate(
            [
                (RETRY_SCHEDULE[0] * 0.9, RETRY_SCHEDULE[0] * 1.1),
                (RETRY_SCHEDULE[1] * 0.9, RETRY_SCHEDULE[1] * 1.1),
                (timedelta(seconds=3600), timedelta(seconds=3600) * 1.1),  # Retry-After beats 30 min
                (RETRY_SCHEDULE[3] * 0.9, RETRY_SCHEDULE[3] * 1.1),
            ],
            start=1,
        ):
            message = message_after(h, endpoint["id"], "TEE", attempts_made)
            assert message["status"] == "pending" and message["event_id"] == first.id
            log = attempts(h.http, endpoint["id"], event_id=first.id)
            attempted_at = parse_time(log[-1]["at"])
            due = parse_time(message["next_attempt_at"])
            assert low <= due - attempted_at <= high, (attempts_made, due - attempted_at)
            if attempts_made == 1:  # not a moment early
                h.set_clock(due - timedelta(seconds=1))
                with pytest.raises(AssertionError):
                    receiver.wait(lambda ds: len(ds) > 1, timeout=0.3)
            times.append(due)
            h.set_clock(due)

        message = message_after(h, endpoint["id"], "TEE", 5)
        assert message["status"] == "succeeded" and message["next_attempt_at"] is None
        got = receiver.received()
        assert len(got) == 5 and {d.id for d in got} == {first.id}
        assert [a.status for _, a in receiver.answered()].count(200) == 2  # one of them too late
        assert [d.timestamp for d in got[1:]] == [int(t.timestamp()) for t in times]
        for delivery in got:
            check_delivery(delivery, endpoint["secret"], cloudevents_schema)
        log = attempts(h.http, endpoint["id"], event_id=first.id)
        assert [(a["attempt"], a["status"], a["response_code"]) for a in log] == [
            (1, "failed", 500),
            (2, "failed", None),
            (3, "failed", 429),
            (4, "failed", 302),
            (5, "succeeded", 200),
        ]
        assert log[0]["response_excerpt"] == "database on fire"
        assert "0.3 s" in log[1]["error"] and "not followed" in log[3]["error"]
        assert [parse_time(a["at"]) for a in log[1:]] == times
        assert {a["trigger"] for a in log} == {"scheduled"}
        ep = endpoint_state(h.http, endpoint["id"])
        assert ep["enabled"] is True and ep["failing_since"] is None


def test_one_failing_subject_does_not_hold_up_the_others(database_url: str) -> None:
    failed: set[str] = set()

    def answer(d: Delivery) -> Answer:
        if d.event["subject"] == "SLOW" and "SLOW" not in failed:
            failed.add("SLOW")
            return Answer(503, delay=0.5)
        return Answer()

    with Receiver(answer) as receiver, hub(database_url) as h:
        endpoint = register(h.http, receiver.url, [POSITION_CHANGED])
        seed(h.http, {"SLOW": {}, "FAST": {}})
        for sku in ("SLOW", "FAST", "SLOW", "FAST", "SLOW"):
            adjust(h.http, sku)

        got = receiver.wait(lambda ds: sum(d.event["subject"] == "FAST" for d in ds) == 2)
        slow_first = next(d for d in got if d.event["subject"] == "SLOW")
        fast = [d for d in got if d.event["subject"] == "FAST"]
        assert all(d.at < slow_first.at + 0.5 for d in fast)  # while the slow one was still waiting

        def queued() -> list[dict[str, Any]] | None:
            found = messages(h.http, endpoint["id"], "pending")
            return found if len(found) == 3 and found[0]["attempts"] == 1 else None

        head, *behind = eventually(queued)
        slow = [m["event"]["sequence"] for m in (head, *behind)]
        assert slow == sorted(slow) and head["event_id"] == slow_first.id
        assert head["next_attempt_at"] and all(m["next_attempt_at"] is None and m["attempts"] == 0 for m in behind)
        assert sum(d.event["subject"] == "SLOW" for d in receiver.received()) == 1

        h.set_clock(parse_time(head["next_attempt_at"]))
        got = receiver.wait(lambda ds: sum(d.event["subject"] == "SLOW" for d in ds) == 4)
        assert [d.event["sequence"] for d in got if d.event["subject"] == "SLOW"] == [slow[0], *slow]
        fast_sequences = [d.event["sequence"] for d in got if d.event["subject"] == "FAST"]
        assert fast_sequences == sorted(fast_sequences)
        done = until(lambda: messages(h.http, endpoint["id"], "succeeded"), lambda ms: len(ms) == 3)
        assert [m["attempts"] for m in done] == [2, 1, 1]
        assert messages(h.http, endpoint["id"], "pending") == []
        # The subject goes straight through again.
        adjust(h.http, "SLOW")
        receiver.wait(lambda ds: sum(d.event["subject"] == "SLOW" for d in ds) == 5)
        assert len(messages(h.http, endpoint["id"])) == 3
        # Past the retention period, delivered messages and the attempt log go; pending ones would stay.
        later = h.clock() + h.relay.retention + timedelta(days=1)
        while h.db.run(partial(compact, older_than=later, lease_seen_after=later)):
            pass
        assert messages(h.http, endpoint["id"]) == [] and attempts(h.http, endpoint["id"]) == []


def test_410_switches_the_endpoint_off_and_switching_on_resumes(tmp_path: Path) -> None:
    gone = {"yes": True}
    with (
        Receiver(lambda d: Answer(410) if gone["yes"] else Answer()) as receiver,
        hub(f"sqlite:///{tmp_path / 'gone.db'}") as h,
    ):
        endpoint = register(h.http, receiver.url, [POSITION_CHANGED])
        seed(h.http, {"TEE": {"wh-east": 1}})
        receiver.wait(lambda ds: len(ds) == 1)
        assert "410" in switched_off(h.http, endpoint["id"])["disabled_reason"]
        adjust(h.http, "TEE")
        adjust(h.http, "TEE")
        with pytest.raises(AssertionError):
            receiver.wait(lambda ds: len(ds) > 1, timeout=0.3)

        gone["yes"] = False
        r = h.http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True})
        assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["disabled_reason"] is None
        head = messages(h.http, endpoint["id"], "pending")[0]
        assert head["attempts"] == 1 and head["event"]["sequence"] == 1
        h.set_clock(parse_time(head["next_attempt_at"]))
        got = receiver.wait(lambda ds: len(ds) == 4)
        feed = h.http.get("/v1/events", params={"types": POSITION_CHANGED}).json()["events"]
        assert [d.id for d in got] == [feed[0]["id"]] + [e["id"] for e in feed]


def test_given_up_messages_fail_the_endpoint_after_five_days_and_can_be_recovered(tmp_path: Path) -> None:
    healthy = {"yes": False}
    with (
        Receiver(lambda d: Answer() if healthy["yes"] else Answer(500)) as receiver,
        hub(f"sqlite:///{tmp_path / 'recover.db'}") as h,
    ):
        start = h.clock()
        endpoint = register(h.http, receiver.url, [POSITION_CHANGED])
        seed(h.http, {"TEE": {"wh-east": 1}, "MUG": {}})
        for attempts_made in range(1, 8):
            message = message_after(h, endpoint["id"], "TEE", attempts_made)
            h.set_clock(parse_time(message["next_attempt_at"]))
        given_up = message_after(h, endpoint["id"], "TEE", 8)
        assert given_up["status"] == "failed" and given_up["next_attempt_at"] is None
        assert len(receiver.received()) == 8
        ep = endpoint_state(h.http, endpoint["id"])
        assert ep["enabled"] is True and parse_time(ep["failing_since"]) == start

        h.set_clock(start + timedelta(days=5, minutes=1))
        adjust(h.http, "MUG")
        assert "5 days" in switched_off(h.http, endpoint["id"])["disabled_reason"]

        healthy["yes"] = True
        h.http.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}).raise_for_status()
        h.advance(timedelta(seconds=10))
        receiver.wait(lambda ds: ds[-1].event["subject"] == "MUG" and len(ds) == 10)

        r = h.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/recover", json={"since": start.isoformat()})
        assert r.status_code == 200 and r.json()["recovered"] == 1, r.text
        got = receiver.wait(lambda ds: len(ds) == 11)
        assert got[-1].id == given_up["event_id"]
        log = until(lambda: attempts(h.http, endpoint["id"], event_id=given_up["event_id"]), lambda a: len(a) == 9)
        assert [a["trigger"] for a in log] == ["scheduled"] * 8 + ["manual"]
        assert log[-1]["attempt"] == 9 and log[-1]["status"] == "succeeded"
        assert messages(h.http, endpoint["id"], "failed") == []
        again = h.http.post(f"/v1/webhook-endpoints/{endpoint['id']}/recover", json={"since": start.isoformat()})
        assert again.json()["recovered"] == 0


def test_events_not_acknowledged_survive_a_kill_9(tmp_path: Path) -> None:
    """`crossdock serve` is killed while deliveries hang; after a restart every event arrives, with
    the webhook-id it had. (The restarted relay waits for the dead one's lease to lapse: ~15 s.)"""
    stuck = {"yes": True}
    with Receiver(lambda d: Answer(delay=30) if stuck["yes"] and d.event["subject"] != "OK" else Answer()) as receiver:
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        env = {"CROSSDOCK_WEBHOOK_ALLOW_PRIVATE": LOOPBACK}
        with ServerProcess(url, tmp_path / "serve.log", env=env) as server, server.client() as http:
            endpoint = register(http, receiver.url, [POSITION_CHANGED])
            seed(http, {"OK": {"wh-east": 1}, "A": {"wh-east": 1}, "B": {"wh-east": 1}})
            adjust(http, "A")
            feed = http.get("/v1/events", params={"types": POSITION_CHANGED}).json()["events"]
            assert len(feed) == 4
            receiver.wait(lambda ds: len(ds) == 3)  # OK delivered; A and B hanging (A's second waits)
            server.kill()
        stuck["yes"] = False
        receiver.release.set()
        with ServerProcess(url, tmp_path / "serve-again.log", env=env):

            def every_event_delivered() -> bool:
                answered = {d.id for d, a in receiver.answered() if a.status == 200 and not a.delay}
                return answered >= {e["id"] for e in feed}

            eventually(every_event_delivered, timeout=45)  # the dead relay's lease lapses first
        delivered = [d for d in receiver.received() if d.event["subject"] in ("A", "B")]
        assert sorted({d.id for d in delivered}) == sorted(e["id"] for e in feed if e["subject"] in ("A", "B"))
        assert [d.id for d in delivered if d.event["subject"] == "A"][-2:] == [
            e["id"] for e in feed if e["subject"] == "A"
        ]
        for delivery in receiver.received():
            assert_signed(delivery, endpoint["secret"])


def test_bad_input_gets_a_clear_problem_and_changes_nothing(database_url: str) -> None:
    with LiveServer(database_url, webhook_allow_private=LOOPBACK) as live, live.client() as http:
        url = "http://127.0.0.1:9/hooks"
        endpoint = register(http, url, [POSITION_CHANGED])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"

        def state() -> Any:
            return http.get("/v1/webhook-endpoints").json(), live_consumers(database_url)

        before = state()
        cases: list[tuple[str, str, Any, int, str]] = [
            (
                "POST",
                "/v1/webhook-endpoints",
                {"url": url, "event_types": ["crossdock.nope.v1"]},
                422,
                "unknown event type crossdock.nope.v1",
            ),
            (
                "POST",
                "/v1/webhook-endpoints",
                {"url": "ftp://127.0.0.1/x"},
                422,
                "url: Value error, the scheme must be http or https",
            ),
            ("POST", "/v1/webhook-endpoints", {"url": url, "colour": "red"}, 422, "colour"),
            ("POST", "/v1/webhook-endpoints", {"url": 5}, 422, "url"),
            ("POST", "/v1/webhook-endpoints", {"event_types": []}, 422, "url: Field required"),
            ("POST", "/v1/webhook-endpoints", {"url": url, "enabled": "yes"}, 422, "enabled"),
            ("POST", "/v1/webhook-endpoints", {"url": url, "secret": "whsec_c2hvcnQ="}, 422, "24 to 64 bytes"),
            ("POST", "/v1/webhook-endpoints", {"url": url, "secret": "hunter2"}, 422, "whsec_"),
            ("POST", "/v1/webhook-endpoints", b"{not json", 400, "could not be parsed as JSON"),
            ("PATCH", path, {"url": None}, 422, "url may not be null"),
            ("PATCH", path, {"event_types": ["crossdock.order.received.v1", "nope"]}, 422, "unknown event type nope"),
            ("PATCH", path, {"enabled": 1}, 422, "enabled"),
            ("PATCH", "/v1/webhook-endpoints/ep_missing", {"enabled": False}, 404, "no webhook endpoint ep_missing"),
            ("DELETE", "/v1/webhook-endpoints/ep_missing", None, 404, "no webhook endpoint ep_missing"),
            ("POST", f"{path}/rotate-secret", {"overlap_seconds": -1}, 422, "overlap_seconds"),
            ("POST", "/v1/webhook-endpoints/ep_missing/rotate-secret", {}, 404, "no webhook endpoint"),
            ("POST", f"{path}/recover", {"since": "yesterday"}, 422, "since"),
            ("POST", f"{path}/recover", {"since": "2026-01-01T00:00:00"}, 422, "timezone"),
            (
                "POST",
                f"{path}/recover",
                {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                422,
                "until must be after since",
            ),
            ("POST", "/v1/webhook-endpoints/ep_missing/test", None, 404, "no webhook endpoint"),
            ("GET", f"{path}/attempts?status=maybe", None, 422, "status"),
            ("GET", f"{path}/messages?after=abc", None, 422, "after"),
            ("GET", "/v1/webhook-endpoints/ep_missing/attempts", None, 404, "no webhook endpoint"),
        ]
        for method, where, body, status, says in cases:
            content = body if isinstance(body, bytes) else None
            payload = None if isinstance(body, bytes) or body is None else body
            r = http.request(method, where, json=payload, content=content, headers={"content-type": "application/json"})
            assert r.status_code == status, (method, where, body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert says in r.json()["detail"], (says, r.json())
        assert state() == before


def live_consumers(database_url: str) -> dict[str, int]:
    from crossdock.store.database import open_database

    db = open_database(database_url, writers=1)
    try:
        positions: dict[str, int] = db.read(lambda uow: uow.consumer_positions())
        return {k: v for k, v in positions.items() if k.startswith("webhook:")}
    finally:
        db.close()
