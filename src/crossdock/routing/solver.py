"""HiGHS, quiet (a solver instance with logging off and one thread), and a mixed-integer program
built up in Python and passed to it at once.

HiGHS prints its banner to the process's standard output when the first instance is made, whatever
the options; on a command's `--json` output or in JSON logs that line would corrupt the stream, so
the first instance is made with file descriptor 1 pointed at /dev/null."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

_first = threading.Lock()
_made = False


def new_solver() -> highspy.Highs:
    global _made
    if not _made:
        with _first:
            if not _made:
                sys.stdout.flush()
                saved = os.dup(1)
                sink = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(sink, 1)
                    highspy.Highs()  # type: ignore[no-untyped-call]
                finally:
                    os.dup2(saved, 1)
                    os.close(saved)
                    os.close(sink)
                _made = True
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


@dataclass(frozen=True, slots=True)
class Solution:
    values: list[float]
    objective: float
    bound: float  # HiGHS's dual bound: no plan can cost less
    optimal: bool


@dataclass
class Program:
    """A mixed-integer program built up column by column and row by row, passed to HiGHS at once."""

    cost: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    rows: list[tuple[float, float, dict[int, float]]] = field(default_factory=list)

    def column(self, cost: float, upper: float, integer: bool = True) -> int:
        """A column from 0 to `upper` (binary when integer with `upper` 1); its index."""
        self.cost.append(cost)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, lower: float, upper: float, terms: Mapping[int, float]) -> None:
        self.rows.append((lower, upper, dict(terms)))

    def solve(
        self,
        *,
        abs_gap: float,
        rel_gap: float = 0.0,
        time_limit: float | None = None,
        start: Sequence[float] | None = None,
        relax: bool = False,
    ) -> Solution | None:
        """The best plan found (None: none feasible in time). The gaps are absolute and relative
        tolerances on the objective; `start` is a known feasible plan to begin the search from;
        `relax`: solve the linear relaxation (every column continuous) instead."""
        h = new_solver()
        h.setOptionValue("mip_rel_gap", rel_gap)
        h.setOptionValue("mip_abs_gap", abs_gap)
        # Feasibility jump costs ~3 ms per solve; routing's programs are mostly solved at the root.
        h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
        if time_limit is not None:
            h.setOptionValue("time_limit", float(time_limit))
        h.passModel(self._model(relax))
        if start is not None:
            known = highspy.HighsSolution()
            known.col_value = list(start)
            known.value_valid = True
            h.setSolution(known)
        h.run()
        info = h.getInfo()
        if info.primal_solution_status != 2:  # no feasible plan found
            return None
        objective = float(info.objective_function_value)
        bound = float(info.mip_dual_bound)
        optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return Solution(list(h.getSolution().col_value), objective, bound if bound == bound else objective, optimal)

    def branch(self, *, abs_gap: float, most_nodes: int = 100) -> Solution | None:
        """The optimum by a depth-first branch and bound over the linear relaxation, re-solved warm
        in one HiGHS instance. For small programs whose relaxation is nearly integral (a choice among
        whole parcels) this takes a fraction of HiGHS's own MIP set-up. None when the relaxation is
        infeasible or the search needs more than `most_nodes` nodes (then ask `solve`)."""
        h = new_solver()
        h.passModel(self._model(relax=True))
        n = len(self.cost)
        columns = np.arange(n, dtype=np.int32)
        integer = [i for i, flag in enumerate(self.integer) if flag]
        best: Solution | None = None
        stack: list[dict[int, tuple[float, float]]] = [{}]
        for _ in range(most_nodes):
            if not stack:
                return best
            fixed = stack.pop()
            lower, upper = np.zeros(n), np.array(self.upper)
            for col, (lo, hi) in fixed.items():
                lower[col], upper[col] = lo, hi
            h.changeColsBounds(n, columns, lower, upper)
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                continue
            objective = float(h.getInfo().objective_function_value)
            if best is not None and objective >= best.objective - abs_gap:
                continue
            values = list(h.getSolution().col_value)
            col = max(integer, key=lambda i: abs(values[i] - round(values[i])), default=-1)
            if col < 0 or abs(values[col] - round(values[col])) <= 1e-6:
                best = Solution(values, objective, objective, True)
                continue
            down, up = float(np.floor(values[col])), float(np.ceil(values[col]))
            lo, hi = fixed.get(col, (0.0, self.upper[col]))
            branches = [fixed | {col: (lo, down)}, fixed | {col: (up, hi)}]
            if values[col] - down > 0.5:  # the side nearer the relaxation's value is explored first
                branches.reverse()
            stack.extend(reversed(branches))
        return best if not stack else None

    def _model(self, relax: bool) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(self.cost), len(self.rows)
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_ = np.zeros(len(self.cost))
        lp.col_upper_ = np.array(self.upper)
        lp.row_lower_ = np.array([r[0] for r in self.rows])
        lp.row_upper_ = np.array([r[1] for r in self.rows])
        starts, index, value = [0], list[int](), list[float]()
        for _, _, terms in self.rows:
            index.extend(terms)
            value.extend(terms.values())
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=np.float64)
        kinds = highspy.HighsVarType
        lp.integrality_ = [kinds.kInteger if i and not relax else kinds.kContinuous for i in self.integer]
        return lp
