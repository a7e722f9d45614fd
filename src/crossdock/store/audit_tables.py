"""The audit log: one row per change of the catalog, webhook endpoints or stock by hand, written in
the transaction of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from crossdock.domain.audit import SYSTEM, Actor
from crossdock.services.ports import AuditQuery
from crossdock.store.clock import to_text
from crossdock.store.sql import Sql, dumps


class AuditTables(Sql):
    def __init__(self, conn: Any, dialect: str, now: datetime) -> None:
        super().__init__(conn, dialect, now)
        # Set by the job that runs a request's change (api.writes); everything else acts as the system.
        self.actor: Actor = SYSTEM
        self._audit: list[dict[str, Any]] = []

    def add_audit(self, action: str, object_type: str, object_id: str, before: Any, after: Any) -> None:
        """Buffers an entry; callers pass `before`/`after` already redacted (services.audit.record)."""
        self._audit.append(
            {
                "at": self.now_text,
                "actor": self.actor.name,
                "request_id": self.actor.request_id,
                "action": action,
                "otype": object_type,
                "oid": object_id,
                "before": None if before is None else dumps(before),
                "after": None if after is None else dumps(after),
            }
        )

    def write_audit(self) -> None:
        """Writes the buffered entries in one statement; a job that failed never gets here."""
        self.many(
            "INSERT INTO audit_log (at, actor, request_id, action, object_type, object_id, before, after)"
            " VALUES (:at, :actor, :request_id, :action, :otype, :oid, :before, :after)",
            self._audit,
        )
        self._audit = []

    def audit_entries(self, q: AuditQuery) -> list[dict[str, Any]]:
        where: list[str] = []
        if q.object_type is not None:
            where.append("object_type = :otype")
        if q.object_id is not None:
            where.append("object_id = :oid")
        if q.actor is not None:
            where.append("actor = :actor")
        if q.since is not None:
            where.append("at >= :since")
        if q.until is not None:
            where.append("at < :until")
        if q.after is not None:
            where.append("id < :after" if q.newest_first else "id > :after")
        rows = self.all(
            "SELECT id, at, actor, request_id, action, object_type, object_id, before, after FROM audit_log"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY id {'DESC' if q.newest_first else 'ASC'} LIMIT :n",
            {
                "otype": q.object_type,
                "oid": q.object_id,
                "actor": q.actor,
                "since": None if q.since is None else to_text(q.since),
                "until": None if q.until is None else to_text(q.until),
                "after": q.after,
                "n": q.limit,
            },
        )
        return [
            {
                "id": int(r[0]),
                "at": r[1],
                "actor": r[2],
                "request_id": r[3],
                "action": r[4],
                "object_type": r[5],
                "object_id": r[6],
                "before": None if r[7] is None else orjson.loads(r[7]),
                "after": None if r[8] is None else orjson.loads(r[8]),
            }
            for r in rows
        ]
