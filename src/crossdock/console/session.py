"""Signing in and out of the console with an API client's id and secret."""

from __future__ import annotations

import asyncio
from functools import partial
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from crossdock.api.auth import Guard
from crossdock.console.web import COOKIE, PREFIX, may_view, render, set_session
from crossdock.services.clients import authenticate
from crossdock.store.database import Database

router = APIRouter(prefix=PREFIX, include_in_schema=False)
LOGIN_GROUP = "oauth:token"  # sign-ins count against the token endpoint's limit


def _next(target: str | None) -> str:
    """Only a console page: a sign-in link cannot send the operator to another site."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", None, next=_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
    client_id, secret = form.get("client_id", "").strip(), form.get("client_secret", "")
    target = _next(form.get("next"))

    def refused(error: str, status: int = 401) -> Response:
        return render(request, "login.html", None, status=status, next=target, error=error, client_id=client_id)

    if not client_id or not secret:
        return refused("Enter the client id and its secret.", 400)
    guard: Guard = request.app.state.guard
    if not guard.limiter.check(client_id[:128], LOGIN_GROUP).allowed:
        return refused("Too many sign-ins for this client: wait a moment.", 429)
    db: Database = request.app.state.db
    client = await asyncio.to_thread(db.read, partial(authenticate, client_id=client_id, secret=secret))
    if client is None:
        return refused("Unknown client, wrong secret, or revoked.")
    if not may_view(client.scopes):
        return refused("This client may not use the console: it needs console:read, console:operate or admin.", 403)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, guard.tokens.issue(client, client.scopes))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
