"""Reading the outbox in commit order, and where each consumer has got to.

On SQLite one writer commits in position order, so any snapshot holds a gap-free prefix of the
outbox (gaps are rolled-back rows that never come back). On PostgreSQL several transactions take
positions at once and commit in any order: a reader must not pass a position whose transaction may
still commit. `Horizon` finds the highest position that is settled: it notes the last position
handed out, then the transactions running; once all of those have ended, no row at or below the
noted position can still appear. This relies on every transaction holding its transaction id
before it takes an outbox position, which the write path guarantees: events are written last,
after the rows they describe (and the first of those locks a row, which assigns the id).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    id: str
    type: str
    subject: str
    aggregatetype: str
    sequence: int
    payload: str  # the CloudEvent, structured JSON, exactly as committed

    def cloudevent(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.payload)
        return result


class OutboxReads(Protocol):
    """What reading the outbox needs from a unit of work (`store.event_tables` implements it)."""

    dialect: str

    def outbox_after(
        self, after: int, upto: int | None, limit: int, types: Collection[str] | None
    ) -> list[StoredEvent]: ...
    def outbox_last_position(self) -> int: ...
    def outbox_watermark(self) -> tuple[int, frozenset[int]]: ...


class Horizon:
    """The highest PostgreSQL outbox position below which every row is committed or gone for good."""

    MAX_PENDING = 256

    def __init__(self) -> None:
        self.safe = 0
        # (last position handed out, transactions running just after): safe once those have ended
        self._pending: deque[tuple[int, frozenset[int]]] = deque()
        self._lock = threading.Lock()

    def advance(self, uow: OutboxReads) -> int:
        last, running = uow.outbox_watermark()
        with self._lock:
            if not self._pending or last > self._pending[-1][0]:
                if len(self._pending) == self.MAX_PENDING:
                    self._pending.pop()  # keep the oldest: it becomes safe first
                self._pending.append((last, running))
            while self._pending and not (self._pending[0][1] & running):
                self.safe = max(self.safe, self._pending.popleft()[0])
            return self.safe

    @property
    def settling(self) -> bool:
        """Whether positions are waiting for running transactions to end."""
        return bool(self._pending)


@dataclass(frozen=True, slots=True)
class Page:
    events: list[StoredEvent]
    next: int  # the cursor to read on from: past every row read or skipped by the type filter


class Outbox:
    """Reads committed events in position order. One per process (the horizon is remembered)."""

    def __init__(self) -> None:
        self.horizon = Horizon()

    def read(self, uow: OutboxReads, after: int, limit: int, types: Collection[str] | None = None) -> Page:
        if uow.dialect == "postgresql":
            upto: int | None = self.horizon.advance(uow)
            if upto is not None and upto <= after:
                return Page([], after)
        else:
            upto = None
        events = uow.outbox_after(after, upto, limit, types)
        if len(events) == limit:
            return Page(events, events[-1].position)
        # Fewer than asked: everything up to the end (read in the same snapshot) has been seen,
        # filtered or not.
        end = upto if upto is not None else uow.outbox_last_position()
        return Page(events, max(after, end))

    def settling(self) -> bool:
        return self.horizon.settling
