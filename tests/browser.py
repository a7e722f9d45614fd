"""Real-browser tests: Debian's Chromium (/usr/bin/chromium) driven by Playwright's Python package.

Playwright never downloads a browser here (`playwright install` must not run): it launches the system
Chromium, headless, with the flags below. A test that finds no Chromium or no Playwright is skipped.

Every page is watched (see `Watch`): console errors, uncaught exceptions (`pageerror`), failed requests,
and every request to a host other than this machine, which is blocked rather than sent: a page that
passes works offline (no CDN, no fonts or analytics from elsewhere).

Use in a test module (the fixtures are imported, as tests/conftest.py belongs to everyone):

    from tests.browser import browser_fixture, page_fixture, screenshot, watch  # noqa: F401 (fixtures)

    def test_console(page: Page) -> None:
        page.goto(f"{base_url}/console")
        page.wait_for_selector("main")
        screenshot(page, "console")
        watch(page).assert_clean()

Or without the fixtures: `with open_browser() as b, open_page(b) as (p, w): ...`.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route
    from playwright.sync_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it from calling Google's hosts (refused here, and
# slow to be refused) and from doing first-run work. launch() gives it a fresh temporary profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
TIMEOUT_MS = 15_000  # Playwright's default is 30 s; a page of ours that takes this long is broken anyway


@dataclass
class Watch:
    """What went wrong on a page; `assert_clean()` fails the test unless nothing did."""

    console_errors: list[str] = field(default_factory=list)  # console messages of type "error"
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions and rejections
    failed_requests: list[str] = field(default_factory=list)  # network failures (not HTTP error statuses)
    blocked_requests: list[str] = field(default_factory=list)  # to another host: never sent

    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {e}" for e in self.page_errors]
            + [f"request failed: {r}" for r in self.failed_requests]
            + [f"request to another host: {u}" for u in self.blocked_requests]
        )

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the page had problems:\n" + "\n".join(problems)

    def clear(self) -> None:
        for found in (self.console_errors, self.page_errors, self.failed_requests, self.blocked_requests):
            found.clear()


_watches: weakref.WeakKeyDictionary[Page, Watch] = weakref.WeakKeyDictionary()


def is_local(url: str) -> bool:
    """A URL this machine serves (or one that needs no network: data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


def watch(page: Page) -> Watch:
    """The page's `Watch`, attached on the first call (pages from `open_page` or the `page` fixture
    have one from the start; call it before the page loads anything to see everything)."""
    found = _watches.get(page)
    if found is not None:
        return found
    found = _watches[page] = Watch()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            where = f" ({location['url']}:{location['lineNumber']})" if location.get("url") else ""
            found.console_errors.append(message.text + where)

    def on_page_error(error: PlaywrightError) -> None:
        found.page_errors.append(f"{error.name}: {error.message}" if error.name else error.message)

    def on_request_failed(request: Request) -> None:
        if request.url not in found.blocked_requests:  # a blocked request fails too: counted once
            found.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def on_route(route: Route) -> None:
        if is_local(route.request.url):
            route.fallback()
        else:
            found.blocked_requests.append(route.request.url)
            route.abort("blockedbyclient")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("requestfailed", on_request_failed)
    page.route(re.compile(r".*"), on_route)
    return found


@contextlib.contextmanager
def open_browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, under Playwright; skips the test when either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium; `make sysdeps` does as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no playwright package (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS), chromium_sandbox=False
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(browser: Browser, *, width: int = 1280, height: int = 800) -> Iterator[tuple[Page, Watch]]:
    """A page in a context of its own (no cookies or storage shared with other tests), watched."""
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        yield page, watch(page)
    finally:
        context.close()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves the page as test-artifacts/browser/<name>.png (for a person to look at, or CI to keep)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# Fixtures under function names of their own: a test module imports `browser_fixture` and `page_fixture`
# and asks for `browser` and `page`, so that its parameters do not shadow the import (ruff's F811).
@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Browser]:
    """One Chromium for the test module (each test gets its own context through `page`)."""
    with open_browser() as launched:
        yield launched


@pytest.fixture(name="page")
def page_fixture(browser: Browser) -> Iterator[Page]:
    """A fresh watched page: `watch(page)` gives what went wrong on it."""
    with open_page(browser) as (opened, _):
        yield opened
