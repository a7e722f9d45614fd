"""Every write runs as one job on the database's write path, with Idempotency-Key handled inside
the same transaction: the stored response is replayed, a reuse with another body is refused."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from crossdock.api.shedding import LoadShedder
from crossdock.domain.audit import Actor
from crossdock.domain.errors import IdempotencyMismatch, InvalidRequest, Overloaded
from crossdock.services.ports import IDEMPOTENCY_RETENTION, StoredResponse, UnitOfWork
from crossdock.store.database import Database

Outcome = tuple[int, Any]  # (HTTP status, JSON body)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def shedder(request: Request) -> LoadShedder:
    shed: LoadShedder = request.app.state.shedder
    return shed


async def read(request: Request, job: Callable[[UnitOfWork], Any]) -> Any:
    db = database(request)
    with shedder(request).reading():
        return await asyncio.to_thread(db.read, job)


async def write(request: Request, body: BaseModel | None, job: Callable[[UnitOfWork], Outcome]) -> Response:
    key = request.headers.get("idempotency-key")
    digest = ""
    if key is not None:
        if not 0 < len(key) <= 255:
            raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
        canonical = orjson.dumps(body.model_dump(mode="json") if body else None, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(canonical).hexdigest()
    scope = f"{request.method} {request.scope['path']}"

    run = partial(_idempotently, scope, key, digest, job) if key is not None else partial(_first_time, job)
    run = partial(_in_context, request_actor(request), getattr(request.state, "trace", None), run)
    shed = shedder(request)
    with shed.writing() as deadline:
        future = database(request).submit(run, deadline)
        outcome = asyncio.wrap_future(future)
        if not (await asyncio.wait([outcome], timeout=shed.queue_seconds))[0] and future.cancel():
            raise Overloaded("the write queue is too long: not applied, try again")  # it will never run
        status, out, replayed = await outcome
    return json_response(out, status, {"Idempotent-Replayed": "true"} if replayed else None)


def request_actor(request: Request) -> Actor:
    """Who the audit log says made the request's changes. No API clients are authenticated yet, so
    every caller is "anonymous"; the name must come from authentication, never from a header."""
    request_id: str | None = getattr(request.state, "request_id", None)
    return Actor("anonymous", request_id[:128] if request_id else None)


# Jobs are module-level functions bound with `partial`, so that they can be pickled to a writer
# process (`serve --workers N`).


def _in_context(
    actor: Actor,
    trace: dict[str, str] | None,
    job: Callable[[UnitOfWork], tuple[int, Any, bool]],
    uow: UnitOfWork,
) -> tuple[int, Any, bool]:
    """Sets who acts (for the audit log) and the trace context the job's events carry."""
    uow.actor = actor
    if trace:
        uow.trace = trace
    return job(uow)


def _first_time(job: Callable[[UnitOfWork], Outcome], uow: UnitOfWork) -> tuple[int, Any, bool]:
    status, out = job(uow)
    return status, out, False


def _idempotently(
    scope: str, key: str, digest: str, job: Callable[[UnitOfWork], Outcome], uow: UnitOfWork
) -> tuple[int, Any, bool]:
    """Runs the job once per key, in the job's own transaction; a repeat gets the stored answer."""
    stored = uow.get_response(scope, key, since=uow.now - IDEMPOTENCY_RETENTION)
    if stored is not None:
        if stored.request_hash != digest:
            raise IdempotencyMismatch(f"Idempotency-Key {key!r} was already used with another request")
        return stored.status_code, stored.body, True
    status, out = job(uow)
    uow.save_response(scope, key, StoredResponse(digest, status, out))
    return status, out, False
