"""Demand forecasts per SKU and node (made by `crossdock forecast run` or the server's periodic run)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded
from crossdock.api.forecast_schemas import ForecastOut, ForecastRunsOut
from crossdock.api.problems import responses
from crossdock.api.writes import json_response, read
from crossdock.services.forecasts import ForecastStore, forecast_view, run_view

router = APIRouter(prefix="/v1", tags=["forecasts"], route_class=guarded("forecasts:read"))


@router.get("/forecasts", responses=responses(ok={200: {"model": ForecastRunsOut}}))
async def list_runs(request: Request, limit: int = Query(10, ge=1, le=100)) -> Response:
    """The newest forecast runs first: what history each saw and which models its series chose."""

    return json_response(await read(request, partial(_runs, limit)))


@router.get("/forecasts/{sku}", responses=responses("not-found", ok={200: {"model": ForecastOut}}))
async def get_forecast(request: Request, sku: str) -> Response:
    """Expected daily demand of one SKU at each node from today on, with quantiles (q50 ... q95:
    the units that demand stays at or below with that probability) and the model each node's series
    chose by backtest. Nodes without a forecast (nothing sold there in the history) are absent."""
    return json_response(await read(request, partial(forecast_view, sku=sku)))


def _runs(limit: int, uow: ForecastStore) -> dict[str, Any]:
    return {"runs": [run_view(r) for r in uow.forecast_runs(limit)]}
