"""What the services need from storage. `crossdock.store.uow.SqlUnitOfWork` implements it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from crossdock.domain.audit import Actor
from crossdock.domain.catalog import Catalog, Channel, Node, Sku
from crossdock.domain.clients import ApiClient, SigningKey
from crossdock.domain.events import DomainEvent
from crossdock.domain.order import Order
from crossdock.domain.position import Movement, Position
from crossdock.domain.reservation import Hold


@dataclass(frozen=True, slots=True)
class Claim:
    """Something holding units at one position: an active checkout hold or an order allocation."""

    kind: str  # "hold" | "order"
    owner_id: str
    quantity: int


# How long an Idempotency-Key's response is replayed; after that the key may be used afresh.
IDEMPOTENCY_RETENTION = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: Any


class LockedSkus(NamedTuple):
    """What the ledger needs of the SKUs it locked, read with the lock in one statement."""

    sequences: dict[str, int]  # event sequence of each SKU
    low_stock_thresholds: dict[str, int]
    positions: list[Position]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of a page of the audit log; None: any. `after` is the id of the previous page's last entry."""

    object_type: str | None = None
    object_id: str | None = None
    actor: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    after: int | None = None
    limit: int = 100
    newest_first: bool = True


class UnitOfWork(Protocol):
    """One database transaction. Reads that lock say so; writes are visible only after commit."""

    now: datetime
    actor: Actor  # who asked for this transaction's changes (the audit log's actor)
    trace: dict[str, str] | None  # W3C trace context of the request, copied into the events written

    # catalog
    def catalog(self) -> Catalog: ...
    def put_sku(self, sku: Sku) -> bool: ...
    def put_node(self, node: Node) -> bool: ...
    def put_channel(self, channel: Channel) -> bool: ...
    def get_sku(self, sku: str) -> Sku | None: ...
    def skus_after(self, after: str, limit: int) -> list[str]: ...

    # positions and the ledger
    def lock_skus(self, skus: Sequence[str]) -> LockedSkus: ...
    def positions(self, skus: Sequence[str]) -> list[Position]: ...
    def apply_movements(self, movements: Sequence[Movement], new_positions: Sequence[tuple[str, str]]) -> None: ...
    def save_sku_sequences(self, sequences: dict[str, int]) -> None: ...
    def claims_at(self, sku: str, node_id: str) -> list[Claim]: ...
    def rebuilt_positions(self) -> list[Position]: ...
    def all_positions(self) -> list[Position]: ...

    # orders
    def find_order_id(self, channel_id: str, external_id: str) -> str | None: ...
    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None: ...
    def insert_order(self, order: Order) -> None: ...
    def save_order(self, order: Order) -> None: ...
    def order_ids(self, channel_id: str | None, status: str | None, after: str, limit: int) -> list[str]: ...
    def backordered_order_ids(self, skus: Iterable[str], channel_ids: Sequence[str], limit: int) -> list[str]: ...
    def add_history(self, order: Order, event: str, detail: dict[str, Any]) -> None: ...
    def history(self, order_id: str) -> list[dict[str, Any]]: ...

    # checkout holds
    def insert_hold(self, hold: Hold) -> None: ...
    def save_hold(self, hold: Hold) -> None: ...
    def get_hold(self, reservation_id: str, *, lock: bool = False) -> Hold | None: ...
    def expired_hold_ids(self, limit: int) -> list[str]: ...

    # outbox and idempotency
    def add_events(self, events: Sequence[tuple[DomainEvent, int]]) -> None: ...
    # API clients and signing keys (the reads; services.clients has the rest)
    def get_client(self, client_id: str) -> tuple[ApiClient, str] | None: ...
    def signing_keys(self) -> list[SigningKey]: ...

    # channels: how the sync of sellable quantities out to one stands (store.channel_tables)
    def sync_status(self, channel_id: str) -> dict[str, Any]: ...

    def claim_idempotency_key(self, scope: str, key: str) -> bool: ...
    def get_response(self, scope: str, key: str, since: datetime) -> StoredResponse | None: ...
    def save_response(self, scope: str, key: str, response: StoredResponse) -> None: ...

    # the audit log
    def add_audit(self, action: str, object_type: str, object_id: str, before: Any, after: Any) -> None: ...
    def audit_entries(self, q: AuditQuery) -> list[dict[str, Any]]: ...
