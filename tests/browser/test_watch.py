"""The watch page in Chromium against ``streamit serve`` with an ffmpeg publisher (640x360, 1 s GOP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import PageLog, horizontal_overflow
from tests.interop.conftest import (
    Publisher,
    PublisherFactory,
    Server,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.interop

PUBLISHED_WIDTH = 640
# Chromium logs a failed fetch (the playlist of a stream that has not started) as a console error.
EXPECTED_CONSOLE = ("Failed to load resource",)


def playlist_has_segments(server: Server, slug: str) -> bool:
    response = httpx.get(f"{server.http}/hls/{slug}/index.m3u8", timeout=5)
    return response.status_code == 200 and "#EXTINF" in response.text


def video_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => {
            const video = document.getElementById("video");
            return {
                currentTime: video.currentTime,
                videoWidth: video.videoWidth,
                paused: video.paused,
                engine: video.dataset.playerEngine || null,
                lastFatalError: video.dataset.lastFatalError || null,
                state: document.getElementById("watch").dataset.state,
                error: document.getElementById("player-error").textContent.trim(),
            };
        }"""
    )
    return state


def wait_for_playback(page: Page, seconds: float, timeout_ms: float = 60_000) -> float:
    """Wait until the video has played ``seconds`` more than when it first moved; returns the start time."""
    page.wait_for_function(
        "() => document.getElementById('video').currentTime > 0", timeout=timeout_ms, polling=200
    )
    start: float = page.evaluate("() => document.getElementById('video').currentTime")
    page.wait_for_function(
        f"() => document.getElementById('video').currentTime >= {start + seconds}",
        timeout=timeout_ms,
        polling=200,
    )
    return start


def publish(server: Server, publishers: PublisherFactory, slug: str, seconds: float) -> tuple[str, Publisher]:
    info = server.create_stream(f"Browser {slug}", slug=slug)
    return info.slug, publishers.generated(server.rtmp_url(info.stream_key), seconds=seconds)


def test_live_stream_plays_with_hls_js(
    server: Server,
    publishers: PublisherFactory,
    page: Page,
    page_log: PageLog,
    screenshot: Callable[[Page, str], Path],
) -> None:
    slug, publisher = publish(server, publishers, "plays", seconds=120)
    assert wait_for(lambda: playlist_has_segments(server, slug), timeout=30), publisher.errors()

    response = page.goto(f"{server.http}/watch/{slug}")
    assert response is not None and response.status == 200
    wait_for_playback(page, seconds=3)

    state = video_state(page)
    assert state["videoWidth"] == PUBLISHED_WIDTH
    assert state["engine"] == "hls.js"
    assert state["lastFatalError"] is None, state
    assert state["state"] == "live"
    assert page.locator("#live-badge").is_visible()
    assert page.locator("#uptime").inner_text().strip() != ""
    assert page.locator("#resolution").inner_text() == "640×360"
    assert page_log.csp_violations() == []
    assert page_log.unexpected_console_errors(EXPECTED_CONSOLE) == []
    screenshot(page, "watch-live")


def test_watch_page_before_publish_starts_by_itself_and_ends(
    server: Server,
    publishers: PublisherFactory,
    page: Page,
    page_log: PageLog,
    screenshot: Callable[[Page, str], Path],
) -> None:
    info = server.create_stream("Starts by itself", slug="later")
    page.goto(f"{server.http}/watch/{info.slug}")
    assert page.locator("#watch").get_attribute("data-state") == "offline"
    assert page.locator("#slate-offline").is_visible()
    assert "offline" in page.locator("#slate-offline").inner_text()
    screenshot(page, "watch-offline")
    # Survives only if the page is never reloaded.
    page.evaluate("() => { window.streamitTestMarker = 'same page'; }")

    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=120)
    page.wait_for_function(
        "() => document.getElementById('watch').dataset.state === 'live'", timeout=60_000, polling=200
    )
    wait_for_playback(page, seconds=3)
    state = video_state(page)
    assert state["videoWidth"] == PUBLISHED_WIDTH
    assert state["lastFatalError"] is None, state
    assert page.evaluate("() => window.streamitTestMarker") == "same page"
    assert not page.locator("#slate-offline").is_visible()

    publisher.stop()
    page.wait_for_function(
        "() => document.getElementById('watch').dataset.state === 'ended'", timeout=60_000, polling=200
    )
    assert page.locator("#slate-ended").is_visible()
    assert "has ended" in page.locator("#slate-ended").inner_text()
    assert "It ended at" in page.locator("#slate-ended").inner_text()
    assert page.locator("#offline-badge").inner_text() == "ENDED"
    assert not page.locator("#video").is_visible()
    assert page.evaluate("() => window.streamitTestMarker") == "same page"
    assert page_log.csp_violations() == []
    assert page_log.unexpected_console_errors(EXPECTED_CONSOLE) == []
    screenshot(page, "watch-ended")


def test_player_recovers_from_network_loss_and_says_so(
    server: Server, publishers: PublisherFactory, page: Page, page_log: PageLog
) -> None:
    slug, publisher = publish(server, publishers, "flaky", seconds=180)
    assert wait_for(lambda: playlist_has_segments(server, slug), timeout=30), publisher.errors()
    page.goto(f"{server.http}/watch/{slug}")
    wait_for_playback(page, seconds=1)

    page.context.set_offline(True)
    # The buffer (a few segments) runs dry, hls.js gives up its own retries, and the page says so in words.
    page.wait_for_function(
        "() => document.getElementById('player-error').textContent.trim() !== ''", timeout=90_000, polling=250
    )
    message = page.locator("#player-error").inner_text()
    assert "retrying" in message.lower() or "lost contact" in message.lower(), message

    page.context.set_offline(False)
    wait_for_playback(page, seconds=3, timeout_ms=90_000)
    page.wait_for_function(
        "() => document.getElementById('player-error').textContent.trim() === ''", timeout=60_000, polling=250
    )
    assert video_state(page)["state"] == "live"
    assert page_log.csp_violations() == []


def test_watch_page_fits_a_phone(
    server: Server,
    publishers: PublisherFactory,
    phone_page: Page,
    screenshot: Callable[[Page, str], Path],
) -> None:
    slug, publisher = publish(server, publishers, "phone", seconds=60)
    assert wait_for(lambda: playlist_has_segments(server, slug), timeout=30), publisher.errors()
    phone_page.goto(f"{server.http}/watch/{slug}")
    wait_for_playback(phone_page, seconds=1)
    assert horizontal_overflow(phone_page) <= 0
    assert phone_page.evaluate("() => document.documentElement.scrollWidth") <= 360
    screenshot(phone_page, "watch-phone")


def test_unknown_stream_is_a_404_page(server: Server, page: Page) -> None:
    response = page.goto(f"{server.http}/watch/no-such-stream")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Stream not found"


def test_keyboard_reaches_the_player_controls_with_visible_focus(server: Server, page: Page) -> None:
    info = server.create_stream("Keyboard")
    page.goto(f"{server.http}/watch/{info.slug}")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {text: el.textContent.trim(), outline: style.outlineStyle, width: style.outlineWidth};
        }"""
    )
    assert focused["text"] == "Skip to content"
    assert focused["outline"] != "none" and focused["width"] != "0px"


def test_without_hls_js_the_page_says_so_and_falls_back_to_native_hls(
    tmp_path: Path, ffmpeg: str, publishers: PublisherFactory, page: Page, page_log: PageLog
) -> None:
    empty = tmp_path / "empty-node-modules"
    empty.mkdir()
    srv = start_server(
        tmp_path / "data",
        tmp_path / "serve.log",
        free_port(),
        free_port(),
        env={"STREAMIT_WEB_VENDOR_DIR": str(empty)},
    )
    try:
        assert "hls.js is not installed" in srv.log()
        slug, publisher = publish(srv, publishers, "no-library", seconds=60)
        assert wait_for(lambda: playlist_has_segments(srv, slug), timeout=30), publisher.errors()
        page.goto(f"{srv.http}/watch/{slug}")
        message = page.locator("#player-error").inner_text()
        assert "not installed" in message and "npm ci" in message
        native = page.evaluate(
            "() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl') !== ''"
        )
        if native:
            wait_for_playback(page, seconds=3)
            assert video_state(page)["engine"] == "native"
        else:
            page.wait_for_function(
                "() => document.getElementById('video').dataset.playerEngine === 'none'", timeout=30_000
            )
            assert "no native HLS" in page.locator("#player-error").inner_text()
        assert page_log.csp_violations() == []
        assert page_log.unexpected_console_errors(EXPECTED_CONSOLE) == []
    finally:
        stop_server(srv)
