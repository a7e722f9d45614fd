"""What every console page shares: templates, the signed-in operator, the CSRF check, rendering.

A console session is an access token of the signed-in client (api.tokens), kept in an HttpOnly,
SameSite=Strict cookie: the console checks it like the API checks a bearer token (signature,
expiry, the client not revoked), and renews it while the operator keeps working. Roles come from
the client's scopes: `console:read` (or `admin`) may look, `console:operate` (or `admin`) may act.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from crossdock import __version__
from crossdock.api.auth import Guard, Principal
from crossdock.api.problems import KINDS
from crossdock.api.tokens import InvalidToken, UnknownKey
from crossdock.api.writes import Outcome, apply
from crossdock.domain.clients import grants
from crossdock.domain.errors import DomainError
from crossdock.services.ports import UnitOfWork

PREFIX = "/console"
COOKIE = "crossdock_console"
CSRF_HEADER = "x-console-csrf"
VIEW, OPERATE = "console:read", "console:operate"
# The session is renewed when less than this share of its life is left.
RENEW_AT = 0.5
NONE = "\u2013"  # an en dash: no value


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in page (htmx requests get HX-Redirect)."""


class NotAllowed(Exception):
    """Signed in, but the role does not allow this (403 page)."""


class ActionRefused(Exception):
    """The hub refused an operator's action: shown in the page's flash area, nothing changed."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Operator:
    """Who is signed in to the console."""

    client_id: str
    name: str
    scopes: frozenset[str]
    csrf: str  # what the page sends back with every action

    @property
    def may_operate(self) -> bool:
        return grants(self.scopes, OPERATE)

    @property
    def role(self) -> str:
        return "operator" if self.may_operate else "read-only"


def may_view(scopes: frozenset[str] | tuple[str, ...]) -> bool:
    return grants(scopes, VIEW) or grants(scopes, OPERATE)


def csrf_token(session: str) -> str:
    """Bound to the session: a page of another session (or another site) cannot act for this one."""
    return hashlib.sha256(b"crossdock-console-csrf " + session.encode()).hexdigest()[:32]


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


async def operator(request: Request) -> Operator:
    """The signed-in operator, or SignInNeeded. Sets the request's principal, so that the audit log
    names the client for what the console changes."""
    session = request.cookies.get(COOKIE)
    if not session:
        raise SignInNeeded
    guard = _guard(request)
    try:
        try:
            claims = guard.tokens.verify(session)
        except UnknownKey:  # another process rotated the keys
            guard.tokens.ring.reload()
            claims = guard.tokens.verify(session)
    except InvalidToken:
        raise SignInNeeded from None
    client = await guard.clients.get(claims.client_id)
    if client is None or not client.active or not may_view(claims.scopes):
        raise SignInNeeded
    request.state.principal = Principal(client.client_id, claims.scopes, None)
    if claims.expires_at - time.time() < guard.tokens.ttl * RENEW_AT:
        session = guard.tokens.issue(client, tuple(sorted(claims.scopes)))
        request.state.renewed_session = session
    return Operator(client.client_id, client.name, claims.scopes, csrf_token(session))


async def acting_operator(request: Request) -> Operator:
    """An operator allowed to act, whose request carries the page's CSRF token."""
    who = await operator(request)
    if not who.may_operate:
        raise NotAllowed("your role is read-only: acting needs the scope console:operate")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent, who.csrf):
        raise NotAllowed("the page that sent this is not from this session: reload it")
    return who


async def perform(request: Request, job: Callable[[UnitOfWork], Outcome]) -> Any:
    """Runs an operator's action on the API's write path (shedding, audit, events alike) and
    returns the job's body; a refusal (a DomainError) becomes ActionRefused."""
    try:
        _, out, _ = await apply(request, None, job)
    except DomainError as e:
        raise ActionRefused(e.detail, KINDS.get(e.kind, KINDS["invalid-request"])[0]) from None
    return out


def set_session(response: Response, request: Request, session: str) -> None:
    response.set_cookie(
        COOKIE,
        session,
        max_age=_guard(request).tokens.ttl,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{PREFIX}/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


@cache
def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("crossdock.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(prefix=PREFIX, version=__version__)
    env.filters.update(number=number, ago=ago, when=when)
    return env


def render(request: Request, name: str, who: Operator | None, status: int = 200, **context: Any) -> HTMLResponse:
    """A page (or an htmx fragment) rendered with the operator and the current path."""
    html = templates().get_template(name).render(request=request, who=who, path=request.url.path, **context)
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    renewed = getattr(request.state, "renewed_session", None)
    if renewed:
        set_session(response, request, renewed)
    return response


# -- filters ----------------------------------------------------------------------------------------


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return NONE
    return f"{value:,.{digits}f}"


def ago(seconds: float | None) -> str:
    """A lag or an age for people: 0.4 s, 12 s, 3 min, 2 h."""
    if seconds is None:
        return NONE
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def when(value: str | datetime | None) -> str:
    """A timestamp shortened to what an operator reads: 2026-12-04 14:03:22 (UTC)."""
    if value is None:
        return NONE
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("T", " ")[:19]
