"""The API reference at /docs in a real browser (Debian's Chromium under Playwright): Swagger UI renders
from the package's own assets, with no console error and no request to another host; and the page
watcher does catch what it is there to catch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from crossdock.localserver import ServerProcess, free_port
from tests.browser import browser_fixture, page_fixture, screenshot, watch  # noqa: F401 (fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("browser")
    with ServerProcess(f"sqlite:///{tmp / 'crossdock.db'}", tmp / "server.log") as server:
        yield server.base_url


def test_docs_render_offline_without_errors(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/docs")
    page.wait_for_selector(".swagger-ui .information-container .title")
    page.wait_for_selector(".swagger-ui .opblock-tag")  # the operations, grouped by tag
    assert "Crossdock" in page.inner_text(".swagger-ui .information-container .title")
    assert page.locator(".swagger-ui .opblock").count() > 10
    page.wait_for_load_state("networkidle")
    path = screenshot(page, "docs", full_page=False)
    assert path.stat().st_size > 10_000
    watch(page).assert_clean()


def test_the_watcher_records_errors_and_off_host_requests(page: Page) -> None:
    unserved = free_port()  # nothing listens there: the request fails
    html = (
        "<h1>broken</h1>"
        '<img src="https://cdn.example.invalid/logo.png">'
        f'<img src="http://127.0.0.1:{unserved}/missing.png">'
        "<script>console.error('logged on purpose'); throw new Error('thrown on purpose')</script>"
    )
    page.goto("data:text/html," + quote(html))
    page.wait_for_load_state("networkidle")
    found = watch(page)
    assert any("thrown on purpose" in e for e in found.page_errors), found
    assert any("logged on purpose" in m for m in found.console_errors), found
    assert found.blocked_requests == ["https://cdn.example.invalid/logo.png"], found
    assert any(f"127.0.0.1:{unserved}" in r for r in found.failed_requests), found
    with pytest.raises(AssertionError, match="thrown on purpose"):
        found.assert_clean()


def test_screenshots_go_under_test_artifacts(page: Page) -> None:
    page.set_content("<p>hello</p>")
    path = screenshot(page, "smoke-hello")
    assert path.parent == Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
    assert path.read_bytes().startswith(b"\x89PNG")
    watch(page).assert_clean()
