"""Disruptions: set by hand through the API (audited like other admin changes), or kept in step with a
feed (weather alerts). Routing reads the active ones on every order (`UnitOfWork.active_disruptions`).

A feed owns the disruptions it wrote (their `source` is its name): a sync writes what it lists now and
ends the ones it no longer lists (expired, cancelled or superseded), so they stay on record. A
disruption set by hand is never touched by a feed, and a feed's cannot be replaced by hand (the next
sync would undo it); an administrator may delete one, which a feed that still lists it writes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from crossdock.domain.errors import InvalidRequest, NotFound, UnknownReference
from crossdock.routing.disruptions import Disruption, area_to_geojson
from crossdock.services.audit import record
from crossdock.services.ports import UnitOfWork

MANUAL = "manual"


class DisruptionStore(Protocol):
    """Where disruptions are kept (store.disruption_tables)."""

    now: datetime

    def put_disruption(self, d: Disruption) -> bool: ...
    def get_disruption(self, disruption_id: str) -> Disruption | None: ...
    def delete_disruption(self, disruption_id: str) -> bool: ...
    def disruptions(self, source: str | None = None) -> list[Disruption]: ...
    def end_disruptions(self, ids: Sequence[str]) -> int: ...
    def active_disruptions(self) -> Sequence[Disruption]: ...


def _store(uow: UnitOfWork) -> DisruptionStore:
    return cast(DisruptionStore, uow)


def utc_text(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def disruption_view(d: Disruption, now: datetime) -> dict[str, Any]:
    return {
        "id": d.id,
        "source": d.source,
        "title": d.title,
        "severity": d.severity,
        "effect": d.effect,
        "penalty": d.penalty,
        "extra_days": d.extra_days,
        "node_ids": sorted(d.node_ids),
        "area": area_to_geojson(d.area),
        "starts_at": utc_text(d.starts_at),
        "ends_at": utc_text(d.ends_at),
        "note": d.note,
        "active": d.active(now),
        "reason": d.reason,
    }


def _audited(d: Disruption | None, now: datetime) -> dict[str, Any] | None:
    if d is None:
        return None
    view = disruption_view(d, now)
    view.pop("active")  # a fact about `now`, not about the change
    return view


def put_disruption(uow: UnitOfWork, d: Disruption) -> tuple[bool, dict[str, Any]]:
    """Creates or replaces a disruption set by hand; (created, its view)."""
    if not d.node_ids and not d.area:
        raise InvalidRequest("a disruption needs node_ids, an area, or both", field="node_ids")
    if d.starts_at is not None and d.ends_at is not None and d.ends_at <= d.starts_at:
        raise InvalidRequest("ends_at must be after starts_at", field="ends_at")
    if d.effect == "penalty" and d.penalty <= 0:
        raise InvalidRequest("a penalty disruption needs a penalty above 0", field="penalty")
    if d.effect == "delay" and d.extra_days <= 0:
        raise InvalidRequest("a delay disruption needs extra_days above 0", field="extra_days")
    missing = sorted(n for n in d.node_ids if n not in uow.catalog().nodes)
    if missing:
        raise UnknownReference(f"unknown node {missing[0]}", node_ids=missing)
    store = _store(uow)
    before = store.get_disruption(d.id)
    if before is not None and before.source != d.source:
        raise InvalidRequest(
            f"disruption {d.id} comes from the {before.source} feed and changes with it; set another id",
            field="disruption_id",
        )
    created = store.put_disruption(d)
    action = f"disruption.{'created' if created else 'updated'}"
    record(uow, action, "disruption", d.id, _audited(before, uow.now), _audited(d, uow.now))
    return created, disruption_view(d, uow.now)


def remove_disruption(uow: UnitOfWork, disruption_id: str) -> dict[str, Any]:
    store = _store(uow)
    before = store.get_disruption(disruption_id)
    if before is None or not store.delete_disruption(disruption_id):
        raise NotFound(f"no disruption {disruption_id}")
    record(uow, "disruption.deleted", "disruption", disruption_id, _audited(before, uow.now), None)
    return {"id": disruption_id, "deleted": True}


def get_disruption(uow: UnitOfWork, disruption_id: str) -> dict[str, Any]:
    found = _store(uow).get_disruption(disruption_id)
    if found is None:
        raise NotFound(f"no disruption {disruption_id}")
    return disruption_view(found, uow.now)


def list_disruptions(uow: UnitOfWork, *, active: bool | None = None) -> dict[str, Any]:
    """Every disruption, or only those active (or not active) now."""
    found = _store(uow).disruptions()
    views = [disruption_view(d, uow.now) for d in found]
    if active is not None:
        views = [v for v in views if v["active"] is active]
    return {"disruptions": views}


def sync_feed(uow: UnitOfWork, source: str, current: Sequence[Disruption]) -> dict[str, int]:
    """Makes the feed's disruptions what it lists now: new and changed ones written, the ones it no
    longer lists ended. A disruption of another source with the same id is left alone."""
    store = _store(uow)
    everything = store.disruptions()
    known = {d.id: d for d in everything if d.source == source}
    taken = {d.id for d in everything if d.source != source}
    written = 0
    listed: set[str] = set()
    for d in current:
        if d.source != source or d.id in taken or d.id in listed:
            continue
        listed.add(d.id)
        if known.get(d.id) != d:
            store.put_disruption(d)
            written += 1
    gone = [i for i, d in known.items() if i not in listed and (d.ends_at is None or d.ends_at > uow.now)]
    ended = store.end_disruptions(gone)
    return {"listed": len(listed), "written": written, "ended": ended}
