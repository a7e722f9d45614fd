"""Demand forecasts (domain/forecast.py): the newest per SKU, node and day, and the runs behind them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson

from crossdock.domain.forecast import DailyForecast, ForecastRun
from crossdock.store.clock import from_text, to_text
from crossdock.store.sql import Sql, dumps, in_list


class ForecastTables(Sql):
    def save_forecast_run(self, run: ForecastRun) -> None:
        """Stores a run and puts its forecasts in place of the older ones of the same series."""
        self.x(
            "INSERT INTO forecast_runs (run_id, created_at, history_from, history_to, horizon_days, series,"
            " seconds, summary) VALUES (:id, :at, :start, :end, :horizon, :series, :seconds, :summary)",
            {
                "id": run.run_id,
                "at": to_text(run.created_at),
                "start": run.history_from.isoformat(),
                "end": run.history_to.isoformat(),
                "horizon": run.horizon_days,
                "series": run.series,
                "seconds": run.seconds,
                "summary": dumps(run.summary),
            },
        )
        keys = sorted({(f.sku, f.node_id) for f in run.days})
        self.many(
            "DELETE FROM forecasts WHERE sku = :sku AND node_id = :node", [{"sku": s, "node": n} for s, n in keys]
        )
        self.many(
            "INSERT INTO forecasts (sku, node_id, day, run_id, model, mean, quantiles)"
            " VALUES (:sku, :node, :day, :run, :model, :mean, :q)",
            [
                {
                    "sku": f.sku,
                    "node": f.node_id,
                    "day": f.day.isoformat(),
                    "run": run.run_id,
                    "model": f.model,
                    "mean": f.mean,
                    "q": dumps(f.quantiles),
                }
                for f in run.days
            ],
        )

    def forecast_runs(self, limit: int) -> list[ForecastRun]:
        """The newest runs first, as summaries (no forecasts)."""
        rows = self.all(
            "SELECT run_id, created_at, history_from, history_to, horizon_days, series, seconds, summary"
            " FROM forecast_runs ORDER BY created_at DESC, run_id DESC LIMIT :n",
            {"n": limit},
        )
        return [
            ForecastRun(
                r[0],
                from_text(r[1]),
                date.fromisoformat(r[2]),
                date.fromisoformat(r[3]),
                int(r[4]),
                int(r[5]),
                float(r[6]),
                orjson.loads(r[7]),
            )
            for r in rows
        ]

    def forecasts_of(
        self, skus: Sequence[str] | None, since: date | None = None, until: date | None = None
    ) -> list[DailyForecast]:
        """The stored forecasts of these SKUs (None: all) for the days from `since` and before
        `until`, by SKU, node and day."""
        if skus is not None and not skus:
            return []
        where: list[str] = ["1 = 1"]
        params: dict[str, str] = {}
        if skus is not None:
            names, params = in_list("s", sorted(set(skus)))
            where.append(f"sku IN {names}")
        if since is not None:
            where.append("day >= :since")
            params["since"] = since.isoformat()
        if until is not None:
            where.append("day < :until")
            params["until"] = until.isoformat()
        sql = f"SELECT sku, node_id, day, model, mean, quantiles FROM forecasts WHERE {' AND '.join(where)}"
        return [_daily(r) for r in self.all(sql + " ORDER BY sku, node_id, day", params)]


def _daily(r: Any) -> DailyForecast:
    return DailyForecast(r[0], r[1], date.fromisoformat(r[2]), r[3], float(r[4]), orjson.loads(r[5]))
