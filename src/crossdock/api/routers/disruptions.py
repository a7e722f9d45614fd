"""Disruptions: what closes a node, makes it dearer or slows its lanes, set by hand here or read from a
weather feed. Routing applies the active ones to every order; changes made here are audited."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from crossdock.api.auth import guarded, secured
from crossdock.api.disruption_schemas import DisruptionDeletedOut, DisruptionIn, DisruptionListOut, DisruptionOut
from crossdock.api.problems import responses
from crossdock.api.schemas import ID_PATTERN
from crossdock.api.writes import Outcome, json_response, read, write
from crossdock.routing.disruptions import Disruption, area_from_geojson
from crossdock.services import disruptions
from crossdock.services.ports import UnitOfWork

router = APIRouter(prefix="/v1", tags=["routing"], route_class=guarded("routing:read"))
DisruptionId = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]


@router.put(
    "/disruptions/{disruption_id}",
    **secured("admin"),
    responses=responses(
        "invalid-request", "unknown-reference", ok={200: {"model": DisruptionOut}, 201: {"model": DisruptionOut}}
    ),
)
async def put_disruption(request: Request, body: DisruptionIn, disruption_id: DisruptionId) -> Response:
    """Creates or replaces a disruption set by hand. It covers the nodes it names and those inside its
    area; a destination inside the area gets `extra_days` on every lane to it."""
    d = Disruption(
        id=disruption_id,
        title=body.title,
        source=disruptions.MANUAL,
        severity=body.severity,
        effect=body.effect,
        penalty=float(body.penalty),
        extra_days=body.extra_days,
        node_ids=frozenset(body.node_ids),
        area=area_from_geojson(body.area.model_dump()) if body.area is not None else (),
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        note=body.note,
    )
    return await write(request, body, partial(_put, d))


def _put(d: Disruption, uow: UnitOfWork) -> Outcome:
    created, view = disruptions.put_disruption(uow, d)
    return (201 if created else 200), view


@router.get("/disruptions", responses=responses(ok={200: {"model": DisruptionListOut}}))
async def list_disruptions(
    request: Request,
    active: Annotated[bool | None, Query(description="true: only those in force now; false: only the others")] = None,
) -> Response:
    """Every disruption, set by hand or read from a feed, ended ones included unless `active` is given."""
    return json_response(await read(request, partial(_list, active)))


def _list(active: bool | None, uow: UnitOfWork) -> dict[str, object]:
    return disruptions.list_disruptions(uow, active=active)


@router.get("/disruptions/{disruption_id}", responses=responses("not-found", ok={200: {"model": DisruptionOut}}))
async def get_disruption(request: Request, disruption_id: DisruptionId) -> Response:
    return json_response(await read(request, partial(_get, disruption_id)))


def _get(disruption_id: str, uow: UnitOfWork) -> dict[str, object]:
    return disruptions.get_disruption(uow, disruption_id)


@router.delete(
    "/disruptions/{disruption_id}",
    **secured("admin"),
    responses=responses("not-found", ok={200: {"model": DisruptionDeletedOut}}),
)
async def delete_disruption(request: Request, disruption_id: DisruptionId) -> Response:
    """Deletes the disruption: routing stops applying it with the next order. A feed that still lists
    one of its own writes it back at its next read."""
    return await write(request, None, partial(_delete, disruption_id))


def _delete(disruption_id: str, uow: UnitOfWork) -> Outcome:
    return 200, disruptions.remove_disruption(uow, disruption_id)
