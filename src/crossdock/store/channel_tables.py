"""Channels and nodes: what their webhooks brought in (deliveries already taken, each order's newest
change), the sellable quantities going out to channels (the newest to show, the newest they took,
their sync state), the fulfilment requests going out to nodes and their cancellations, shipments
with their carriers' tracking news, and carrier accounts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from crossdock.connectors.sdk import (
    FulfilmentCancel,
    FulfilmentRequest,
    Line,
    PendingFeed,
    QuantityUpdate,
    TrackingUpdate,
)
from crossdock.domain.carrier import CarrierAccount
from crossdock.domain.channel_stock import DesiredStock
from crossdock.domain.ids import new_id
from crossdock.domain.order import ShipTo
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, dumps, in_list


class ChannelTables(Sql):
    def seen_delivery(self, channel_id: str, event_id: str) -> bool:
        r = self.one(
            "SELECT 1 FROM channel_inbox WHERE channel_id = :c AND event_id = :e", {"c": channel_id, "e": event_id}
        )
        return r is not None

    def record_delivery(self, channel_id: str, event_id: str, topic: str, outcome: dict[str, Any]) -> None:
        self.x(
            "INSERT INTO channel_inbox (channel_id, event_id, topic, received_at, outcome)"
            " VALUES (:c, :e, :t, :now, :o)",
            {"c": channel_id, "e": event_id, "t": topic, "now": self.now_text, "o": dumps(outcome)},
        )

    def order_version(self, channel_id: str, external_id: str) -> str | None:
        r = self.one(
            "SELECT occurred_at FROM channel_order_versions WHERE channel_id = :c AND external_id = :e",
            {"c": channel_id, "e": external_id},
        )
        return r[0] if r else None

    def set_order_version(self, channel_id: str, external_id: str, occurred_at: datetime) -> None:
        self.x(
            "INSERT INTO channel_order_versions (channel_id, external_id, occurred_at) VALUES (:c, :e, :t)"
            " ON CONFLICT (channel_id, external_id) DO UPDATE SET occurred_at = excluded.occurred_at",
            {"c": channel_id, "e": external_id, "t": to_text(occurred_at)},
        )

    def compact_channel_inbox(self, older_than: datetime, limit: int) -> int:
        """Forgets deliveries past the retention period (channels stop retrying long before)."""
        rows = self.all(
            "SELECT channel_id, event_id FROM channel_inbox WHERE received_at < :before LIMIT :n",
            {"before": to_text(older_than), "n": limit},
        )
        keys = [{"c": r[0], "e": r[1]} for r in rows]
        return self.many("DELETE FROM channel_inbox WHERE channel_id = :c AND event_id = :e", keys)

    # -- sellable quantities out ------------------------------------------------------------------
    def record_desired(self, rows: Sequence[DesiredStock]) -> None:
        """The newest quantity to show per (channel, SKU); an older sequence never replaces a newer."""
        self.many(
            "INSERT INTO channel_stock (channel_id, sku, available, sequence, changed_at)"
            " VALUES (:c, :sku, :q, :seq, :at) ON CONFLICT (channel_id, sku) DO UPDATE SET"
            " available = excluded.available, sequence = excluded.sequence, changed_at = excluded.changed_at,"
            " refused = NULL WHERE channel_stock.sequence < excluded.sequence",
            [_desired(r) for r in rows],
        )

    def reset_desired(self, rows: Sequence[DesiredStock]) -> None:
        """Quantities to push again whatever was pushed (a reconciliation found the channel wrong)."""
        self.many(
            "INSERT INTO channel_stock (channel_id, sku, available, sequence, changed_at)"
            " VALUES (:c, :sku, :q, :seq, :at) ON CONFLICT (channel_id, sku) DO UPDATE SET"
            " available = excluded.available, changed_at = excluded.changed_at, pushed_sequence = NULL,"
            " refused = NULL, sequence = CASE WHEN channel_stock.sequence > excluded.sequence"
            " THEN channel_stock.sequence ELSE excluded.sequence END",
            [_desired(r) for r in rows],
        )

    def pending_stock(self, channel_id: str, limit: int) -> list[DesiredStock]:
        rows = self.all(
            f"SELECT sku, available, sequence, changed_at FROM channel_stock WHERE channel_id = :c AND {_PENDING}"
            " ORDER BY changed_at LIMIT :n",
            {"c": channel_id, "n": limit},
        )
        return [DesiredStock(channel_id, r[0], int(r[1]), int(r[2]), from_text(r[3])) for r in rows]

    def mark_pushed(self, channel_id: str, pushed: Sequence[tuple[str, int]], refused: Mapping[str, str]) -> None:
        self.many(
            "UPDATE channel_stock SET pushed_sequence = :seq, pushed_at = :now WHERE channel_id = :c AND sku = :sku"
            " AND (pushed_sequence IS NULL OR pushed_sequence < :seq)",
            [{"c": channel_id, "sku": sku, "seq": seq, "now": self.now_text} for sku, seq in pushed],
        )
        self.many(
            "UPDATE channel_stock SET refused = :why WHERE channel_id = :c AND sku = :sku",
            [{"c": channel_id, "sku": sku, "why": why[:500]} for sku, why in refused.items()],
        )
        self._sync_state(channel_id, "last_push_at = :now, failures = 0, paused_until = NULL", {})

    def note_sync_failure(self, channel_id: str, error: str, paused_until: datetime | None) -> None:
        self._sync_state(
            channel_id,
            "last_error = :error, last_error_at = :now, failures = channel_sync_state.failures + 1,"
            " paused_until = :until",
            {"error": error[:500], "until": to_text(paused_until) if paused_until else None},
        )

    def poll_cursor(self, channel_id: str) -> str | None:
        r = self.one("SELECT poll_cursor FROM channel_sync_state WHERE channel_id = :c", {"c": channel_id})
        return r[0] if r else None

    def save_poll_cursor(self, channel_id: str, cursor: str) -> None:
        self._sync_state(channel_id, "poll_cursor = :cursor", {"cursor": cursor})

    def save_reconciliation(self, channel_id: str, report: dict[str, Any]) -> None:
        self._sync_state(channel_id, "reconciled_at = :now, reconciliation = :report", {"report": dumps(report)})

    def _sync_state(self, channel_id: str, assignments: str, params: dict[str, Any]) -> None:
        self.x(
            "INSERT INTO channel_sync_state (channel_id) VALUES (:c) ON CONFLICT (channel_id) DO NOTHING",
            {"c": channel_id},
        )
        self.x(
            f"UPDATE channel_sync_state SET {assignments} WHERE channel_id = :c",
            {"c": channel_id, "now": self.now_text, **params},
        )

    def sync_circuit(self, channel_id: str) -> tuple[int, datetime | None]:
        """Failures in a row, and until when pushing is paused: what a channel worker looks at
        before every push (one row, unlike `sync_status`, which counts the channel's SKUs)."""
        r = self.one("SELECT failures, paused_until FROM channel_sync_state WHERE channel_id = :c", {"c": channel_id})
        return (int(r[0]), from_text(r[1]) if r[1] else None) if r else (0, None)

    def sync_status(self, channel_id: str) -> dict[str, Any]:
        counts = self.one(
            f"SELECT COUNT(*), SUM(CASE WHEN {_PENDING} THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN refused IS NOT NULL THEN 1 ELSE 0 END),"
            f" MIN(CASE WHEN {_PENDING} THEN changed_at END) FROM channel_stock WHERE channel_id = :c",
            {"c": channel_id},
        )
        state = self.one(
            "SELECT last_push_at, last_error, last_error_at, failures, paused_until, reconciled_at, reconciliation"
            " FROM channel_sync_state WHERE channel_id = :c",
            {"c": channel_id},
        )
        feeds = self.one("SELECT COUNT(*) FROM channel_feeds WHERE channel_id = :c", {"c": channel_id})
        return {
            "skus": int(counts[0]),
            "pending": int(counts[1] or 0),
            "refused": int(counts[2] or 0),
            "oldest_pending_at": from_text(counts[3]) if counts[3] else None,
            "last_push_at": from_text(state[0]) if state and state[0] else None,
            "last_error": state[1] if state else None,
            "last_error_at": from_text(state[2]) if state and state[2] else None,
            "failures": int(state[3]) if state else 0,
            "paused_until": from_text(state[4]) if state and state[4] else None,
            "reconciled_at": from_text(state[5]) if state and state[5] else None,
            "reconciliation": orjson.loads(state[6]) if state and state[6] else None,
            "pending_feeds": int(feeds[0]),
        }

    def stocked_skus(self, channel_id: str, skus: Sequence[str]) -> set[str]:
        """Which of these SKUs have a quantity to show on the channel already."""
        if not skus:
            return set()
        names, params = in_list("s", list(skus))
        rows = self.all(
            f"SELECT sku FROM channel_stock WHERE channel_id = :c AND sku IN {names}", {"c": channel_id, **params}
        )
        return {r[0] for r in rows}

    def sku_sequences(self, skus: Sequence[str]) -> dict[str, int]:
        if not skus:
            return {}
        names, params = in_list("s", list(skus))
        return {r[0]: int(r[1]) for r in self.all(f"SELECT sku, seq FROM skus WHERE sku IN {names}", params)}

    # -- feeds a channel applies later --------------------------------------------------------------
    def add_feeds(self, channel_id: str, feeds: Sequence[PendingFeed], first_check: datetime) -> None:
        self.many(
            "INSERT INTO channel_feeds (channel_id, feed_id, updates, submitted_at, next_check_at)"
            " VALUES (:c, :f, :u, :now, :at) ON CONFLICT (channel_id, feed_id) DO NOTHING",
            [
                {
                    "c": channel_id,
                    "f": f.feed_id,
                    "u": dumps([[u.sku, u.available, u.sequence] for u in f.updates]),
                    "now": self.now_text,
                    "at": to_text(first_check),
                }
                for f in feeds
            ],
        )

    def due_feeds(self, channel_id: str, limit: int) -> list[tuple[PendingFeed, int]]:
        """Feeds whose next check is due, each with how often it was found still pending."""
        rows = self.all(
            "SELECT feed_id, updates, checks FROM channel_feeds WHERE channel_id = :c AND next_check_at <= :now"
            " ORDER BY next_check_at LIMIT :n",
            {"c": channel_id, "now": self.now_text, "n": limit},
        )
        return [(_feed(r[0], r[1]), int(r[2])) for r in rows]

    def next_feed_check(self, channel_id: str) -> datetime | None:
        r = self.one("SELECT MIN(next_check_at) FROM channel_feeds WHERE channel_id = :c", {"c": channel_id})
        return from_text(r[0]) if r and r[0] else None

    def feed_still_pending(self, channel_id: str, feed_id: str, next_check: datetime) -> None:
        self.x(
            "UPDATE channel_feeds SET checks = checks + 1, next_check_at = :at WHERE channel_id = :c AND feed_id = :f",
            {"c": channel_id, "f": feed_id, "at": to_text(next_check)},
        )

    def feed_done(self, channel_id: str, feed: PendingFeed, rejected: Mapping[str, str]) -> None:
        """The feed was applied but for `rejected`: those SKUs are refused, unless a newer quantity
        is to be shown already (that one is pushed and judged on its own)."""
        sequences = {u.sku: u.sequence for u in feed.updates}
        self.many(
            "UPDATE channel_stock SET refused = :why WHERE channel_id = :c AND sku = :sku AND sequence <= :seq",
            [
                {"c": channel_id, "sku": sku, "why": why[:500], "seq": sequences[sku]}
                for sku, why in rejected.items()
                if sku in sequences
            ],
        )
        self._drop_feed(channel_id, feed.feed_id)

    def feed_failed(self, channel_id: str, feed: PendingFeed) -> None:
        """The channel gave up on the feed: its SKUs are to push again (their newest quantity),
        unless a newer one was pushed since."""
        self.many(
            "UPDATE channel_stock SET pushed_sequence = NULL WHERE channel_id = :c AND sku = :sku"
            " AND pushed_sequence <= :seq",
            [{"c": channel_id, "sku": u.sku, "seq": u.sequence} for u in feed.updates],
        )
        self._drop_feed(channel_id, feed.feed_id)

    def _drop_feed(self, channel_id: str, feed_id: str) -> None:
        self.x("DELETE FROM channel_feeds WHERE channel_id = :c AND feed_id = :f", {"c": channel_id, "f": feed_id})

    # -- fulfilment requests to nodes, and their cancellations -----------------------------------
    def add_fulfilment_requests(self, requests: Sequence[FulfilmentRequest]) -> None:
        """Once per request id: the same allocation read again adds nothing."""
        self.many(
            "INSERT INTO fulfilment_requests (request_id, order_id, node_id, lines, ship_to, created_at, updated_at)"
            " VALUES (:id, :order, :node, :lines, :ship_to, :now, :now) ON CONFLICT (request_id) DO NOTHING",
            [
                {
                    "id": r.request_id,
                    "order": r.order_id,
                    "node": r.node_id,
                    "lines": dumps([[ln.sku, ln.quantity] for ln in r.lines]),
                    "ship_to": dumps({"postal_code": r.ship_to.postal_code, "country": r.ship_to.country}),
                    "now": self.now_text,
                }
                for r in requests
            ],
        )

    def unsent_fulfilment_requests(self, limit: int) -> list[FulfilmentRequest]:
        rows = self.all(
            "SELECT request_id, order_id, node_id, lines, ship_to FROM fulfilment_requests"
            " WHERE status IN ('pending', 'failed') ORDER BY created_at LIMIT :n",
            {"n": limit},
        )
        return [
            FulfilmentRequest(
                r[0],
                r[1],
                r[2],
                tuple(Line(sku, int(q)) for sku, q in orjson.loads(r[3])),
                ShipTo(**orjson.loads(r[4])),
            )
            for r in rows
        ]

    def fulfilment_sent(self, request_id: str, reference: str) -> None:
        # A cancellation that came while the request was on its way: the node has it now, so it is
        # asked to cancel it.
        self.x(
            "UPDATE fulfilment_requests SET sent_at = :now, updated_at = :now, reference = :ref,"
            " attempts = attempts + 1, last_error = NULL,"
            " status = CASE WHEN status IN ('pending', 'failed') THEN 'sent' ELSE 'cancel_pending' END"
            " WHERE request_id = :id",
            {"now": self.now_text, "ref": reference, "id": request_id},
        )

    def fulfilment_failed(self, request_id: str, error: str) -> None:
        self.x(
            "UPDATE fulfilment_requests SET attempts = attempts + 1, last_error = :error, updated_at = :now,"
            " status = CASE WHEN status = 'pending' THEN 'failed' ELSE status END WHERE request_id = :id",
            {"error": error[:500], "id": request_id, "now": self.now_text},
        )

    def cancel_fulfilment(self, order_id: str, reason: str) -> int:
        """The order was cancelled: requests not sent yet are dropped, those sent wait to be
        cancelled at their node. Returns how many the node has to be told about."""
        params = {"order": order_id, "reason": reason, "now": self.now_text}
        self.x(
            "UPDATE fulfilment_requests SET status = 'cancelled', cancel_reason = :reason, updated_at = :now"
            " WHERE order_id = :order AND status IN ('pending', 'failed')",
            params,
        )
        cur = self.x(
            "UPDATE fulfilment_requests SET status = 'cancel_pending', cancel_reason = :reason, updated_at = :now,"
            " last_error = NULL WHERE order_id = :order AND status = 'sent'",
            params,
        )
        return int(cur.rowcount)

    def pending_fulfilment_cancels(self, limit: int) -> list[FulfilmentCancel]:
        rows = self.all(
            "SELECT request_id, reference, order_id, node_id, cancel_reason FROM fulfilment_requests"
            " WHERE status = 'cancel_pending' ORDER BY created_at LIMIT :n",
            {"n": limit},
        )
        return [FulfilmentCancel(f"{r[0]}:cancel", r[0], r[1] or "", r[2], r[3], r[4] or "") for r in rows]

    def fulfilment_cancel_done(self, request_id: str, *, refused: str | None = None) -> None:
        """The node cancelled the request, or (`refused`: why) said it no longer can."""
        self.x(
            "UPDATE fulfilment_requests SET status = :status, attempts = attempts + 1, last_error = :error,"
            " updated_at = :now WHERE request_id = :id AND status = 'cancel_pending'",
            {
                "status": "cancel_refused" if refused is not None else "cancelled",
                "error": refused[:500] if refused is not None else None,
                "now": self.now_text,
                "id": request_id,
            },
        )

    def fulfilment_of(self, order_id: str) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT node_id, request_id, status, reference, attempts, last_error, updated_at, created_at"
            " FROM fulfilment_requests WHERE order_id = :order ORDER BY created_at, request_id",
            {"order": order_id},
        )
        return [
            {
                "node_id": r[0],
                "request_id": r[1],
                "status": r[2],
                "reference": r[3],
                "attempts": int(r[4]),
                "last_error": r[5],
                "updated_at": from_text(r[6] or r[7]),
            }
            for r in rows
        ]

    # -- shipments and their tracking -------------------------------------------------------------
    def add_shipment(
        self, order_id: str, node_id: str, carrier: str, tracking_number: str, lines: Sequence[tuple[str, int]]
    ) -> str:
        shipment_id = new_id("shp")
        self.x(
            "INSERT INTO shipments (shipment_id, order_id, node_id, carrier, tracking_number, lines, shipped_at)"
            " VALUES (:id, :order, :node, :carrier, :tracking, :lines, :now)",
            {
                "id": shipment_id,
                "order": order_id,
                "node": node_id,
                "carrier": carrier,
                "tracking": tracking_number,
                "lines": dumps([{"sku": sku, "quantity": q} for sku, q in lines]),
                "now": self.now_text,
            },
        )
        return shipment_id

    def shipments_of(self, order_id: str) -> list[dict[str, Any]]:
        rows = self.all(
            "SELECT node_id, carrier, tracking_number, lines, shipped_at, tracking_status, tracking_occurred_at,"
            " estimated_delivery FROM shipments WHERE order_id = :order ORDER BY shipped_at, shipment_id",
            {"order": order_id},
        )
        return [
            {
                "node_id": r[0],
                "carrier": r[1],
                "tracking_number": r[2],
                "lines": orjson.loads(r[3]),
                "shipped_at": from_text(r[4]),
                "tracking_status": r[5],
                "tracking_updated_at": from_text(r[6]) if r[6] else None,
                "estimated_delivery": from_text(r[7]) if r[7] else None,
            }
            for r in rows
        ]

    def record_tracking(
        self, carriers: Sequence[str], update: TrackingUpdate, occurred_at: datetime
    ) -> list[dict[str, Any]]:
        """Applies a carrier's news to the shipments with its tracking number whose carrier is one of
        `carriers` (lower case). News older than what a shipment shows is not applied. Returns each
        matching shipment with whether the news was applied."""
        names, params = in_list("c", [c.lower() for c in carriers])
        rows = self.all(
            "SELECT shipment_id, order_id, tracking_occurred_at FROM shipments"
            f" WHERE tracking_number = :t AND LOWER(carrier) IN {names} ORDER BY shipment_id",
            {"t": update.tracking_number, **params},
        )
        when = to_text(occurred_at)
        matched = []
        for shipment_id, order_id, newest in rows:
            fresh = newest is None or newest <= when
            if fresh:
                self.x(
                    "UPDATE shipments SET tracking_status = :s, tracking_occurred_at = :at, estimated_delivery = :eta"
                    " WHERE shipment_id = :id",
                    {
                        "s": update.status,
                        "at": when,
                        "eta": to_text(update.estimated_delivery) if update.estimated_delivery else None,
                        "id": shipment_id,
                    },
                )
            matched.append({"order_id": order_id, "shipment_id": shipment_id, "applied": fresh})
        return matched

    # -- carrier accounts -------------------------------------------------------------------------
    def put_carrier(self, account: CarrierAccount) -> bool:
        """Creates or replaces a carrier account; True when it is new."""
        exists = self.one("SELECT 1 FROM carriers WHERE carrier_id = :id", {"id": account.carrier_id}) is not None
        params = {
            "id": account.carrier_id,
            "type": account.type,
            "name": account.name,
            "config": dumps(dict(account.config)),
            "now": self.now_text,
        }
        if exists:
            self.x(
                "UPDATE carriers SET type = :type, name = :name, config = :config, updated_at = :now"
                " WHERE carrier_id = :id",
                params,
            )
        else:
            self.x(
                "INSERT INTO carriers (carrier_id, type, name, config, created_at, updated_at)"
                " VALUES (:id, :type, :name, :config, :now, :now)",
                params,
            )
        return not exists

    def get_carrier(self, carrier_id: str) -> CarrierAccount | None:
        r = self.one("SELECT carrier_id, type, name, config FROM carriers WHERE carrier_id = :id", {"id": carrier_id})
        return CarrierAccount(r[0], r[1], r[2], orjson.loads(r[3])) if r else None

    def carrier_accounts(self) -> list[CarrierAccount]:
        rows = self.all("SELECT carrier_id, type, name, config FROM carriers ORDER BY carrier_id")
        return [CarrierAccount(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]


_PENDING = "refused IS NULL AND (pushed_sequence IS NULL OR pushed_sequence < sequence)"


def _feed(feed_id: str, updates: str) -> PendingFeed:
    return PendingFeed(feed_id, tuple(QuantityUpdate(sku, int(q), int(seq)) for sku, q, seq in orjson.loads(updates)))


def _desired(r: DesiredStock) -> dict[str, Any]:
    return {"c": r.channel_id, "sku": r.sku, "q": r.available, "seq": r.sequence, "at": to_text(r.changed_at)}
