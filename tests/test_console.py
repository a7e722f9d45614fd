"""Signing in to the console, its roles and sessions, and the overview's numbers, over real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossdock.provisioning import create_client
from tests.conftest import LiveServer
from tests.console_helpers import signed_in
from tests.world import order, seed


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(f"sqlite:///{tmp_path_factory.mktemp('console') / 'hub.db'}") as server:
        with server.client() as http:
            seed(http, {"TEE": {"wh-east": 3}, "CAP": {"wh-west": 1}})
            for i, lines in enumerate([{"TEE": 2}, {"TEE": 2}, {"CAP": 1}]):
                http.post("/v1/orders", json=order(f"o-{i}", lines)).raise_for_status()
        yield server


def test_signed_out_pages_send_the_browser_to_sign_in_and_back(live: LiveServer) -> None:
    with live.anonymous() as web:
        page = web.get("/console/?since=today")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login?next=%2Fconsole%2F%3Fsince%3Dtoday"
        htmx = web.get("/console/overview/tiles", headers={"HX-Request": "true"})
        assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/console/login?next=")
        assert web.get("/console").headers["location"] == "/console/"
        form = web.get("/console/login?next=/console/orders")
        assert form.status_code == 200 and 'name="client_secret"' in form.text


def test_sign_in_needs_the_right_secret_and_a_console_scope(live: LiveServer) -> None:
    client, secret = create_client(live.database_url, "warehouse robot", ["inventory:write"])
    with live.anonymous() as web:
        wrong = web.post("/console/login", data={"client_id": client.client_id, "client_secret": secret + "x"})
        assert wrong.status_code == 401 and "wrong secret" in wrong.text and not web.cookies
        empty = web.post("/console/login", data={"client_id": client.client_id})
        assert empty.status_code == 400 and not web.cookies
        robot = web.post("/console/login", data={"client_id": client.client_id, "client_secret": secret})
        assert robot.status_code == 403 and "console:read" in robot.text and not web.cookies


def test_a_session_is_an_http_only_strict_cookie_and_never_leaves_for_another_site(live: LiveServer) -> None:
    client, secret = create_client(live.database_url, "night shift", ["console:read"])
    with live.anonymous() as web:
        for target, landing in [("/console/orders", "/console/orders"), ("https://evil.example/", "/console/")]:
            answer = web.post(
                "/console/login", data={"client_id": client.client_id, "client_secret": secret, "next": target}
            )
            assert answer.status_code == 303 and answer.headers["location"] == landing
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert web.get("/console/").status_code == 200
        out = web.post("/console/logout")
        assert out.status_code == 303
        assert web.get("/console/").status_code == 303, "signed out"


def test_roles_follow_the_scopes(live: LiveServer) -> None:
    reader, operator = signed_in(live, "console:read"), signed_in(live, "console:operate")
    assert "read-only" in reader.get("/console/").text
    assert "operator" in operator.get("/console/").text and "read-only" not in operator.get("/console/").text


def test_a_revoked_client_is_signed_out_at_its_next_request(live: LiveServer) -> None:
    client, secret = create_client(live.database_url, "temp", ["console:operate"])
    with live.anonymous() as web, live.client() as admin:
        web.post("/console/login", data={"client_id": client.client_id, "client_secret": secret})
        assert web.get("/console/").status_code == 200
        admin.post(f"/v1/clients/{client.client_id}/revoke").raise_for_status()
        assert web.get("/console/").status_code == 303


def test_a_working_operator_stays_signed_in_past_the_token_lifetime(tmp_path: Path) -> None:
    """Sessions last a token's lifetime (2 s here) and are renewed while the operator keeps working."""
    with LiveServer(f"sqlite:///{tmp_path / 'hub.db'}", token_ttl_seconds=2) as live:
        web = signed_in(live)
        first = web.cookies["crossdock_console"]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert web.get("/console/overview/tiles").status_code == 200
            time.sleep(0.3)
        assert web.cookies["crossdock_console"] != first, "renewed"
        idle = signed_in(live)
        time.sleep(2.5)
        assert idle.get("/console/").status_code == 303, "an idle session ends with its token"


def test_the_overview_shows_the_hubs_numbers(live: LiveServer) -> None:
    web = signed_in(live)
    with live.client() as admin:
        orders = admin.get("/v1/orders", params={"limit": 100}).json()["orders"]
        waiting = sum(o["status"] in ("backordered", "partially_allocated") for o in orders)
        tiles = web.get("/console/overview/tiles").text
        backordered = re.search(r'data-tile="backordered">([^<]+)<', tiles)
        assert backordered and backordered.group(1) == str(waiting) and waiting == 1
        series = web.get("/console/overview/orders.json").json()
        assert sum(series["series"]["orders per minute"]) == len(orders) == 3
        assert len(series["x"]) == len(series["series"]["orders per minute"])
        for sample in ("/console/overview/lag.json", "/console/overview/flow.json"):
            body = web.get(sample).json()
            assert body["at"] > 0 and isinstance(body["sample"], dict)
        assert web.get("/console/overview/flow.json").json()["sample"]["orders backordered"] == 1


def test_pages_use_nothing_from_another_host(live: LiveServer) -> None:
    """The console works offline: every script, style and image is served from /console/static."""
    web = signed_in(live)
    page = web.get("/console/").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.startswith("/console/static/htmx.min.js") for a in assets)
    assert [a for a in assets if "://" in a or a.startswith("//")] == []
    for asset in (a for a in assets if a.startswith("/console/static/")):
        assert web.get(asset).status_code == 200, asset
    static = Path(__file__).parent.parent / "src" / "crossdock" / "console" / "static"
    for script in static.glob("*.js"):
        assert not re.search(r"""fetch\(\s*["']https?://""", script.read_text()), script.name


def test_the_console_is_not_in_the_api_description(live: LiveServer) -> None:
    with httpx.Client(base_url=live.base_url) as web:
        paths = web.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
