"""SQL plumbing shared by the table groups of the unit of work.

SQL is written once with `:name` parameters; PostgreSQL gets them rewritten to `%(name)s`.
Row locks (`FOR UPDATE`) only exist on PostgreSQL; SQLite has a single writer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from crossdock.store.clock import to_text

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def in_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """An IN list with one named parameter per value."""
    names = [f"{name}{i}" for i in range(len(values))]
    return "(" + ", ".join(":" + n for n in names) + ")", dict(zip(names, values, strict=True))


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Sql:
    """One transaction on a DB-API connection (stdlib sqlite3 or psycopg 3)."""

    def __init__(self, conn: Any, dialect: str, now: datetime) -> None:
        self.conn = conn
        self.dialect = dialect
        self.now = now
        self.now_text = to_text(now)
        self._for_update = " FOR UPDATE" if dialect == "postgresql" else ""

    def _sql(self, sql: str) -> str:
        return _pyformat(sql) if self.dialect == "postgresql" else sql

    def x(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), params or {})
        return cur

    def many(self, sql: str, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), rows)
        return int(cur.rowcount)

    def all(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        return list(self.x(sql, params).fetchall())

    def one(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.x(sql, params).fetchone()
