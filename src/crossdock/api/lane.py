"""The fast lane: the hottest writes (orders, checkout holds) served without FastAPI's per-request
machinery (its middleware stack and dependency solving), which measured about 70 of the 250 us
an order costs the API process here. The same handlers, validation and problem answers run; the
FastAPI routes stay declared for the OpenAPI document and answer every other path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crossdock.api.auth import Guard
from crossdock.api.middleware import ROUTE_KEY, EdgeMiddleware, Observer
from crossdock.api.problems import problem_for
from crossdock.api.tracing import EdgeTracer

Handler = Callable[[Request, Any], Awaitable[Response]]


class CrossdockAPI(FastAPI):
    """FastAPI behind the edge (request ids, body cap), with a fast lane for a few routes."""

    def __init__(
        self,
        *,
        max_body_bytes: int,
        observe: Observer | None = None,
        tracer: EdgeTracer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lanes: dict[tuple[str, str], tuple[type[BaseModel], Handler, str]] = {}
        self._edge = EdgeMiddleware(self._dispatch, max_body_bytes, observe, tracer)

    def add_lane(self, method: str, path: str, model: type[BaseModel], handler: Handler, scope: str) -> None:
        """Serves `method path` with `handler`, for callers admitted with `scope`."""
        self.lanes[(method, path)] = (model, handler, scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._edge(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if lane is None:
            await super().__call__(scope, receive, send)
            return
        model, handler, needed = lane
        scope["app"] = self
        scope[ROUTE_KEY] = scope["path"]  # a lane's path is its template (no path parameters)
        request = Request(scope, receive)
        try:
            guard: Guard = self.state.guard
            await guard.admit(request, needed)
            response = await handler(request, model.model_validate_json(await request.body()))
        except Exception as exc:
            response = problem_for(exc, scope["path"])
        await response(scope, receive, send)
