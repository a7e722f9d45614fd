"""The outbox and its consumers' cursors and leases."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from crossdock.domain.events import DomainEvent
from crossdock.domain.ids import uuid7_str
from crossdock.events.envelope import cloudevent
from crossdock.events.outbox import StoredEvent
from crossdock.store.clock import to_text
from crossdock.store.sql import Sql, dumps, in_list

NOTIFY_CHANNEL = "crossdock_outbox"


def _crashed(owner: str) -> bool:
    """Whether a lease holder ("host:pid:id") was a process on this host that no longer runs: after a
    crash and restart, the new relay need not wait for the dead one's lease to lapse."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


class EventTables(Sql):
    def __init__(self, conn: Any, dialect: str, now: datetime) -> None:
        super().__init__(conn, dialect, now)
        self._outbox: list[dict[str, Any]] = []
        # Set when the relay should look now rather than at its next poll (events or endpoints changed).
        self.wake_relay = False
        # The request's trace context (`traceparent`, `tracestate`): a CloudEvents extension of every event.
        self.trace: dict[str, str] | None = None

    # -- writing ----------------------------------------------------------------------------------
    def add_events(self, events: Sequence[tuple[DomainEvent, int]]) -> None:
        for event, sequence in events:
            event_id = uuid7_str()
            payload = cloudevent(event, event_id=event_id, sequence=sequence, time=self.now_text)
            if self.trace:
                payload.update(self.trace)
            self._outbox.append(
                {
                    "id": event_id,
                    "atype": event.aggregatetype,
                    "aid": event.aggregateid,
                    "type": event.type,
                    "seq": sequence,
                    "payload": dumps(payload),
                    "now": self.now_text,
                }
            )

    def write_outbox(self) -> None:
        """Writes the buffered events. Called last in a job, after the rows they describe: so on
        PostgreSQL the transaction has its id before it takes outbox positions (see events.outbox)."""
        if not self._outbox:
            return
        self.many(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, sequence, payload, created_at)"
            " VALUES (:id, :atype, :aid, :type, :seq, :payload, :now)",
            self._outbox,
        )
        self._outbox = []
        self.wake_relay = True
        if self.dialect == "postgresql":  # delivered at commit, to relays in every process
            self.x(f"NOTIFY {NOTIFY_CHANNEL}")

    # -- reading ----------------------------------------------------------------------------------
    def outbox_after(
        self, after: int, upto: int | None, limit: int, types: Collection[str] | None
    ) -> list[StoredEvent]:
        where = "position > :after"
        params: dict[str, Any] = {"after": after, "n": limit}
        if upto is not None:
            where += " AND position <= :upto"
            params["upto"] = upto
        if types:
            names, type_params = in_list("t", sorted(types))
            where += f" AND type IN {names}"
            params.update(type_params)
        rows = self.all(
            "SELECT position, id, type, aggregateid, aggregatetype, sequence, payload FROM outbox"
            f" WHERE {where} ORDER BY position LIMIT :n",
            params,
        )
        return [StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6]) for r in rows]

    def outbox_last_position(self) -> int:
        return int(self.one("SELECT COALESCE(MAX(position), 0) FROM outbox")[0])

    def outbox_watermark(self) -> tuple[int, frozenset[int]]:
        """PostgreSQL: the last position handed out, then the transactions running after that.
        (Snapshot bounds do not do here: a transaction younger than the latest completed one is
        running without lowering a snapshot's xmin.)"""
        last, called = self.one("SELECT last_value, is_called FROM outbox_position_seq")
        rows = self.all(
            "SELECT backend_xid::text FROM pg_stat_activity"
            " WHERE backend_xid IS NOT NULL AND datname = current_database()"
        )
        return (int(last) if called else 0), frozenset(int(r[0]) for r in rows)

    def compact_outbox(self, older_than: datetime, lease_seen_after: datetime, limit: int) -> int:
        """Deletes up to `limit` events older than `older_than` that every live consumer has passed.
        A consumer whose lease lapsed before `lease_seen_after` no longer holds events back. The newest
        row always stays: SQLite would hand out its position again."""
        live = self.one(
            "SELECT MIN(position) FROM event_consumers WHERE lease_until >= :seen",
            {"seen": to_text(lease_seen_after)},
        )[0]
        upto = self.outbox_last_position() - 1
        if live is not None:
            upto = min(upto, int(live))
        rows = self.all(
            "SELECT position FROM outbox WHERE position <= :upto AND created_at < :before ORDER BY position LIMIT :n",
            {"upto": upto, "before": to_text(older_than), "n": limit},
        )
        if not rows:
            return 0
        return self.many("DELETE FROM outbox WHERE position = :p", [{"p": r[0]} for r in rows])

    # -- consumers --------------------------------------------------------------------------------
    def add_consumer(self, name: str, position: int) -> None:
        self.x(
            "INSERT INTO event_consumers (name, position, updated_at) VALUES (:name, :position, :now)",
            {"name": name, "position": position, "now": self.now_text},
        )

    def claim_consumer(self, name: str, owner: str, lease: timedelta, start: int) -> int | None:
        """Takes or renews the lease on consumer `name` (created at `start` if new) and returns its
        position, or None while another relay holds it. Relays skip rows another is deciding on."""
        self.x(
            "INSERT INTO event_consumers (name, position, updated_at) VALUES (:name, :start, :now)"
            " ON CONFLICT (name) DO NOTHING",
            {"name": name, "start": start, "now": self.now_text},
        )
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        row = self.one(
            f"SELECT position, owner, lease_until FROM event_consumers WHERE name = :name{skip}", {"name": name}
        )
        held = row is not None and row[1] not in (None, owner) and row[2] is not None and row[2] > self.now_text
        if row is None or (held and not _crashed(row[1])):
            return None
        self.x(
            "UPDATE event_consumers SET owner = :owner, lease_until = :until, updated_at = :now WHERE name = :name",
            {"owner": owner, "until": to_text(self.now + lease), "now": self.now_text, "name": name},
        )
        return int(row[0])

    def save_consumer(self, name: str, owner: str, position: int) -> bool:
        """Moves the consumer on, if `owner` still holds it."""
        cur = self.x(
            "UPDATE event_consumers SET position = :position, updated_at = :now"
            " WHERE name = :name AND owner = :owner AND position <= :position",
            {"position": position, "now": self.now_text, "name": name, "owner": owner},
        )
        return int(cur.rowcount) == 1

    def release_consumer(self, name: str, owner: str) -> None:
        self.x(
            "UPDATE event_consumers SET owner = NULL, lease_until = NULL WHERE name = :name AND owner = :owner",
            {"name": name, "owner": owner},
        )

    def drop_consumer(self, name: str) -> None:
        self.x("DELETE FROM event_consumers WHERE name = :name", {"name": name})

    def consumer_positions(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.all("SELECT name, position FROM event_consumers")}
