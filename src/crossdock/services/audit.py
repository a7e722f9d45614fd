"""The audit log: services record each change of the catalog, webhook endpoints and stock by hand in
the unit of work of the change, so an entry exists exactly when the change committed."""

from __future__ import annotations

from typing import Any, Protocol

from crossdock.domain.audit import Actor, redact
from crossdock.domain.errors import InvalidRequest
from crossdock.services.ports import AuditQuery


class AuditStore(Protocol):
    actor: Actor

    def add_audit(self, action: str, object_type: str, object_id: str, before: Any, after: Any) -> None: ...
    def audit_entries(self, q: AuditQuery) -> list[dict[str, Any]]: ...


def record(uow: AuditStore, action: str, object_type: str, object_id: str, before: Any, after: Any) -> None:
    """Records a change with credentials redacted; a change that changes nothing is not recorded."""
    if before == after:
        return
    uow.add_audit(action, object_type, object_id, redact(before), redact(after))


def position_id(sku: str, node_id: str) -> str:
    """The object id of a position. "|" is in no SKU or node id, so the pair reads back unambiguously."""
    return f"{sku}|{node_id}"


def audit_page(uow: AuditStore, q: AuditQuery) -> dict[str, Any]:
    if q.since is not None and q.until is not None and q.since >= q.until:
        raise InvalidRequest("since must be before until", field="since")
    entries = uow.audit_entries(q)
    return {
        "entries": entries,
        "next": str(entries[-1]["id"]) if len(entries) == q.limit else None,
    }
