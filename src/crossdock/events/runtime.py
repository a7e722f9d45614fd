"""Builds the relay with the consumers this configuration asks for."""

from __future__ import annotations

from datetime import timedelta

from crossdock.config import Settings
from crossdock.events.relay import Consumer, Relay
from crossdock.store.database import Database


def start_relay(db: Database, settings: Settings) -> Relay | None:
    if not settings.relay:
        return None
    consumers: list[Consumer] = []
    relay = Relay(
        db,
        consumers,
        poll_seconds=settings.relay_poll_seconds,
        retention=timedelta(hours=settings.event_retention_hours),
    )
    return relay.start()
