"""The positions one transaction touches, changed only by posting movements.

A ledger locks SKUs before reading their positions, checks every movement against the invariants
as it is posted, and on `flush` writes movements, positions and their events together.

Events per SKU, in this order: `position_changed` per movement, `ats_changed` per channel whose
sellable quantity differs at the end of the transaction, `low_stock` per node whose available
quantity crossed the SKU's threshold downwards over the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from crossdock.domain import events as ev
from crossdock.domain.catalog import Catalog
from crossdock.domain.errors import InsufficientStock, InvalidRequest
from crossdock.domain.events import DomainEvent
from crossdock.domain.position import Movement, Position
from crossdock.services.ports import UnitOfWork

Key = tuple[str, str]


class Ledger:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.catalog: Catalog = uow.catalog()
        self._seq: dict[str, int] = {}
        self._low: dict[str, int] = {}  # low-stock threshold of each locked SKU
        self.weights: dict[str, int] = {}  # grams per unit of each locked SKU
        self._before: dict[Key, Position] = {}
        self._now: dict[Key, Position] = {}
        self._movements: list[Movement] = []
        self._events: list[tuple[DomainEvent, str]] = []  # (event, aggregate SKU) in posting order
        # The last movement that took a position from above its threshold to at or below it: the cause
        # named by `low_stock` if the position is still down there at flush.
        self._fell: dict[Key, Movement] = {}

    def lock(self, skus: Iterable[str]) -> None:
        """Locks SKUs (raising UnknownReference for any that do not exist) and loads their positions."""
        new = sorted(set(skus) - self._seq.keys())
        if not new:
            return
        sequences, thresholds, positions, weights = self.uow.lock_skus(new)
        self._seq.update(sequences)
        self._low.update(thresholds)
        self.weights.update(weights)
        for pos in positions:
            self._before[pos.key] = self._now[pos.key] = pos

    def position(self, sku: str, node_id: str) -> Position:
        if sku not in self._seq:
            raise AssertionError(f"SKU {sku} read before it was locked")
        return self._now.get((sku, node_id)) or Position(sku, node_id)

    def free(self, sku: str, node_id: str) -> int:
        return self.position(sku, node_id).free

    def post(self, m: Movement) -> Position:
        if m.is_empty():
            return self.position(m.sku, m.node_id)
        if m.node_id not in self.catalog.nodes:
            raise InvalidRequest(f"unknown node {m.node_id}")
        before = self.position(m.sku, m.node_id)
        after = before.apply(m)
        if m.d_reserved > 0 and after.free < 0:
            raise InsufficientStock(f"{m.sku} at {m.node_id}: {before.available} available, {m.d_reserved} asked")
        if bad := after.violations():
            raise InvalidRequest(f"{m.sku} at {m.node_id}: {', '.join(bad)}", sku=m.sku, node_id=m.node_id)
        self._now[m.key] = after
        self._movements.append(m)
        if before.available > self._low[m.sku] >= after.available:
            self._fell[m.key] = m
        self._events.append(
            (
                DomainEvent(
                    ev.POSITION_CHANGED,
                    "inventory",
                    m.sku,
                    {
                        "sku": m.sku,
                        "node_id": m.node_id,
                        "reason": str(m.reason),
                        "reference": m.reference,
                        "before": _quantities(before),
                        "after": _quantities(after),
                    },
                ),
                m.sku,
            )
        )
        return after

    def available_to_sell(self, sku: str, positions: dict[Key, Position]) -> dict[str, int]:
        by_node = {node: p.available for (s, node), p in positions.items() if s == sku}
        return {c.channel_id: c.available_to_sell(by_node) for c in self.catalog.channels.values()}

    def flush(self) -> None:
        if not self._movements:
            return
        new = [k for k in dict.fromkeys(m.key for m in self._movements) if k not in self._before]
        self.uow.apply_movements(self._movements, new)
        changed = sorted({m.sku for m in self._movements})
        for sku in changed:
            before = self.available_to_sell(sku, self._before)
            after = self.available_to_sell(sku, self._now)
            for channel_id, qty in after.items():
                if qty != before[channel_id]:
                    self._events.append(
                        (
                            DomainEvent(
                                ev.ATS_CHANGED,
                                "inventory",
                                sku,
                                {
                                    "sku": sku,
                                    "channel_id": channel_id,
                                    "before": before[channel_id],
                                    "after": qty,
                                },
                            ),
                            sku,
                        )
                    )
        self._low_stock_events()
        numbered = []
        for event, sku in self._events:
            self._seq[sku] += 1
            numbered.append((event, self._seq[sku]))
        self.uow.add_events(numbered)
        self.uow.save_sku_sequences({sku: self._seq[sku] for sku in changed})
        self._before.update(self._now)
        self._movements.clear()
        self._events.clear()
        self._fell.clear()

    def _low_stock_events(self) -> None:
        """A crossing is judged from the start of the transaction to its end: a position that dips and
        recovers within it, or was already low, does not fire."""
        for key in sorted(self._fell):
            m = self._fell[key]
            threshold = self._low[m.sku]
            start = self._before.get(key)
            end = self._now[key]
            if (start.available if start else 0) > threshold >= end.available:
                self._events.append(
                    (
                        DomainEvent(
                            ev.LOW_STOCK,
                            "inventory",
                            m.sku,
                            {
                                "sku": m.sku,
                                "node_id": m.node_id,
                                "available": end.available,
                                "threshold": threshold,
                                "reason": str(m.reason),
                                "reference": m.reference,
                            },
                        ),
                        m.sku,
                    )
                )


def _quantities(p: Position) -> dict[str, int]:
    return {
        "on_hand": p.on_hand,
        "reserved": p.reserved,
        "safety_stock": p.safety_stock,
        "damaged": p.damaged,
        "inbound": p.inbound,
        "available": p.available,
    }
