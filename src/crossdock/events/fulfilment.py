"""Fulfilment requests out to the warehouse systems behind nodes.

Each `order.allocated` event names the units it newly held, per node (its picks). For every node
with a connector, those picks become one fulfilment request, identified by the event and the node:
reading the same event again adds nothing, and the node gets the same request id on every retry
(its Idempotency-Key), so it can drop repeats. Requests wait in the database until their node takes
them; a node that fails is tried again after a back-off, without holding up the other nodes.

An `order.cancelled` event takes the order's requests back: one not sent yet is never sent, one the
node took is cancelled there (`CancellableNode.cancel`), waiting and retried like a request, with
the same cancel id every time. A node that answers it can no longer cancel (shipped already) has
the last word: the request is marked `cancel_refused` and not tried again.

Transfers go the same way: a `transfer.approved` event at a source with a connector becomes a
transfer order, a fulfilment request whose `order_id` is the transfer id and whose `ship_to` is the
destination node; `transfer.cancelled` takes it back. The node's `shipment.created` for that id ships
the transfer (services.channel_inbox).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import httpx
import structlog

from crossdock.connectors.registry import node_connectors
from crossdock.connectors.sdk import (
    CancellableNode,
    CancelRefused,
    ChannelError,
    ConfigError,
    FulfilmentCancel,
    FulfilmentRequest,
    Line,
    NodeConnector,
)
from crossdock.domain import events as ev
from crossdock.domain.catalog import Catalog
from crossdock.domain.order import ShipTo
from crossdock.events.outbox import StoredEvent
from crossdock.events.relay import LEASE, Backoff, Relay
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport

log = structlog.get_logger()

BATCH = 500
SEND_AT_ONCE = 50
RETRY_NODE_AFTER = (1.0, 60.0)  # first and longest wait before a failing node is tried again


class FulfilmentDispatcher:
    name = "fulfilment"

    def __init__(self, policy: AddressPolicy | None = None, timeout: float = 15.0) -> None:
        self.policy = policy or AddressPolicy()
        self.timeout = timeout
        self._kick = asyncio.Event()
        self._resting: dict[str, tuple[float, Backoff]] = {}  # node -> (monotonic time to try again, its back-off)

    async def run(self, relay: Relay) -> None:
        transport = CheckedTransport(self.policy)
        async with httpx.AsyncClient(timeout=self.timeout, transport=transport) as http:
            await asyncio.gather(self._feed(relay), self._send(relay, http))

    async def _feed(self, relay: Relay) -> None:
        async def record(events: Sequence[StoredEvent]) -> None:
            catalog: Catalog = await relay.reading(lambda uow: uow.catalog())
            steps = changes_for(events, {n for n, node in catalog.nodes.items() if node.connector})
            if steps:
                await relay.write(partial(_apply, steps=steps))
                self._kick.set()

        # Allocations and cancellations from when the dispatcher was installed (migration 0012) on
        cursor = relay.cursor(self.name, start_at_end=True)
        types = {ev.ORDER_ALLOCATED, ev.ORDER_CANCELLED, ev.TRANSFER_APPROVED, ev.TRANSFER_CANCELLED}
        await relay.follow(cursor, record, batch=BATCH, types=types)

    async def _send(self, relay: Relay, http: httpx.AsyncClient) -> None:
        lease = relay.cursor(f"{self.name}:send")
        while True:
            if not await lease.acquire():
                await asyncio.sleep(LEASE.total_seconds() / 3)
                continue
            self._kick.clear()
            waiting: list[FulfilmentRequest] = await relay.reading(partial(_unsent, limit=SEND_AT_ONCE))
            cancels: list[FulfilmentCancel] = await relay.reading(partial(_cancels, limit=SEND_AT_ONCE))
            now = time.monotonic()
            ready = [r for r in waiting if self._resting.get(r.node_id, (0.0, None))[0] <= now]
            ready_cancels = [c for c in cancels if self._resting.get(c.node_id, (0.0, None))[0] <= now]
            if ready or ready_cancels:
                catalog: Catalog = await relay.reading(lambda uow: uow.catalog())
                await asyncio.gather(
                    *(self._send_one(relay, http, catalog, r) for r in ready),
                    *(self._cancel_one(relay, http, catalog, c) for c in ready_cancels),
                )
            else:
                waiter = asyncio.ensure_future(self._kick.wait())
                try:
                    await asyncio.wait([waiter], timeout=1.0)
                finally:
                    waiter.cancel()

    def _connector(self, catalog: Catalog, node_id: str, http: httpx.AsyncClient) -> NodeConnector:
        node = catalog.nodes.get(node_id)
        kind = node_connectors().get(node.connector or "") if node is not None else None
        if node is None or kind is None:
            raise ConfigError(f"node {node_id} has no installed connector")
        return kind(node_id, node.config, http)

    def _rest(self, node_id: str, exc: ChannelError | ConfigError) -> None:
        """The node failed: it is left alone for a while (as long as it asked, or its back-off)."""
        _, backoff = self._resting.get(node_id, (0.0, Backoff(*RETRY_NODE_AFTER)))
        wait = getattr(exc, "retry_after", None) or backoff.next()
        self._resting[node_id] = (time.monotonic() + wait, backoff)

    async def _send_one(self, relay: Relay, http: httpx.AsyncClient, catalog: Catalog, r: FulfilmentRequest) -> None:
        try:
            reference = await self._connector(catalog, r.node_id, http).send(r)
        except (ChannelError, ConfigError) as exc:
            await relay.write(partial(_failed, request_id=r.request_id, error=str(exc)))
            self._rest(r.node_id, exc)
            log.warning("fulfilment request failed", node_id=r.node_id, order_id=r.order_id, error=str(exc))
            return
        self._resting.pop(r.node_id, None)
        await relay.write(partial(_sent, request_id=r.request_id, reference=reference))

    async def _cancel_one(self, relay: Relay, http: httpx.AsyncClient, catalog: Catalog, c: FulfilmentCancel) -> None:
        try:
            connector = self._connector(catalog, c.node_id, http)
            if not isinstance(connector, CancellableNode):
                refused = f"node connector {connector.kind!r} cannot cancel requests"
                await relay.write(partial(_cancel_done, request_id=c.request_id, refused=refused))
                return
            await connector.cancel(c)
        except CancelRefused as exc:
            self._resting.pop(c.node_id, None)  # the node answered: it is up
            await relay.write(partial(_cancel_done, request_id=c.request_id, refused=str(exc)))
            log.info("fulfilment cancellation refused", node_id=c.node_id, order_id=c.order_id, error=str(exc))
            return
        except (ChannelError, ConfigError) as exc:
            await relay.write(partial(_failed, request_id=c.request_id, error=str(exc)))
            self._rest(c.node_id, exc)
            log.warning("fulfilment cancellation failed", node_id=c.node_id, order_id=c.order_id, error=str(exc))
            return
        self._resting.pop(c.node_id, None)
        await relay.write(partial(_cancel_done, request_id=c.request_id, refused=None))


Step = tuple[str, Any]  # ("add", [FulfilmentRequest, ...]) or ("cancel", (order_id, reason))


def changes_for(events: Sequence[StoredEvent], served: set[str]) -> list[Step]:
    """What the events ask of the nodes, in event order: requests to add, orders to take back."""
    steps: list[Step] = []
    for event in events:
        if event.type == ev.ORDER_CANCELLED:
            data: dict[str, Any] = event.cloudevent()["data"]
            steps.append(("cancel", (data["order_id"], str(data.get("reason") or ""))))
        elif event.type == ev.TRANSFER_CANCELLED:
            data = event.cloudevent()["data"]
            if data["from_node_id"] in served:
                steps.append(("cancel", (data["transfer_id"], str(data.get("note") or ""))))
        elif event.type == ev.TRANSFER_APPROVED:
            data = event.cloudevent()["data"]
            if data["from_node_id"] in served:
                steps.append(("add", [transfer_order(event.id, data)]))
        elif found := requests_for([event], served):
            steps.append(("add", found))
    return steps


def transfer_order(event_id: str, data: dict[str, Any]) -> FulfilmentRequest:
    """An approved transfer as a request to its source's warehouse system: ship it to the destination."""
    node_id = data["from_node_id"]
    st = data["ship_to"]
    lines = (Line(data["sku"], int(data["quantity"])),)
    return FulfilmentRequest(
        f"{event_id}:{node_id}", data["transfer_id"], node_id, lines, ShipTo(st["postal_code"], st["country"])
    )


def requests_for(events: Sequence[StoredEvent], served: set[str]) -> list[FulfilmentRequest]:
    """One request per allocation event and node with a connector, for the units it newly held."""
    found: list[FulfilmentRequest] = []
    for event in events:
        data: dict[str, Any] = event.cloudevent()["data"]
        by_node: dict[str, list[Line]] = {}
        for pick in data.get("picks", []):
            if pick["node_id"] in served:
                by_node.setdefault(pick["node_id"], []).append(Line(pick["sku"], int(pick["quantity"])))
        st = data["ship_to"]
        for node_id, lines in sorted(by_node.items()):
            found.append(
                FulfilmentRequest(
                    f"{event.id}:{node_id}",
                    data["order_id"],
                    node_id,
                    tuple(lines),
                    ShipTo(st["postal_code"], st["country"]),
                )
            )
    return found


# Jobs on the database (module-level, so that they can be pickled to a writer process).


def _apply(uow: Any, *, steps: list[Step]) -> None:
    for kind, what in steps:
        if kind == "add":
            uow.add_fulfilment_requests(what)
        else:
            uow.cancel_fulfilment(*what)


def _cancels(uow: Any, *, limit: int) -> list[FulfilmentCancel]:
    found: list[FulfilmentCancel] = uow.pending_fulfilment_cancels(limit)
    return found


def _cancel_done(uow: Any, *, request_id: str, refused: str | None) -> None:
    uow.fulfilment_cancel_done(request_id, refused=refused)


def _unsent(uow: Any, *, limit: int) -> list[FulfilmentRequest]:
    found: list[FulfilmentRequest] = uow.unsent_fulfilment_requests(limit)
    return found


def _sent(uow: Any, *, request_id: str, reference: str) -> None:
    uow.fulfilment_sent(request_id, reference)


def _failed(uow: Any, *, request_id: str, error: str) -> None:
    uow.fulfilment_failed(request_id, error)
