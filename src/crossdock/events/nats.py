"""The NATS JetStream sink: every event into stream `CROSSDOCK`, once, in outbox order.

Subjects are `crossdock.<aggregate>.<what>.<subject>`: the event type without its version, then
the CloudEvent subject (the SKU or order id) as one token. Ids may contain `.`, which NATS reads as
a token separator, so the subject token percent-encodes it (`acme.tee` -> `acme%2Etee`), as it does
any other character outside `A-Z a-z 0-9 _ - : / @ +`; our ids never contain `%`, so the encoding
can be undone, and every subject has exactly four tokens (`crossdock.inventory.*.acme%2Etee`).

Messages follow the CloudEvents NATS binding in structured mode: header `content-type:
application/cloudevents+json`, payload = the CloudEvent JSON exactly as committed to the outbox.

Exactly once in the stream, in order:
- `Nats-Msg-Id` = the event id, so JetStream drops an event the relay publishes again (after a
  crash, the relay repeats what followed its last saved position) within the stream's duplicate
  window, two minutes when this sink creates the stream. Consumers dedup by the CloudEvent id
  beyond that.
- A batch is pipelined (sent without waiting for acknowledgements, on one connection, in order)
  and `publish` returns once every acknowledgement has arrived. A pipeline can lose a message in
  the middle (a reconnect drops what was on the wire) while later ones are stored; publishing the
  lost one again would store it after its successors. So every message after the first of a batch
  carries `Nats-Expected-Last-Msg-Id` = the previous event's id: the stream refuses it unless its
  predecessor is the last message stored, which stops the batch at the first gap, and the relay's
  retry fills the gap in order. JetStream checks duplicates before that expectation, so repeated
  events are still acknowledged as duplicates. The first message of a batch needs no expectation:
  the relay moves on only past acknowledged events. This assumes the relay is the only publisher
  into the stream (anything else breaks the chain once, costing one retry). After an outage about
  as long as the duplicate window, a batch can straddle its edge (older repeats stored again, newer
  ones dropped) and be refused until those age out of the window: a stall of at most the window.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from crossdock.events.outbox import StoredEvent
from crossdock.events.tracecontext import from_payload

log = structlog.get_logger()

STREAM = "CROSSDOCK"
SUBJECTS = "crossdock.>"
DUPLICATE_WINDOW = 120.0  # seconds; for a stream this sink creates
CONTENT_TYPE = "application/cloudevents+json"

_PLAIN = re.compile(r"[A-Za-z0-9_:/@+-]+")


class PublishError(Exception):
    """JetStream did not acknowledge every event of a batch."""


def subject_token(subject: str) -> str:
    """The CloudEvent subject as one NATS subject token (see the module docstring)."""
    if _PLAIN.fullmatch(subject):
        return subject
    if not subject:
        raise ValueError("an event without a subject has no NATS subject")
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in subject)


def nats_subject(event: StoredEvent) -> str:
    """`crossdock.<aggregate>.<what>.<subject>` from type `crossdock.<aggregate>.<what>.v<N>`."""
    parts = event.type.split(".")
    if len(parts) != 4 or parts[0] != "crossdock" or not parts[3].startswith("v"):
        raise ValueError(f"event type {event.type!r} is not crossdock.<aggregate>.<what>.v<N>")
    return f"crossdock.{parts[1]}.{parts[2]}.{subject_token(event.subject)}"


def nats_headers(event: StoredEvent, previous_id: str | None) -> dict[str, str]:
    headers = {"Nats-Msg-Id": event.id, "content-type": CONTENT_TYPE, **from_payload(event.payload)}
    if previous_id is not None:
        headers["Nats-Expected-Last-Msg-Id"] = previous_id
    return headers


class NatsSink:
    name = "nats"

    def __init__(self, url: str, *, ack_timeout: float = 5.0) -> None:
        self.url = url
        self.ack_timeout = ack_timeout  # for a whole batch; past it the relay publishes the batch again
        self.duplicates = 0  # events the stream already held (republished after a restart)
        self._nc: Client | None = None
        self._inbox = ""
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}  # by reply subject
        self._sent = itertools.count()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def open(self) -> None:
        nc = await nats.connect(
            self.url,
            name="crossdock-relay",
            max_reconnect_attempts=-1,  # the relay lives as long as the process: keep trying
            reconnect_time_wait=1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            await ensure_stream(nc.jetstream())
            # Acknowledgements come back to one inbox (nats-py's publish_async is not used: it leaves
            # a refused publish waiting forever and turns a cancellation into an error).
            self._inbox = nc.new_inbox()
            await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        except BaseException:
            await nc.close()
            raise
        self._nc = nc

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        nc = self._nc
        if nc is None:
            raise RuntimeError("the NATS sink is not open")
        loop = asyncio.get_running_loop()
        replies: list[str] = []
        try:
            previous: str | None = None
            for event in events:  # sent in order on one connection, without waiting for acknowledgements
                reply = f"{self._inbox}.{next(self._sent)}"
                self._acks[reply] = loop.create_future()
                replies.append(reply)
                await nc.publish(
                    nats_subject(event), event.payload.encode(), reply=reply, headers=nats_headers(event, previous)
                )
                previous = event.id
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow the relay's cancellation.
            waiting = asyncio.gather(*(self._acks[r] for r in replies), return_exceptions=True)
            if not (await asyncio.wait([waiting], timeout=self.ack_timeout))[0]:
                raise PublishError(f"no acknowledgement within {self.ack_timeout} s")
            results = waiting.result()
        finally:
            for reply in replies:  # late acknowledgements are dropped; the relay publishes the batch again
                self._acks.pop(reply).cancel()
        self.duplicates += sum(1 for r in results if isinstance(r, dict) and r.get("duplicate"))
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise PublishError(f"{len(errors)} of {len(events)} events not acknowledged: {errors[0]}") from errors[0]

    async def _on_ack(self, msg: Msg) -> None:
        ack = self._acks.get(msg.subject)
        if ack is None or ack.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            ack.set_exception(PublishError(f"no stream takes subject {SUBJECTS}"))
            return
        try:
            body: dict[str, Any] = json.loads(msg.data)
        except ValueError:
            ack.set_exception(PublishError(f"unreadable acknowledgement {msg.data[:200]!r}"))
            return
        if "error" in body:
            ack.set_exception(PublishError(str(body["error"].get("description", body["error"]))))
        else:
            ack.set_result(body)

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats connection error", url=self.url, error=repr(exc))

    async def _on_disconnected(self) -> None:
        if self._nc is None:  # closing
            return
        log.warning("nats disconnected; reconnecting", url=self.url)
        # What was on the wire may be lost: let the relay publish the batch again now rather than
        # after the timeout (duplicates are dropped, and the expected-last-id chain keeps order).
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(PublishError("disconnected before the acknowledgement"))

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected", url=self.url)


async def ensure_stream(js: JetStreamContext) -> None:
    """Creates the stream, or leaves an existing one as its operator configured it (limits,
    replicas, duplicate window), only adding our subjects if it lacks them."""
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        config = StreamConfig(
            name=STREAM,
            subjects=[SUBJECTS],
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
        )
        await js.add_stream(config)  # succeeds too if another relay just created it the same way
        return
    subjects = list(info.config.subjects or [])
    if SUBJECTS not in subjects:
        await js.update_stream(info.config.evolve(subjects=[*subjects, SUBJECTS]))
        log.info("nats stream subjects extended", stream=STREAM, subjects=[*subjects, SUBJECTS])
