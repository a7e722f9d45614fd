"""The Kafka sink's records and producer settings (no broker can run here: see crossdock.events.kafka)."""

from __future__ import annotations

import asyncio
import json

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.formats.json import JSONFormat

from crossdock.events.kafka import kafka_record, new_producer, producer_settings
from crossdock.events.outbox import StoredEvent

PAYLOAD = json.dumps(
    {
        "specversion": "1.0",
        "id": "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
        "source": "urn:crossdock:inventory",
        "type": "crossdock.inventory.ats_changed.v1",
        "subject": "acme.tee/red",
        "time": "2026-01-02T03:04:05.678901Z",
        "datacontenttype": "application/json",
        "sequence": 42,
        "data": {"sku": "acme.tee/red", "channel_id": "web", "before": 3, "after": 2},
    },
    separators=(",", ":"),
)
EVENT = StoredEvent(
    7,
    "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
    "crossdock.inventory.ats_changed.v1",
    "acme.tee/red",
    "inventory",
    42,
    PAYLOAD,
)


def test_a_record_is_a_structured_cloudevent_keyed_by_subject() -> None:
    record = kafka_record(EVENT)
    assert record.key == b"acme.tee/red"  # one SKU, one partition: its events stay in order
    assert record.value == PAYLOAD.encode()  # byte for byte as committed
    assert record.headers == [("content-type", b"application/cloudevents+json")]
    # An outside parser reads it in structured mode (no ce_ headers), the key as partitionkey.
    event = from_kafka(KafkaMessage(dict(record.headers), record.key, record.value), JSONFormat())
    assert event.get_id() == EVENT.id
    assert event.get_type() == "crossdock.inventory.ats_changed.v1"
    assert event.get_subject() == "acme.tee/red"
    assert event.get_extension("sequence") == 42
    assert event.get_extension("partitionkey") == "acme.tee/red"
    assert event.get_data() == {"sku": "acme.tee/red", "channel_id": "web", "before": 3, "after": 2}


def test_the_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    settings = producer_settings("kafka-1:9092,kafka-2:9092")
    assert settings["enable_idempotence"] is True
    assert settings["acks"] == "all"
    pytest.importorskip("aiokafka")

    async def build() -> None:
        producer = new_producer("127.0.0.1:9")  # built, never started: nothing connects
        try:
            # aiokafka keeps no public view of its settings; these are what idempotence switches on.
            assert producer._txn_manager is not None  # producer id and sequence numbers for dedup
            assert producer._sender._acks == -1  # all in-sync replicas
        finally:
            await producer.stop()

    asyncio.run(build())
