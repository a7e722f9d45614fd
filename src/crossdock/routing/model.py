"""What routing decides over, and what it answers.

A routing request is one order seen from the network: the lines still to place (SKU, units, unit
weight, keep-together group), the candidate sites (nodes as routing sees them: stock, handling cost,
capacity left today, disruption effects), a lane from each site to the destination (carrier services
priced by weight bracket, with transit days), the delivery promise and the channel's rules. The
decision is a set of parcels, one per node used, each with its carrier service and landed cost, and
every candidate looked at with its cost and why it won or lost.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

Key = tuple[str, str]  # (sku, node_id)


@dataclass(frozen=True, slots=True)
class Service:
    """A carrier service on one lane: price per weight bracket (inclusive upper bounds in grams,
    ascending) and transit days from today (pickup wait included)."""

    carrier: str
    service: str
    transit_days: int
    brackets: tuple[int, ...]
    prices: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.brackets) != len(self.prices) or not self.brackets:
            raise ValueError(f"{self.carrier} {self.service}: one price per weight bracket")

    def price(self, grams: int) -> float | None:
        """The price of a parcel of this weight; None above the heaviest bracket."""
        b = bisect_left(self.brackets, grams)
        return self.prices[b] if b < len(self.prices) else None


@dataclass(frozen=True)
class Lane:
    """Every way to ship from one site to the order's destination."""

    services: tuple[Service, ...]
    distance_km: float | None = None
    extra_days: int = 0  # a disruption on the way adds this to every service's transit

    @cached_property
    def breakpoints(self) -> tuple[int, ...]:
        """The union of the services' brackets: within two neighbours, every service's price is flat."""
        return tuple(sorted({b for s in self.services for b in s.brackets}))


@dataclass(frozen=True, slots=True)
class Site:
    """A node as routing sees it for one order."""

    node_id: str
    kind: str  # warehouse, store, 3pl
    country: str
    handling_per_order: float = 0.0
    handling_per_unit: float = 0.0
    capacity_left: int | None = None  # orders it can still take today; None: no limit
    penalty: float = 0.0  # added per parcel (a disruption the merchant chose to penalise, not avoid)
    blocked: str | None = None  # why it may not ship now (a disruption), if so


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int
    unit_grams: int = 0
    group: str | None = None  # lines of one group ship together, from one node


@dataclass(frozen=True, slots=True)
class Rules:
    """A channel's routing rules, applied before the optimisation (as merchants set them in HotWax
    or Shopify). `priority` is the channel's node order, used only to break ties."""

    exclude_nodes: frozenset[str] = frozenset()
    ship_from_store: bool = True
    max_parcels: int = 3
    same_market: bool = False  # only nodes in the destination's country
    split_penalty: float = 5.0  # per parcel beyond the first: packaging, a second delivery, customer annoyance
    promise_days: int | None = None  # the channel's service level when an order has no deliver-by date


@dataclass(frozen=True, slots=True)
class Request:
    lines: Sequence[Line]
    sites: Sequence[Site]  # in the channel's priority order
    lanes: Mapping[str, Lane]  # node_id -> lane to the destination (none: the node cannot reach it)
    free: Mapping[Key, int]  # units each (sku, node) can still give
    country: str = ""
    days_allowed: int | None = None  # the delivery promise in days from today; None: any speed
    rules: Rules = field(default_factory=Rules)
    opportunity: Mapping[Key, float] = field(default_factory=dict)  # look-ahead value of a unit left in place


@dataclass(frozen=True, slots=True)
class Parcel:
    node_id: str
    lines: tuple[tuple[str, int], ...]
    grams: int
    carrier: str
    service: str
    transit_days: int
    shipping: float
    handling: float
    penalty: float = 0.0
    opportunity: float = 0.0

    @property
    def cost(self) -> float:
        return self.shipping + self.handling + self.penalty + self.opportunity


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to ship (part of) the order. `rejected`: why it could not be chosen, if so."""

    parcels: tuple[Parcel, ...]
    cost: float
    split_penalty: float = 0.0
    meets_promise: bool = True
    rejected: str | None = None
    units_unplaced: int = 0

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(p.node_id for p in self.parcels)

    @property
    def arrives_in_days(self) -> int | None:
        return max((p.transit_days for p in self.parcels), default=None)


@dataclass(frozen=True, slots=True)
class Decision:
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    excluded: Mapping[str, str]  # node_id -> why the rules or the day left it out
    why: str
    days_allowed: int | None = None
    searched_split: bool = False  # whether the split program was solved for it
