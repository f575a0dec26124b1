"""The live directory in Chromium: streams appear without a reload and link to their watch pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import PageLog, horizontal_overflow
from tests.interop.conftest import PublisherFactory, Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.interop


def test_live_stream_appears_without_reload_and_links_to_watch_page(
    server: Server,
    publishers: PublisherFactory,
    page: Page,
    page_log: PageLog,
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.goto(f"{server.http}/")
    assert page.locator("#directory-empty").is_visible()
    assert "Nothing is live" in page.locator("#directory-empty").inner_text()
    page.evaluate("() => { window.streamitTestMarker = 'same page'; }")

    info = server.create_stream("Sunrise <b>over</b> the bay", slug="sunrise")
    publishers.generated(server.rtmp_url(info.stream_key), seconds=120)
    card = page.locator('.stream-card[data-slug="sunrise"]')
    card.wait_for(state="visible", timeout=60_000)
    assert page.evaluate("() => window.streamitTestMarker") == "same page"
    assert not page.locator("#directory-empty").is_visible()
    # The title is text, not markup.
    assert card.locator(".stream-title").inner_text() == "Sunrise <b>over</b> the bay"
    assert card.locator("b").count() == 0
    page.wait_for_function(
        """() => document.querySelector('.stream-card[data-slug="sunrise"] .resolution')
                    .textContent === '640×360'""",
        timeout=60_000,
        polling=250,
    )
    page.wait_for_function(
        """() => /^\\d+:\\d\\d$/.test(
                    document.querySelector('.stream-card[data-slug="sunrise"] .uptime').textContent)""",
        timeout=30_000,
        polling=250,
    )
    screenshot(page, "directory")

    card.locator("a.stream-link").click()
    page.wait_for_url(f"{server.http}/watch/sunrise")
    page.wait_for_function(
        "() => document.getElementById('video').currentTime > 1", timeout=60_000, polling=250
    )
    assert page_log.csp_violations() == []
    # The watch page polls the playlist until the first segment exists: those 404s are expected.
    assert page_log.unexpected_console_errors(("status of 404 (Not Found) (http",)) == [], (
        page_log.console_errors
    )


def test_directory_fits_a_phone_and_is_server_rendered(
    server: Server,
    publishers: PublisherFactory,
    phone_page: Page,
    screenshot: Callable[[Page, str], Path],
) -> None:
    info = server.create_stream("A title long enough to need wrapping on a small phone screen, surely")
    publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    phone_page.goto(f"{server.http}/")
    phone_page.locator(f'.stream-card[data-slug="{info.slug}"]').wait_for(state="visible", timeout=60_000)
    # After a reload the card is in the HTML the server sent, before any script ran.
    phone_page.reload()
    assert phone_page.locator(f'.stream-card[data-slug="{info.slug}"]').is_visible()
    assert horizontal_overflow(phone_page) <= 0
    assert phone_page.evaluate("() => document.documentElement.scrollWidth") <= 360
    screenshot(phone_page, "directory-phone")
