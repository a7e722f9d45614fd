"""Settings from `CROSSDOCK_*` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSDOCK_", extra="ignore")

    database_url: str = "sqlite:///./crossdock.db"
    nats_url: str | None = None
    webhook_allow_private: str = ""  # CIDRs, comma or space separated
    webhook_timeout_seconds: float = 15.0
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_048_576
    hold_sweep_seconds: float = 1.0
    pg_writers: int = 8
    # Load shedding, per API process (see api/shedding.py)
    max_inflight_writes: int = 1024
    max_inflight_reads: int = 256
    write_queue_seconds: float = 1.0
    # Events: the relay runs in every process that owns a database (one per API process on
    # PostgreSQL; the writer process with `serve --workers N` on SQLite).
    relay: bool = True
    relay_poll_seconds: float = 1.0
    event_retention_hours: float = 168.0
    channel_reconcile_seconds: float = 3600.0  # how often each channel's quantities are compared
    rate_shop_deadline_seconds: float = 0.5  # how long an order waits for carriers' live rates
    lookahead_seconds: float = 900.0  # how often routing's look-ahead values stock; 0: never (greedy routing)
    forecast_seconds: float = 86400.0  # how often demand is forecast again from the ledger; 0: never
    transfer_plan_after_forecast: bool = True  # each forecast run then proposes transfers between nodes
    # Re-optimisation (services/reroute.py): how often held orders not yet released to a node are
    # routed again together (0: never), and how long an allocation at a node without a warehouse
    # connector stays movable (0: released at once).
    reroute_seconds: float = 300.0
    reroute_window_seconds: float = 0.0
    # Transfers (services/transfers.py): how long a proposal waits for approval, and the thresholds
    # under which a plan's proposals approve themselves (each one set is a limit; neither set: none do).
    transfer_proposal_ttl_seconds: float = 86_400.0
    transfer_auto_approve_max_cost: float | None = None
    transfer_auto_approve_max_quantity: int | None = None
    channel_poll_seconds: float = 60.0  # how often the orders of a channel without webhooks are polled
    channel_pause_seconds: float = 60.0  # a channel failing again and again is left alone this long
    # Weather alerts as disruptions for routing: the NWS API (https://api.weather.gov); unset = no feed
    weather_feed_url: str | None = None
    weather_poll_seconds: float = 300.0
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str = "crossdock"
    # Set by `serve --workers N` on SQLite: where the API processes reach the one writer.
    writer_socket: str | None = None
    # Authentication (api/auth.py, api/tokens.py)
    token_ttl_seconds: int = 900
    token_issuer: str = "crossdock"
    token_audience: str = "crossdock-api"
    client_cache_seconds: float = 5.0  # how soon other API processes see a client revoked
    # Rate limits per client and route group (api/ratelimit.py), in `limits` notation
    rate_limit_default: str = "100/second"
    rate_limits: str = "oauth:token=10/second"  # "group=limit, ..."; a client's own limits win
    rate_limit_storage: str = "memory://"  # or redis://host:6379/0, shared by every API process
    tracing: str = "off"  # OpenTelemetry: "off", "console", "otlp" or "global" (see api/tracing.py)
    log_format: str = "auto"  # "json", "console" or "auto" (console on a terminal)
