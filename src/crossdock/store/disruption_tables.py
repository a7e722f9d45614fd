"""Disruptions, and the active ones as routing reads them on every order.

Orders are taken thousands of times a second and disruptions change a few times a day, so the active
ones are not read from their table per order: every change writes a new random token to
`disruption_version`, and the disruptions not yet ended are kept in memory per token. An order's
transaction reads the one-row token (the only query on the hot path) and filters the cached list by
its own clock. A new token per change, not a counter, so one process serving several databases
(tests do) cannot take one database's disruptions for another's.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from crossdock.routing.disruptions import Disruption, area_from_geojson, area_to_geojson
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, dumps, in_list

COLUMNS = "id, source, title, severity, effect, penalty, extra_days, node_ids, area, starts_at, ends_at, note"
_KEEP = 8  # tokens cached: one is current; a few more cover transactions that started before a change


class _Loaded:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_token: dict[str, tuple[Disruption, ...]] = {}


_LOADED = _Loaded()


def _row(r: Any) -> Disruption:
    return Disruption(
        id=r[0],
        source=r[1],
        title=r[2],
        severity=r[3],
        effect=r[4],
        penalty=float(r[5]),
        extra_days=int(r[6]),
        node_ids=frozenset(orjson.loads(r[7])),
        area=area_from_geojson(orjson.loads(r[8])) if r[8] else (),
        starts_at=from_text(r[9]) if r[9] else None,
        ends_at=from_text(r[10]) if r[10] else None,
        note=r[11],
    )


class DisruptionTables(Sql):
    _active_memo: tuple[Disruption, ...] | None = None  # this transaction's answer

    def put_disruption(self, d: Disruption) -> bool:
        """Creates or replaces the disruption; True when it is new."""
        created = self.one("SELECT 1 FROM disruptions WHERE id = :id", {"id": d.id}) is None
        area = area_to_geojson(d.area)
        self.x(
            f"INSERT INTO disruptions ({COLUMNS}, created_at, updated_at) VALUES (:id, :source, :title,"
            " :severity, :effect, :penalty, :extra_days, :node_ids, :area, :starts_at, :ends_at, :note, :now, :now)"
            " ON CONFLICT (id) DO UPDATE SET source = excluded.source, title = excluded.title,"
            " severity = excluded.severity, effect = excluded.effect, penalty = excluded.penalty,"
            " extra_days = excluded.extra_days, node_ids = excluded.node_ids, area = excluded.area,"
            " starts_at = excluded.starts_at, ends_at = excluded.ends_at, note = excluded.note,"
            " updated_at = excluded.updated_at",
            {
                "id": d.id,
                "source": d.source,
                "title": d.title,
                "severity": d.severity,
                "effect": d.effect,
                "penalty": d.penalty,
                "extra_days": d.extra_days,
                "node_ids": dumps(sorted(d.node_ids)),
                "area": dumps(area) if area is not None else None,
                "starts_at": to_text(d.starts_at) if d.starts_at else None,
                "ends_at": to_text(d.ends_at) if d.ends_at else None,
                "note": d.note,
                "now": self.now_text,
            },
        )
        self._disruptions_changed()
        return created

    def get_disruption(self, disruption_id: str) -> Disruption | None:
        r = self.one(f"SELECT {COLUMNS} FROM disruptions WHERE id = :id", {"id": disruption_id})
        return _row(r) if r else None

    def delete_disruption(self, disruption_id: str) -> bool:
        gone = self.x("DELETE FROM disruptions WHERE id = :id", {"id": disruption_id}).rowcount > 0
        if gone:
            self._disruptions_changed()
        return bool(gone)

    def disruptions(self, source: str | None = None) -> list[Disruption]:
        """Every disruption (of one source), ended ones too, in id order."""
        where, params = ("WHERE source = :source", {"source": source}) if source is not None else ("", {})
        return [_row(r) for r in self.all(f"SELECT {COLUMNS} FROM disruptions {where} ORDER BY id", params)]

    def end_disruptions(self, ids: Sequence[str]) -> int:
        """Ends the disruptions now (those not ended already); how many it ended."""
        if not ids:
            return 0
        names, params = in_list("d", list(ids))
        ended = int(
            self.x(
                f"UPDATE disruptions SET ends_at = :now, updated_at = :now WHERE id IN {names}"
                " AND (ends_at IS NULL OR ends_at > :now)",
                params | {"now": self.now_text},
            ).rowcount
        )
        if ended:
            self._disruptions_changed()
        return ended

    def active_disruptions(self) -> Sequence[Disruption]:
        """The disruptions active at this transaction's `now`."""
        if self._active_memo is None:
            token = self.one("SELECT token FROM disruption_version WHERE id = 1")[0]
            loaded = _LOADED.by_token.get(token)
            if loaded is None:
                loaded = tuple(
                    _row(r)
                    for r in self.all(
                        f"SELECT {COLUMNS} FROM disruptions WHERE ends_at IS NULL OR ends_at > :now",
                        {"now": self.now_text},
                    )
                )
                with _LOADED.lock:
                    if len(_LOADED.by_token) >= _KEEP:
                        _LOADED.by_token.pop(next(iter(_LOADED.by_token)))
                    _LOADED.by_token[token] = loaded
            self._active_memo = tuple(d for d in loaded if d.active(self.now)) if loaded else ()
        return self._active_memo

    def _disruptions_changed(self) -> None:
        self.x("UPDATE disruption_version SET token = :t WHERE id = 1", {"t": uuid.uuid4().hex})
        self._active_memo = None
