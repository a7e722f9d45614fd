"""The unit of work: one transaction in plain SQL (plumbing in `store.sql`), catalog, ledger,
orders and holds here; the event tables in `store.event_tables` and `store.webhook_tables`, the audit
log in `store.audit_tables`."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from crossdock.domain.catalog import Buffer, Catalog, Channel, Node, NodeType, Sku
from crossdock.domain.errors import Conflict, UnknownReference
from crossdock.domain.order import Allocation, Order, OrderLine, OrderStatus, ShipTo
from crossdock.domain.position import Movement, Position
from crossdock.domain.reservation import Hold, HoldLine, HoldStatus
from crossdock.services.ports import Claim, LockedSkus, StoredResponse
from crossdock.store.audit_tables import AuditTables
from crossdock.store.auth_tables import AuthTables
from crossdock.store.channel_tables import ChannelTables
from crossdock.store.clock import from_text, to_text
from crossdock.store.demand_tables import DemandTables
from crossdock.store.disruption_tables import DisruptionTables
from crossdock.store.event_tables import EventTables
from crossdock.store.forecast_tables import ForecastTables
from crossdock.store.reroute_tables import RerouteTables
from crossdock.store.routing_tables import RoutingTables
from crossdock.store.sql import dumps, in_list
from crossdock.store.transfer_tables import TransferTables
from crossdock.store.webhook_tables import WebhookTables


@dataclass
class CatalogCache:
    """Nodes and channels change rarely: reload them only when `catalog_version` moves."""

    entry: tuple[int, Catalog] = (-1, Catalog({}, {}))  # (version, catalog), replaced whole
    lock: threading.Lock = field(default_factory=threading.Lock)


class SqlUnitOfWork(
    EventTables,
    WebhookTables,
    AuditTables,
    AuthTables,
    ChannelTables,
    RoutingTables,
    DisruptionTables,
    RerouteTables,
    DemandTables,
    TransferTables,
    ForecastTables,
):
    def __init__(self, conn: Any, dialect: str, now: datetime, cache: CatalogCache) -> None:
        super().__init__(conn, dialect, now)
        self._cache = cache
        # Outbox and history rows are written once, when the job completes: one statement each.
        self._history: list[dict[str, Any]] = []

    def complete(self) -> None:
        """Writes what the job buffered; runs inside the job's transaction, after the job."""
        self.many(
            "INSERT INTO order_history (order_id, at, status, event, detail)"
            " VALUES (:id, :now, :status, :event, :detail)",
            self._history,
        )
        self._history = []
        self.write_audit()
        self.write_outbox()

    # -- catalog ----------------------------------------------------------------------------------
    def catalog(self) -> Catalog:
        version = self.one("SELECT version FROM catalog_version WHERE id = 1")[0]
        entry = self._cache.entry
        if version != entry[0]:
            nodes = {
                r[0]: Node(
                    r[0], NodeType(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], orjson.loads(r[10]), r[11]
                )
                for r in self.all(
                    "SELECT node_id, type, name, postal_code, country, lat, lon, capacity_per_day,"
                    " handling_cost, connector, config, handling_cost_per_unit FROM nodes"
                )
            }
            channels = {
                r[0]: Channel(
                    r[0],
                    r[1],
                    r[2],
                    tuple(orjson.loads(r[3])),
                    Buffer(r[4], r[5]),
                    orjson.loads(r[6]),
                )
                for r in self.all(
                    "SELECT channel_id, type, name, node_ids, buffer_units, buffer_percent, config FROM channels"
                )
            }
            entry = (version, Catalog(nodes, channels))
            with self._cache.lock:
                # Versions only grow: a reader whose snapshot is older must not replace a newer entry.
                if version > self._cache.entry[0]:
                    self._cache.entry = entry
        return entry[1]

    def _bump_catalog(self) -> None:
        self.x("UPDATE catalog_version SET version = version + 1 WHERE id = 1")

    def _exists(self, table: str, column: str, value: str) -> bool:
        return self.one(f"SELECT 1 FROM {table} WHERE {column} = :v", {"v": value}) is not None

    def put_sku(self, sku: Sku) -> bool:
        created = not self._exists("skus", "sku", sku.sku)
        self.x(
            "INSERT INTO skus (sku, name, weight_grams, low_stock_threshold, seq, updated_at)"
            " VALUES (:sku, :name, :w, :low, 0, :now) ON CONFLICT (sku) DO UPDATE SET name = excluded.name,"
            " weight_grams = excluded.weight_grams, low_stock_threshold = excluded.low_stock_threshold,"
            " updated_at = excluded.updated_at",
            {
                "sku": sku.sku,
                "name": sku.name,
                "w": sku.weight_grams,
                "low": sku.low_stock_threshold,
                "now": self.now_text,
            },
        )
        return created

    def put_node(self, node: Node) -> bool:
        created = not self._exists("nodes", "node_id", node.node_id)
        self.x(
            "INSERT INTO nodes (node_id, type, name, postal_code, country, lat, lon, capacity_per_day,"
            " handling_cost, connector, config, handling_cost_per_unit, updated_at) VALUES (:node_id, :type, :name,"
            " :postal_code, :country, :lat, :lon, :capacity_per_day, :handling_cost, :connector, :config, :per_unit,"
            " :now) ON CONFLICT (node_id)"
            " DO UPDATE SET type = excluded.type, name = excluded.name, postal_code = excluded.postal_code,"
            " country = excluded.country, lat = excluded.lat, lon = excluded.lon,"
            " capacity_per_day = excluded.capacity_per_day, handling_cost = excluded.handling_cost,"
            " connector = excluded.connector, config = excluded.config,"
            " handling_cost_per_unit = excluded.handling_cost_per_unit, updated_at = excluded.updated_at",
            {
                "node_id": node.node_id,
                "type": str(node.type),
                "name": node.name,
                "postal_code": node.postal_code,
                "country": node.country,
                "lat": node.lat,
                "lon": node.lon,
                "capacity_per_day": node.capacity_per_day,
                "handling_cost": node.handling_cost,
                "connector": node.connector,
                "config": dumps(node.config),
                "per_unit": node.handling_cost_per_unit,
                "now": self.now_text,
            },
        )
        self._bump_catalog()
        return created

    def put_channel(self, channel: Channel) -> bool:
        created = not self._exists("channels", "channel_id", channel.channel_id)
        self.x(
            "INSERT INTO channels (channel_id, type, name, node_ids, buffer_units, buffer_percent, config,"
            " updated_at) VALUES (:channel_id, :type, :name, :node_ids, :units, :percent, :config, :now)"
            " ON CONFLICT (channel_id) DO UPDATE SET type = excluded.type, name = excluded.name,"
            " node_ids = excluded.node_ids, buffer_units = excluded.buffer_units,"
            " buffer_percent = excluded.buffer_percent, config = excluded.config,"
            " updated_at = excluded.updated_at",
            {
                "channel_id": channel.channel_id,
                "type": str(channel.type),
                "name": channel.name,
                "node_ids": dumps(list(channel.node_ids)),
                "units": channel.buffer.units,
                "percent": channel.buffer.percent,
                "config": dumps(channel.config),
                "now": self.now_text,
            },
        )
        self._bump_catalog()
        return created

    def get_sku(self, sku: str) -> Sku | None:
        r = self.one("SELECT sku, name, weight_grams, low_stock_threshold FROM skus WHERE sku = :sku", {"sku": sku})
        return Sku(r[0], r[1], r[2], r[3]) if r else None

    def skus_after(self, after: str, limit: int) -> list[str]:
        rows = self.all("SELECT sku FROM skus WHERE sku > :after ORDER BY sku LIMIT :n", {"after": after, "n": limit})
        return [r[0] for r in rows]

    # -- positions and the ledger -----------------------------------------------------------------
    def lock_skus(self, skus: Sequence[str]) -> LockedSkus:
        """Locks SKU rows in sorted order (the one lock order); returns their event sequences,
        low-stock thresholds and positions."""
        ordered = sorted(set(skus))
        names, params = in_list("s", ordered)
        if self.dialect == "postgresql":
            # Lock first, then read positions in a statement of its own: a statement that waited for
            # a lock re-reads the locked rows but not the rows it joined (READ COMMITTED), so positions
            # read with the lock could be from before the previous holder committed.
            skus_rows = self.all(
                f"SELECT sku, seq, low_stock_threshold, weight_grams FROM skus WHERE sku IN {names}"
                " ORDER BY sku FOR UPDATE",
                params,
            )
            positions = self.positions(ordered) if skus_rows else []
        else:  # one writer: nothing changes between lock and read, so one statement does both
            rows = self.all(
                "SELECT s.sku, s.seq, s.low_stock_threshold, s.weight_grams, p.node_id, p.on_hand, p.reserved,"
                " p.safety_stock, p.damaged, p.inbound FROM skus s LEFT JOIN positions p ON p.sku = s.sku"
                f" WHERE s.sku IN {names}",
                params,
            )
            skus_rows = list({r[0]: r[:4] for r in rows}.values())
            positions = [Position(r[0], *r[4:]) for r in rows if r[4] is not None]
        found = {r[0]: int(r[1]) for r in skus_rows}
        missing = [s for s in ordered if s not in found]
        if missing:
            raise UnknownReference(f"unknown SKU {missing[0]}", skus=missing)
        thresholds = {r[0]: int(r[2]) for r in skus_rows}
        return LockedSkus(found, thresholds, positions, {r[0]: int(r[3] or 0) for r in skus_rows})

    def positions(self, skus: Sequence[str]) -> list[Position]:
        names, params = in_list("s", list(skus))
        rows = self.all(
            "SELECT sku, node_id, on_hand, reserved, safety_stock, damaged, inbound FROM positions"
            f" WHERE sku IN {names}",
            params,
        )
        return [Position(*r) for r in rows]

    def all_positions(self) -> list[Position]:
        rows = self.all(
            "SELECT sku, node_id, on_hand, reserved, safety_stock, damaged, inbound FROM positions"
            " ORDER BY sku, node_id"
        )
        return [Position(*r) for r in rows]

    def rebuilt_positions(self) -> list[Position]:
        rows = self.all(
            "SELECT sku, node_id, SUM(d_on_hand), SUM(d_reserved), SUM(d_safety_stock), SUM(d_damaged),"
            " SUM(d_inbound) FROM movements GROUP BY sku, node_id ORDER BY sku, node_id"
        )
        return [Position(r[0], r[1], *(int(v) for v in r[2:])) for r in rows]

    def apply_movements(self, movements: Sequence[Movement], new_positions: Sequence[tuple[str, str]]) -> None:
        rows = [
            {
                "sku": m.sku,
                "node_id": m.node_id,
                "on_hand": m.d_on_hand,
                "reserved": m.d_reserved,
                "safety_stock": m.d_safety_stock,
                "damaged": m.d_damaged,
                "inbound": m.d_inbound,
                "reason": str(m.reason),
                "reference": m.reference,
                "now": self.now_text,
            }
            for m in movements
        ]
        self.many(
            "INSERT INTO movements (sku, node_id, d_on_hand, d_reserved, d_safety_stock, d_damaged, d_inbound,"
            " reason, reference, created_at) VALUES (:sku, :node_id, :on_hand, :reserved, :safety_stock,"
            " :damaged, :inbound, :reason, :reference, :now)",
            rows,
        )
        # New positions start at zero (CHECK constraints are tested before an upsert's conflict).
        self.many(
            "INSERT INTO positions (sku, node_id) VALUES (:sku, :node_id) ON CONFLICT (sku, node_id) DO NOTHING",
            [{"sku": sku, "node_id": node_id} for sku, node_id in new_positions],
        )
        # The guard repeats the domain's check in the database: a hold never takes more than is free.
        # CHECK constraints keep reserved <= on_hand and every bucket >= 0.
        for row in rows:
            cur = self.x(
                "UPDATE positions SET on_hand = on_hand + :on_hand, reserved = reserved + :reserved,"
                " safety_stock = safety_stock + :safety_stock, damaged = damaged + :damaged,"
                " inbound = inbound + :inbound WHERE sku = :sku AND node_id = :node_id AND (:reserved <= 0"
                " OR :reserved <= on_hand + :on_hand - reserved - safety_stock - :safety_stock - damaged - :damaged)",
                row,
            )
            if cur.rowcount != 1:
                raise Conflict(f"stock of {row['sku']} at {row['node_id']} changed underneath; retry")

    def save_sku_sequences(self, sequences: dict[str, int]) -> None:
        self.many(
            "UPDATE skus SET seq = :seq WHERE sku = :sku",
            [{"sku": k, "seq": v} for k, v in sequences.items()],
        )

    def claims_at(self, sku: str, node_id: str) -> list[Claim]:
        rows = self.all(
            "SELECT 'hold', h.reservation_id, l.quantity FROM hold_lines l"
            " JOIN holds h ON h.reservation_id = l.reservation_id"
            " WHERE l.sku = :sku AND l.node_id = :node AND h.status = 'active'"
            " UNION ALL SELECT 'order', order_id, quantity FROM allocations"
            " WHERE sku = :sku AND node_id = :node AND quantity > 0"
            " UNION ALL SELECT 'transfer', transfer_id, quantity FROM transfers"
            " WHERE sku = :sku AND from_node_id = :node AND status = 'approved'",
            {"sku": sku, "node": node_id},
        )
        return [Claim(r[0], r[1], int(r[2])) for r in rows]

    # -- orders -----------------------------------------------------------------------------------
    def find_order_id(self, channel_id: str, external_id: str) -> str | None:
        r = self.one(
            "SELECT order_id FROM orders WHERE channel_id = :c AND external_id = :e",
            {"c": channel_id, "e": external_id},
        )
        return r[0] if r else None

    def get_order(self, order_id: str, *, lock: bool = False) -> Order | None:
        r = self.one(
            "SELECT order_id, channel_id, external_id, status, ship_to, deliver_by, seq, created_at FROM orders"
            " WHERE order_id = :id" + (self._for_update if lock else ""),
            {"id": order_id},
        )
        if r is None:
            return None
        ship_to = orjson.loads(r[4])
        lines = [
            OrderLine(*row)
            for row in self.all(
                "SELECT line_no, sku, quantity, allocated, shipped, cancelled, keep_with FROM order_lines"
                " WHERE order_id = :id ORDER BY line_no",
                {"id": order_id},
            )
        ]
        allocations = [
            Allocation(*row)
            for row in self.all(
                "SELECT node_id, sku, quantity, shipped, carrier, service, cost FROM allocations"
                " WHERE order_id = :id ORDER BY created_at, node_id, sku",
                {"id": order_id},
            )
        ]
        return Order(
            order_id=r[0],
            channel_id=r[1],
            external_id=r[2],
            lines=lines,
            ship_to=ShipTo(**ship_to),
            created_at=from_text(r[7]),
            deliver_by=from_text(r[5]) if r[5] else None,
            status=OrderStatus(r[3]),
            allocations=allocations,
            seq=int(r[6]),
        )

    def insert_order(self, order: Order) -> None:
        st = order.ship_to
        self.x(
            "INSERT INTO orders (order_id, channel_id, external_id, status, ship_to, deliver_by, seq, created_at,"
            " updated_at) VALUES (:id, :channel, :external, :status, :ship_to, :deliver_by, :seq, :created, :now)",
            {
                "id": order.order_id,
                "channel": order.channel_id,
                "external": order.external_id,
                "status": str(order.status),
                "ship_to": dumps({"postal_code": st.postal_code, "country": st.country, "lat": st.lat, "lon": st.lon}),
                "deliver_by": to_text(order.deliver_by) if order.deliver_by else None,
                "seq": order.seq,
                "created": to_text(order.created_at),
                "now": self.now_text,
            },
        )
        self.many(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity, allocated, shipped, cancelled, keep_with)"
            " VALUES (:id, :line_no, :sku, :quantity, :allocated, :shipped, :cancelled, :group)",
            [
                {
                    "id": order.order_id,
                    "line_no": ln.line_no,
                    "sku": ln.sku,
                    "quantity": ln.quantity,
                    "allocated": ln.allocated,
                    "shipped": ln.shipped,
                    "cancelled": ln.cancelled,
                    "group": ln.group,
                }
                for ln in order.lines
            ],
        )
        self._save_order_parts(order)

    def save_order(self, order: Order) -> None:
        self.x(
            "UPDATE orders SET status = :status, seq = :seq, updated_at = :now WHERE order_id = :id",
            {"status": str(order.status), "seq": order.seq, "now": self.now_text, "id": order.order_id},
        )
        self.many(
            "UPDATE order_lines SET allocated = :allocated, shipped = :shipped, cancelled = :cancelled"
            " WHERE order_id = :id AND line_no = :line_no",
            [
                {
                    "id": order.order_id,
                    "line_no": ln.line_no,
                    "allocated": ln.allocated,
                    "shipped": ln.shipped,
                    "cancelled": ln.cancelled,
                }
                for ln in order.lines
            ],
        )
        self._save_order_parts(order)

    def _save_order_parts(self, order: Order) -> None:
        self.many(
            "INSERT INTO allocations AS a (order_id, node_id, sku, quantity, shipped, carrier, service, cost,"
            " created_at) VALUES (:id, :node_id, :sku, :quantity, :shipped, :carrier, :service, :cost, :now)"
            " ON CONFLICT (order_id, node_id, sku) DO UPDATE SET quantity = excluded.quantity,"
            " shipped = excluded.shipped, carrier = excluded.carrier, service = excluded.service,"
            " cost = excluded.cost",
            [
                {
                    "id": order.order_id,
                    "node_id": a.node_id,
                    "sku": a.sku,
                    "quantity": a.quantity,
                    "shipped": a.shipped,
                    "carrier": a.carrier,
                    "service": a.service,
                    "cost": a.cost,
                    "now": self.now_text,
                }
                for a in order.allocations
            ],
        )

    def order_ids(self, channel_id: str | None, status: str | None, after: str, limit: int) -> list[str]:
        where = ["order_id > :after"]
        if channel_id is not None:
            where.append("channel_id = :channel")
        if status is not None:
            where.append("status = :status")
        rows = self.all(
            f"SELECT order_id FROM orders WHERE {' AND '.join(where)} ORDER BY order_id LIMIT :n",
            {"after": after, "channel": channel_id, "status": status, "n": limit},
        )
        return [r[0] for r in rows]

    def backordered_order_ids(self, skus: Iterable[str], channel_ids: Sequence[str], limit: int) -> list[str]:
        if not channel_ids:
            return []
        skus_in, params = in_list("s", sorted(set(skus)))
        channels_in, channel_params = in_list("c", list(channel_ids))
        rows = self.all(
            f"SELECT DISTINCT l.order_id FROM order_lines l JOIN orders o ON o.order_id = l.order_id"
            f" WHERE l.sku IN {skus_in} AND o.channel_id IN {channels_in}"
            " AND l.allocated + l.shipped + l.cancelled < l.quantity ORDER BY l.order_id LIMIT :n",
            {**params, **channel_params, "n": limit},
        )
        return [r[0] for r in rows]

    def add_history(self, order: Order, event: str, detail: dict[str, Any]) -> None:
        self._history.append(
            {
                "id": order.order_id,
                "now": self.now_text,
                "status": str(order.status),
                "event": event,
                "detail": dumps(detail),
            }
        )

    def history(self, order_id: str) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT at, status, event, detail FROM order_history WHERE order_id = :id ORDER BY id",
            {"id": order_id},
        )
        return [{"at": r[0], "status": r[1], "event": r[2], "detail": orjson.loads(r[3])} for r in rows]

    # -- checkout holds ---------------------------------------------------------------------------
    def insert_hold(self, hold: Hold) -> None:
        self.x(
            "INSERT INTO holds (reservation_id, channel_id, status, expires_at, order_id, seq, created_at,"
            " updated_at) VALUES (:id, :channel, :status, :expires, NULL, :seq, :now, :now)",
            {
                "id": hold.reservation_id,
                "channel": hold.channel_id,
                "status": str(hold.status),
                "expires": to_text(hold.expires_at),
                "seq": hold.seq,
                "now": self.now_text,
            },
        )
        self.many(
            "INSERT INTO hold_lines (reservation_id, sku, node_id, quantity) VALUES (:id, :sku, :node_id, :q)",
            [{"id": hold.reservation_id, "sku": ln.sku, "node_id": ln.node_id, "q": ln.quantity} for ln in hold.lines],
        )

    def save_hold(self, hold: Hold) -> None:
        self.x(
            "UPDATE holds SET status = :status, order_id = :order_id, seq = :seq, updated_at = :now"
            " WHERE reservation_id = :id",
            {
                "status": str(hold.status),
                "order_id": hold.order_id,
                "seq": hold.seq,
                "now": self.now_text,
                "id": hold.reservation_id,
            },
        )

    def get_hold(self, reservation_id: str, *, lock: bool = False) -> Hold | None:
        r = self.one(
            "SELECT reservation_id, channel_id, status, expires_at, order_id, seq, created_at FROM holds"
            " WHERE reservation_id = :id" + (self._for_update if lock else ""),
            {"id": reservation_id},
        )
        if r is None:
            return None
        lines = [
            HoldLine(*row)
            for row in self.all(
                "SELECT sku, node_id, quantity FROM hold_lines WHERE reservation_id = :id ORDER BY sku, node_id",
                {"id": reservation_id},
            )
        ]
        return Hold(
            reservation_id=r[0],
            channel_id=r[1],
            status=HoldStatus(r[2]),
            expires_at=from_text(r[3]),
            order_id=r[4],
            seq=int(r[5]),
            created_at=from_text(r[6]),
            lines=lines,
        )

    def expired_hold_ids(self, limit: int) -> list[str]:
        rows = self.all(
            "SELECT reservation_id FROM holds WHERE status = 'active' AND expires_at <= :now"
            " ORDER BY expires_at LIMIT :n",
            {"now": self.now_text, "n": limit},
        )
        return [r[0] for r in rows]

    # -- idempotency ------------------------------------------------------------------------------
    def claim_idempotency_key(self, scope: str, key: str) -> bool:
        """Whether this transaction may run the key's request: on PostgreSQL, False while another
        transaction holds it (several writers); SQLite's one writer runs one request at a time."""
        if self.dialect != "postgresql":
            return True
        got = self.one("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))", {"k": f"{scope}\n{key}"})
        return bool(got[0])

    def get_response(self, scope: str, key: str, since: datetime) -> StoredResponse | None:
        """The response stored for a key, unless it was stored before `since` (past retention)."""
        r = self.one(
            "SELECT request_hash, status_code, response FROM idempotency_keys"
            " WHERE scope = :scope AND key = :key AND created_at >= :since",
            {"scope": scope, "key": key, "since": to_text(since)},
        )
        return StoredResponse(r[0], int(r[1]), orjson.loads(r[2])) if r else None

    def save_response(self, scope: str, key: str, response: StoredResponse) -> None:
        # A key past retention may still have its row (compaction runs now and then): replace it.
        self.x(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)"
            " VALUES (:scope, :key, :hash, :status, :response, :now) ON CONFLICT (scope, key) DO UPDATE SET"
            " request_hash = excluded.request_hash, status_code = excluded.status_code,"
            " response = excluded.response, created_at = excluded.created_at",
            {
                "scope": scope,
                "key": key,
                "hash": response.request_hash,
                "status": response.status_code,
                "response": dumps(response.body),
                "now": self.now_text,
            },
        )

    def compact_idempotency_keys(self, older_than: datetime, limit: int) -> int:
        rows = self.all(
            "SELECT scope, key FROM idempotency_keys WHERE created_at < :before LIMIT :n",
            {"before": to_text(older_than), "n": limit},
        )
        keys = [{"scope": r[0], "key": r[1]} for r in rows]
        return self.many("DELETE FROM idempotency_keys WHERE scope = :scope AND key = :key", keys)
