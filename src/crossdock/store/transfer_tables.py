"""Transfers between nodes: proposals, their approval, shipment and receipt (domain/transfer.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crossdock.domain.transfer import Transfer, TransferStatus
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, in_list

_COLUMNS = (
    "transfer_id, sku, from_node_id, to_node_id, quantity, cost, benefit, status, created_at, expires_at,"
    " shipped, received, seq, plan_id, note"
)


def _transfer(r: Any) -> Transfer:
    return Transfer(
        transfer_id=r[0],
        sku=r[1],
        from_node_id=r[2],
        to_node_id=r[3],
        quantity=int(r[4]),
        cost=float(r[5]),
        benefit=float(r[6]),
        status=TransferStatus(r[7]),
        created_at=from_text(r[8]),
        expires_at=from_text(r[9]),
        shipped=int(r[10]),
        received=int(r[11]),
        seq=int(r[12]),
        plan_id=r[13],
        note=r[14],
    )


def _row(t: Transfer, now: str) -> dict[str, Any]:
    return {
        "id": t.transfer_id,
        "sku": t.sku,
        "from_node": t.from_node_id,
        "to_node": t.to_node_id,
        "quantity": t.quantity,
        "cost": t.cost,
        "benefit": t.benefit,
        "status": str(t.status),
        "created": to_text(t.created_at),
        "expires": to_text(t.expires_at),
        "shipped": t.shipped,
        "received": t.received,
        "seq": t.seq,
        "plan": t.plan_id,
        "note": t.note,
        "now": now,
    }


class TransferTables(Sql):
    def insert_transfers(self, transfers: Sequence[Transfer]) -> None:
        self.many(
            f"INSERT INTO transfers ({_COLUMNS}, updated_at) VALUES (:id, :sku, :from_node, :to_node, :quantity,"
            " :cost, :benefit, :status, :created, :expires, :shipped, :received, :seq, :plan, :note, :now)",
            [_row(t, self.now_text) for t in transfers],
        )

    def save_transfer(self, t: Transfer) -> None:
        self.x(
            "UPDATE transfers SET quantity = :quantity, status = :status, shipped = :shipped, received = :received,"
            " seq = :seq, note = :note, updated_at = :now WHERE transfer_id = :id",
            _row(t, self.now_text),
        )

    def get_transfer(self, transfer_id: str, *, lock: bool = False) -> Transfer | None:
        r = self.one(
            f"SELECT {_COLUMNS} FROM transfers WHERE transfer_id = :id" + (self._for_update if lock else ""),
            {"id": transfer_id},
        )
        return _transfer(r) if r else None

    def transfers(self, status: str | None, sku: str | None, after: str, limit: int) -> list[Transfer]:
        where = ["transfer_id > :after"]
        if status is not None:
            where.append("status = :status")
        if sku is not None:
            where.append("sku = :sku")
        rows = self.all(
            f"SELECT {_COLUMNS} FROM transfers WHERE {' AND '.join(where)} ORDER BY transfer_id LIMIT :n",
            {"after": after, "status": status, "sku": sku, "n": limit},
        )
        return [_transfer(r) for r in rows]

    def proposed_transfer_ids(self, skus: Sequence[str] | None, *, expired_only: bool, limit: int) -> list[str]:
        """Proposals still open: all of them (of these SKUs), or only those past their expiry."""
        where, params = "status = 'proposed'", {"now": self.now_text, "n": limit}
        if expired_only:
            where += " AND expires_at <= :now"
        if skus is not None:
            names, p = in_list("s", sorted(set(skus)) or [""])
            where += f" AND sku IN {names}"
            params |= p
        rows = self.all(f"SELECT transfer_id FROM transfers WHERE {where} ORDER BY transfer_id LIMIT :n", params)
        return [r[0] for r in rows]
