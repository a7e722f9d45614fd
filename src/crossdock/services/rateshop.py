"""Rate shopping: live prices from the carrier accounts that have an API (EasyPost, Shippo, ...), for
routing to weigh beside the rate cards.

Every account is asked for every origin node at once, under one deadline: what has not answered by
then is left out of this decision (the rate cards still price the lane) and counts as a failure. An
account that fails `trip_after` times in a row is not asked again for `open_for` seconds (its
circuit is open), so a carrier that is down costs nothing but its absence. Answers are kept for
`ttl` seconds per (account, origin, destination, weight step): a flash sale to one city asks once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
import structlog

from crossdock.connectors.sdk import ChannelError, ConfigError, Parcel, Rate
from crossdock.domain.carrier import CarrierAccount
from crossdock.domain.catalog import Node
from crossdock.domain.order import ShipTo
from crossdock.events.webhooks.addresses import AddressPolicy, CheckedTransport
from crossdock.routing.model import Service
from crossdock.services.carriers import connector_for

log = structlog.get_logger()

WEIGHT_STEP = 250  # grams: parcels are rated (and their rates kept) by the step they fall in
UNKNOWN_TRANSIT_DAYS = 7  # a rate without transit days is taken as slow, never as fast


def live(account: CarrierAccount) -> bool:
    """Accounts with an API to ask; a rate card is priced offline by the lanes themselves."""
    return account.type != "ratecard"


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


class RateShop:
    def __init__(
        self,
        policy: AddressPolicy | None = None,
        *,
        deadline: float = 0.5,
        ttl: float = 300.0,
        trip_after: int = 3,
        open_for: float = 60.0,
        accounts_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or AddressPolicy()
        self.deadline = deadline
        self.ttl = ttl
        self.trip_after = trip_after
        self.open_for = open_for
        self.accounts_every = accounts_every
        self.clock = clock
        self._http: httpx.AsyncClient | None = None
        self._cache: dict[tuple[str, str, str, str, int], tuple[float, tuple[Rate, ...]]] = {}
        self._circuits: dict[str, _Circuit] = {}
        self._accounts: tuple[float, list[CarrierAccount]] | None = None

    async def accounts(self, load: Callable[[], Awaitable[list[CarrierAccount]]]) -> list[CarrierAccount]:
        """The live accounts, read again at most every `accounts_every` seconds (an order must not
        pay a database read for them)."""
        now = self.clock()
        if self._accounts is None or now - self._accounts[0] >= self.accounts_every:
            self._accounts = (now, [a for a in await load() if live(a)])
        return self._accounts[1]

    def is_open(self, carrier_id: str) -> bool:
        return self._circuits.get(carrier_id, _Circuit()).open_until > self.clock()

    async def services(
        self, accounts: Sequence[CarrierAccount], origins: Sequence[Node], to: ShipTo, grams: int
    ) -> dict[str, tuple[Service, ...]]:
        """Per origin node, the live services that answered in time for a parcel of `grams`."""
        step = max(WEIGHT_STEP, math.ceil(grams / WEIGHT_STEP) * WEIGHT_STEP)
        now = self.clock()
        found: dict[tuple[str, str], tuple[Rate, ...]] = {}
        asks: dict[asyncio.Task[list[Rate]], tuple[CarrierAccount, Node]] = {}
        for account in accounts:
            if self.is_open(account.carrier_id):
                continue
            for node in origins:
                key = (account.carrier_id, node.postal_code, to.postal_code.strip()[:5], to.country.upper(), step)
                kept = self._cache.get(key)
                if kept is not None and kept[0] > now:
                    found[account.carrier_id, node.node_id] = kept[1]
                    continue
                parcel = Parcel(node.postal_code, node.country, to.postal_code, to.country, step)
                asks[asyncio.ensure_future(self._ask(account, parcel))] = (account, node)
        if asks:
            done, late = await asyncio.wait(asks, timeout=self.deadline)
            for task in late:
                task.cancel()
            for task, (account, node) in asks.items():
                rates = task.result() if task in done and task.exception() is None else None
                if rates is None:
                    self._failed(account, "no answer in time" if task in late else str(task.exception()))
                    continue
                self._circuits.pop(account.carrier_id, None)
                key = (account.carrier_id, node.postal_code, to.postal_code.strip()[:5], to.country.upper(), step)
                self._cache[key] = (now + self.ttl, tuple(rates))
                found[account.carrier_id, node.node_id] = tuple(rates)
        out: dict[str, list[Service]] = {}
        for (_, node_id), answered in found.items():
            for r in answered:
                days = r.transit_days if r.transit_days is not None else UNKNOWN_TRANSIT_DAYS
                out.setdefault(node_id, []).append(Service(r.carrier, r.service, days, (step,), (r.price,)))
        return {node_id: tuple(services) for node_id, services in out.items()}

    async def _ask(self, account: CarrierAccount, parcel: Parcel) -> list[Rate]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.deadline * 4, transport=CheckedTransport(self.policy))
        try:
            return await connector_for(account, self._http).rates(parcel)
        except (ChannelError, ConfigError) as exc:
            raise RuntimeError(str(exc)) from exc

    def _failed(self, account: CarrierAccount, why: str) -> None:
        circuit = self._circuits.setdefault(account.carrier_id, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self.trip_after:
            circuit.open_until = self.clock() + self.open_for
            circuit.failures = 0
            log.warning("carrier rates paused", carrier_id=account.carrier_id, seconds=self.open_for, error=why)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
