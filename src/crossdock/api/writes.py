"""Every write runs as one job on the database's write path, with Idempotency-Key handled inside
the same transaction: the stored response is replayed, a reuse with another body is refused."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from crossdock.api.auth import actor
from crossdock.api.shedding import LoadShedder
from crossdock.domain.audit import Actor
from crossdock.domain.errors import IdempotencyInFlight, IdempotencyMismatch, InvalidRequest, Overloaded
from crossdock.services.ports import IDEMPOTENCY_RETENTION, StoredResponse, UnitOfWork
from crossdock.store.database import Database

Outcome = tuple[int, Any]  # (HTTP status, JSON body)
Applied = tuple[int, Any, bool]  # an outcome and whether it was an idempotent replay


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
    status, out, replayed = await apply(request, body, job)
    return json_response(out, status, {"Idempotent-Replayed": "true"} if replayed else None)


async def apply(request: Request, body: BaseModel | None, job: Callable[[UnitOfWork], Outcome]) -> Applied:
    """Runs a write job on the write path (shed under load, idempotent under a key): its status,
    its body and whether it was a replay. The API answers with JSON; the console renders a page."""
    key = request.headers.get("idempotency-key")
    who = actor(request)
    run: Callable[[UnitOfWork], Applied] = partial(_first_time, job)
    slot = None
    if key is not None:
        if not 0 < len(key) <= 255:
            raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
        canonical = orjson.dumps(body.model_dump(mode="json") if body else None, option=orjson.OPT_SORT_KEYS)
        slot = (idempotency_scope(request), key)
        run = partial(_idempotently, *slot, hashlib.sha256(canonical).hexdigest(), job)
    with _in_flight(request.app.state.idempotency_in_flight, slot), shedder(request).writing() as deadline:
        future = database(request).submit(partial(_in_context, who, _trace(request), run), deadline)
        outcome = asyncio.wrap_future(future)
        if not (await asyncio.wait([outcome], timeout=shedder(request).queue_seconds))[0] and future.cancel():
            raise Overloaded("the write queue is too long: not applied, try again")  # it will never run
        found: Applied = await outcome
    return found


def idempotency_scope(request: Request) -> str:
    """What an Idempotency-Key is unique within: the client's own keys for this operation, so two
    clients using the same key never see each other's answers."""
    return f"{actor(request).name} {request.method} {request.scope['path']}"


@contextlib.contextmanager
def _in_flight(running: set[tuple[str, str]], slot: tuple[str, str] | None) -> Iterator[None]:
    """Refuses a repeat of a keyed request while the first is still running in this process."""
    if slot is None:
        yield
        return
    if slot in running:
        raise IdempotencyInFlight(f"a request with Idempotency-Key {slot[1]!r} is still in progress: retry shortly")
    running.add(slot)
    try:
        yield
    finally:
        running.discard(slot)


def _trace(request: Request) -> dict[str, str] | None:
    return getattr(request.state, "trace", None)


# Jobs are module-level functions bound with `partial`, so that they can be pickled to a writer
# process (`serve --workers N`).


def _in_context(
    actor: Actor,
    trace: dict[str, str] | None,
    job: Callable[[UnitOfWork], Applied],
    uow: UnitOfWork,
) -> Applied:
    """Sets who acts (for the audit log) and the trace context the job's events carry."""
    uow.actor = actor
    if trace:
        uow.trace = trace
    return job(uow)


def _first_time(job: Callable[[UnitOfWork], Outcome], uow: UnitOfWork) -> Applied:
    status, out = job(uow)
    return status, out, False


def _idempotently(
    scope: str, key: str, digest: str, job: Callable[[UnitOfWork], Outcome], uow: UnitOfWork
) -> Applied:
    """Runs the job once per key, in the job's own transaction; a repeat gets the stored answer."""
    if not uow.claim_idempotency_key(scope, key):  # another process runs the same key right now
        raise IdempotencyInFlight(f"a request with Idempotency-Key {key!r} is still in progress: retry shortly")
    stored = uow.get_response(scope, key, since=uow.now - IDEMPOTENCY_RETENTION)
    if stored is not None:
        if stored.request_hash != digest:
            raise IdempotencyMismatch(f"Idempotency-Key {key!r} was already used with another request")
        return stored.status_code, stored.body, True
    status, out = job(uow)
    uow.save_response(scope, key, StoredResponse(digest, status, out))
    return status, out, False
