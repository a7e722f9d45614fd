"""The Kafka sink (optional extra `kafka`: aiokafka, imported only when the sink is used).

Records follow the CloudEvents Kafka binding in structured mode: value = the CloudEvent JSON exactly
as committed to the outbox, header `content-type: application/cloudevents+json` (and no `ce_`
headers, which would mark binary mode), key = the CloudEvent subject, so all events of one SKU or
order land on one partition in order. The producer is idempotent (acks from all in-sync replicas,
broker-side dedup of the producer's retries, one batch in flight per partition), so retries neither
repeat nor reorder records; the relay's own repeats after a crash carry the same CloudEvent id.

No Kafka broker runs in this project's tests: `kafka_record` and `producer_settings` are pure and
tested on their own, and the producer is built from those settings without connecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crossdock.events.outbox import StoredEvent

CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def kafka_record(event: StoredEvent) -> KafkaRecord:
    return KafkaRecord(
        key=event.subject.encode(),
        value=event.payload.encode(),
        headers=[("content-type", CONTENT_TYPE.encode())],
    )


def producer_settings(bootstrap_servers: str) -> dict[str, Any]:
    """Keyword arguments for `aiokafka.AIOKafkaProducer`."""
    return {
        "bootstrap_servers": bootstrap_servers,
        "client_id": "crossdock-relay",
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,  # a batch of events goes out as a few large requests
    }


def new_producer(bootstrap_servers: str) -> Any:
    """An aiokafka producer, not yet connected (`await producer.start()` connects). Needs a running
    event loop."""
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    return AIOKafkaProducer(**producer_settings(bootstrap_servers))


class KafkaSink:
    name = "kafka"

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._producer: Any = None

    async def open(self) -> None:
        producer = new_producer(self.bootstrap_servers)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        if self._producer is None:
            raise RuntimeError("the Kafka sink is not open")
        deliveries: list[asyncio.Future[Any]] = []
        for event in events:  # queued in order; the producer batches them per partition
            record = kafka_record(event)
            deliveries.append(
                await self._producer.send(self.topic, value=record.value, key=record.key, headers=record.headers)
            )
        results = await asyncio.gather(*deliveries, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(events)} events not delivered: {errors[0]!r}") from errors[0]

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
