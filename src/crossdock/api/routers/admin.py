"""Operations: reconciliation of positions against the ledger."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.responses import Response

from crossdock.api.auth import guarded
from crossdock.api.writes import json_response, read
from crossdock.services import queries

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=guarded("admin"))


@router.get("/reconciliation")
async def get_reconciliation(request: Request) -> Response:
    """Rebuilds every position from the movement ledger and lists where the stored ones differ."""
    drift = await read(request, queries.reconcile)
    return json_response({"drift": [asdict(d) for d in drift], "ok": not drift})
