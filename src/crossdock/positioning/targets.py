"""Target stock per node: the newsvendor level at the critical ratio p / (p + h).

Over the horizon a unit short costs `shortage` (the margin of a sale lost, or what serving it from
afar would cost) and a unit left over costs `holding`. The k-th unit held at a node is sold with
probability P(D >= k); its expected value is then

    value(k) = shortage * P(D >= k) - holding * P(D < k) = (shortage + holding) * P(D >= k) - holding,

which falls as k grows. The best level holds every unit worth more than nothing: the smallest s with
P(D <= s) >= shortage / (shortage + holding), the critical ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossdock.positioning.demand import Distribution


@dataclass(frozen=True, slots=True)
class Costs:
    shortage: float = 10.0  # per unit of demand not met over the horizon
    holding: float = 0.5  # per unit left over at the end of it

    @property
    def critical_ratio(self) -> float:
        return self.shortage / (self.shortage + self.holding)


def target(demand: Distribution, costs: Costs) -> int:
    return demand.quantile(costs.critical_ratio)


def unit_value(demand: Distribution, costs: Costs, k: int) -> float:
    """The expected value of the k-th unit held (k >= 1)."""
    return (costs.shortage + costs.holding) * demand.survival(k) - costs.holding


def stock_value(demand: Distribution, costs: Costs, level: int) -> float:
    """The expected value of holding `level` units: sum of `unit_value` of each."""
    return sum(unit_value(demand, costs, k) for k in range(1, level + 1))
