"""Builds the relay with the consumers this configuration asks for."""

from __future__ import annotations

from datetime import timedelta

from crossdock.config import Settings
from crossdock.events.channel_sync import ChannelSync, SyncSettings
from crossdock.events.forecaster import Forecaster
from crossdock.events.fulfilment import FulfilmentDispatcher
from crossdock.events.lookahead import LookAhead
from crossdock.events.relay import Consumer, Relay, SinkConsumer
from crossdock.events.reroute import Reroute
from crossdock.events.webhooks.addresses import AddressPolicy
from crossdock.events.webhooks.dispatcher import WebhookDispatcher
from crossdock.services.transfers import TransferPolicy
from crossdock.store.database import Database


def start_relay(db: Database, settings: Settings) -> Relay | None:
    if not settings.relay:
        return None
    sync = SyncSettings(
        reconcile_every=timedelta(seconds=settings.channel_reconcile_seconds),
        timeout=settings.webhook_timeout_seconds,
        pause=timedelta(seconds=settings.channel_pause_seconds),
        poll_every=timedelta(seconds=settings.channel_poll_seconds),
        policy=AddressPolicy.from_setting(settings.webhook_allow_private),
    )
    fulfilment = FulfilmentDispatcher(sync.policy, settings.webhook_timeout_seconds)
    consumers: list[Consumer] = [WebhookDispatcher.from_settings(settings), ChannelSync(sync), fulfilment]
    if settings.lookahead_seconds > 0:
        consumers.append(LookAhead(timedelta(seconds=settings.lookahead_seconds)))
    if settings.forecast_seconds > 0:
        plan = TransferPolicy.of(settings) if settings.transfer_plan_after_forecast else None
        consumers.append(Forecaster(timedelta(seconds=settings.forecast_seconds), plan))
    if settings.reroute_seconds > 0:
        window = timedelta(seconds=settings.reroute_window_seconds)
        consumers.append(Reroute(timedelta(seconds=settings.reroute_seconds), window))
    if settings.weather_feed_url:  # weather alerts as routing disruptions
        from crossdock.events.feed_poller import FeedPoller

        weather = {"api_url": settings.weather_feed_url}
        timeout = settings.webhook_timeout_seconds
        consumers.append(FeedPoller(weather, settings.weather_poll_seconds, sync.policy, timeout))
    if settings.nats_url:
        from crossdock.events.nats import NatsSink

        consumers.append(SinkConsumer(NatsSink(settings.nats_url)))
    if settings.kafka_bootstrap_servers:
        from crossdock.events.kafka import KafkaSink

        consumers.append(SinkConsumer(KafkaSink(settings.kafka_bootstrap_servers, settings.kafka_topic)))
    relay = Relay(
        db,
        consumers,
        poll_seconds=settings.relay_poll_seconds,
        retention=timedelta(hours=settings.event_retention_hours),
    )
    return relay.start()
