"""Signing in to the console from tests, and acting as a page does (with its CSRF token)."""

from __future__ import annotations

import re

import httpx

from crossdock.provisioning import create_client
from tests.conftest import LiveServer

CSRF = re.compile(r'<meta name="console-csrf" content="([0-9a-f]+)">')


def signed_in(live: LiveServer, *scopes: str, name: str = "ops") -> httpx.Client:
    """A browser-like client signed in to the console as a new client with these scopes."""
    client, secret = create_client(live.database_url, name, list(scopes or ("console:operate",)))
    web = httpx.Client(base_url=live.base_url, timeout=30)
    answer = web.post("/console/login", data={"client_id": client.client_id, "client_secret": secret})
    assert answer.status_code == 303, answer.text
    return web


def csrf_of(web: httpx.Client, page: str = "/console/") -> str:
    """The CSRF token a console page hands its scripts."""
    found = CSRF.search(web.get(page).text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def act(web: httpx.Client, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    """An action as the page's htmx sends it: a POST with the CSRF header."""
    headers = {"X-Console-CSRF": csrf_of(web), "HX-Request": "true"}
    return web.post(path, data=data or {}, headers=headers)
