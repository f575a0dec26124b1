"""Browser-test harness: Debian's Chromium driven by Playwright against a real ``streamit serve``.

Fixtures:

- ``browser`` (module): headless Chromium from ``/usr/bin/chromium`` (override: ``STREAMIT_TEST_CHROMIUM``),
  autoplay allowed, audio muted.  Never ``playwright install``: the browser is the distribution's.
  Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop running in the main thread
  while it is open, which would break every ``async def`` test collected after the browser tests.  For the
  same reason a browser-test module must not contain ``async def`` tests.
- ``page``: a fresh context and page (1280x800); ``page_log`` holds its console errors and uncaught page
  errors; an uncaught page error fails the test at teardown.
- ``phone_page``: the same at 360x740, for the "no horizontal scrolling at 360 px" checks.
- ``server`` / ``publishers``: the interop ``streamit serve`` process and ffmpeg publishers
  (:mod:`tests.interop.conftest`).
- ``screenshot(page, name)``: saves ``test-artifacts/screenshots/<name>.png``.

Without Chromium or hls.js (``npm ci``) the tests skip with the reason; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from streamit.config import Settings
from streamit.web.vendor import VendorAssets
from tests.conftest import IN_CI, require_tool
from tests.interop.conftest import (
    PublisherFactory,
    Server,
    free_port,
    start_server,
    stop_server,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Error, Page

pytestmark = pytest.mark.interop

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ENV = "STREAMIT_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message + "; under CI=true it must be present")
    pytest.skip(message)


def chromium_executable() -> str:
    """Debian's Chromium (or ``$STREAMIT_TEST_CHROMIUM``); skips, or fails under CI, when it is missing."""
    path = os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    if not os.access(path, os.X_OK):
        _missing(f"Chromium not found at {path} (apt-get install chromium, or set {CHROMIUM_ENV})")
    return path


def require_hls_js() -> None:
    """Skip (fail under CI) when the web assets are not installed: ``npm ci`` puts hls.js in node_modules."""
    if not VendorAssets.locate(Settings(), cwd=REPO_ROOT).has_hls_js:
        _missing("hls.js is not installed in node_modules (run `npm ci`)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (see the module docstring for why not per session)."""
    executable = chromium_executable()
    require_hls_js()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class PageLog:
    """What a page reported: console messages of type ``error`` and uncaught exceptions."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}\n{error.stack}")

    def unexpected_console_errors(self, allow: tuple[str, ...] = ()) -> list[str]:
        """Console errors that contain none of the ``allow`` substrings."""
        return [line for line in self.console_errors if not any(part in line for part in allow)]

    def csp_violations(self) -> list[str]:
        """Console errors saying the Content-Security-Policy refused something."""
        return [line for line in self.console_errors if "Content Security Policy" in line]


def _open_page(browser: Browser, viewport: dict[str, int], log: PageLog) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.on("console", log.on_console)
        page.on("pageerror", log.on_page_error)
        page.set_default_timeout(30_000)
        yield page
    finally:
        context.close()
    assert not log.page_errors, "uncaught errors in the page:\n" + "\n".join(log.page_errors)


@pytest.fixture
def page_log() -> PageLog:
    """Console errors and uncaught exceptions of ``page`` (and ``phone_page``)."""
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A desktop-sized page in a fresh browser context."""
    yield from _open_page(browser, DESKTOP, page_log)


@pytest.fixture
def phone_page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A 360 px wide page in a fresh browser context."""
    yield from _open_page(browser, PHONE, page_log)


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the document is wider than the viewport (0 when there is no horizontal scroll)."""
    overflow: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """``screenshot(page, name)`` saves the full page to ``test-artifacts/screenshots/<name>.png``."""

    def take(page: Page, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def ffmpeg() -> str:
    return require_tool("ffmpeg")


@pytest.fixture
def server(tmp_path: Path, ffmpeg: str) -> Iterator[Server]:
    """``streamit serve`` on free ports with its own data directory (runs from the repo: finds hls.js)."""
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port())
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def publishers(ffmpeg: str, tmp_path: Path) -> Iterator[PublisherFactory]:
    """ffmpeg publishers (640x360 testsrc2 + sine, 1 s GOP), killed at the end of the test."""
    factory = PublisherFactory(ffmpeg, tmp_path)
    yield factory
    for publisher in factory.started:
        publisher.stop()
