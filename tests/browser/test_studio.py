"""The studio in Chromium against ``streamit serve``: sign in, create a stream, reveal its key, publish with
it through ffmpeg and watch the studio turn LIVE without a reload."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import PageLog, horizontal_overflow
from tests.interop.conftest import PublisherFactory, Server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.interop

PASSWORD = "studio password"
# Chromium logs every non-2xx load (the 401 of a wrong password, the preview's playlist before the first
# segment) as a console error; those are expected here.
EXPECTED_CONSOLE = ("Failed to load resource",)


def create_user(server: Server, username: str, password: str, *, admin: bool = False) -> None:
    """``streamit users create`` against the server's data directory, password on stdin."""
    command = [sys.executable, "-m", "streamit", "users", "create", username, "--password-stdin"]
    command += ["--data-dir", str(server.data_dir)] + (["--admin"] if admin else [])
    result = subprocess.run(command, input=password + "\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def sign_in_with_keyboard(page: Page, username: str, password: str) -> None:
    page.locator("#username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")


def test_studio_flow_sign_in_create_reveal_publish_live(
    server: Server,
    publishers: PublisherFactory,
    page: Page,
    page_log: PageLog,
    screenshot: Callable[[Page, str], Path],
) -> None:
    create_user(server, "alice", PASSWORD)

    # Signed out: the studio sends us to the sign-in page, remembering where we wanted to go.
    response = page.goto(f"{server.http}/studio")
    assert response is not None
    assert page.url == f"{server.http}/studio/login?next=/studio"
    assert page.locator("h1").inner_text() == "Sign in to the studio"

    # A wrong password is refused with a message, and no session.
    with page.expect_navigation() as refused:
        sign_in_with_keyboard(page, "alice", "not my password")
    refused_response = refused.value
    assert refused_response is not None and refused_response.status == 401
    assert page.locator("#login-error").inner_text() == "Wrong username or password."
    assert not any(c["name"] == "streamit_session" for c in page.context.cookies())

    page.locator("#username").fill("")
    with page.expect_navigation():
        sign_in_with_keyboard(page, "alice", PASSWORD)
    assert page.url == f"{server.http}/studio"
    (session_cookie,) = [c for c in page.context.cookies() if c["name"] == "streamit_session"]
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Lax"
    assert "You have no streams yet" in page.locator("main").inner_text()

    # Create a stream through the form.
    page.get_by_role("link", name="New stream").first.click()
    page.get_by_label("Title").fill("Studio test show")
    page.get_by_label("Address").fill("studio-test")
    page.get_by_label("Description").fill("Made by the browser test.")
    with page.expect_navigation():
        page.get_by_role("button", name="Create stream").click()
    assert page.url == f"{server.http}/studio/streams/studio-test"
    assert page.locator("#live-badge").inner_text() == "DRAFT"
    assert page.locator("#rtmp-server").input_value() == f"rtmp://localhost:{server.rtmp_port}/live"

    # The key is not in the page until revealed.
    key_field = page.get_by_label("Stream key")
    assert key_field.input_value() == ""
    assert key_field.get_attribute("type") == "password"
    assert page.get_by_role("button", name="Copy key").is_disabled()
    page.get_by_role("button", name="Reveal key").click()
    page.wait_for_function("() => document.getElementById('stream-key').value.startsWith('sk_')")
    key = key_field.input_value()
    assert key_field.get_attribute("type") == "text"

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.http)
    page.get_by_role("button", name="Copy key").click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.includes('copied')")
    assert page.evaluate("() => navigator.clipboard.readText()") == key

    # Publish with the revealed key; the page must turn LIVE by itself (the marker dies on a reload).
    page.evaluate("() => { window.streamitTestMarker = 'same page'; }")
    publisher = publishers.generated(server.rtmp_url(key), seconds=120)
    page.wait_for_function(
        "() => document.getElementById('live-badge').textContent === 'LIVE'", timeout=60_000, polling=250
    )
    assert page.locator("#live-status").inner_text() == "Live now."
    assert page.evaluate("() => window.streamitTestMarker") == "same page"
    assert publisher.poll() is None, publisher.errors()

    # The preview plays the stream, and the history lists the open session.
    page.wait_for_function(
        "() => document.getElementById('preview').currentTime > 1", timeout=60_000, polling=250
    )
    assert page.evaluate("() => document.getElementById('preview').videoWidth") == 640
    page.wait_for_function(
        "() => document.getElementById('fact-video').textContent.includes('640×360')", timeout=30_000
    )
    assert "live" in page.locator("#session-rows").inner_text()
    assert page.evaluate("() => window.streamitTestMarker") == "same page"
    screenshot(page, "studio")

    # It fits a phone.
    page.set_viewport_size({"width": 360, "height": 740})
    assert horizontal_overflow(page) <= 0
    page.goto(f"{server.http}/studio")
    assert horizontal_overflow(page) <= 0
    assert page.locator("td .badge").inner_text() == "LIVE"
    # The list follows the stream too: it turns ENDED when the publisher stops, without a reload.
    publisher.stop()
    page.wait_for_function(
        "() => document.querySelector('td .badge').textContent === 'ENDED'", timeout=60_000, polling=250
    )

    assert page_log.csp_violations() == []
    assert page_log.unexpected_console_errors(EXPECTED_CONSOLE) == []


def test_rotating_the_key_disconnects_the_publisher(
    server: Server, publishers: PublisherFactory, page: Page, page_log: PageLog
) -> None:
    create_user(server, "root", PASSWORD, admin=True)
    info = server.create_stream("Rotate me", slug="rotate-me")
    page.goto(f"{server.http}/studio/login?next=/studio/streams/rotate-me")
    with page.expect_navigation():
        sign_in_with_keyboard(page, "root", PASSWORD)
    assert page.url == f"{server.http}/studio/streams/rotate-me"

    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=120)
    page.wait_for_function(
        "() => document.getElementById('live-badge').textContent === 'LIVE'", timeout=60_000, polling=250
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Rotate key").click()
    assert "The old key no longer works" in page.locator("main").inner_text()
    publisher.wait(timeout=30)  # kicked off: ffmpeg exits
    page.wait_for_function(
        "() => document.getElementById('live-badge').textContent === 'ENDED'", timeout=60_000, polling=250
    )
    page.get_by_role("button", name="Reveal key").click()
    page.wait_for_function("() => document.getElementById('stream-key').value.startsWith('sk_')")
    assert page.get_by_label("Stream key").input_value() != info.stream_key
    assert page_log.csp_violations() == []


def test_signed_out_studio_pages_redirect_to_sign_in(server: Server, page: Page) -> None:
    info = server.create_stream("Private", slug="private")
    page.goto(f"{server.http}/studio/streams/{info.slug}")
    assert page.url == f"{server.http}/studio/login?next=/studio/streams/{info.slug}"
    assert page.get_by_label("Username").is_visible() and page.get_by_label("Password").is_visible()
    assert info.stream_key not in page.content()


def test_studio_works_on_a_phone_with_the_keyboard_alone(
    server: Server, phone_page: Page, page_log: PageLog, screenshot: Callable[[Page, str], Path]
) -> None:
    page = phone_page
    create_user(server, "bob", PASSWORD)
    page.goto(f"{server.http}/studio")
    assert horizontal_overflow(page) <= 0
    with page.expect_navigation():
        sign_in_with_keyboard(page, "bob", PASSWORD)
    page.goto(f"{server.http}/studio/new")
    assert horizontal_overflow(page) <= 0
    page.locator("#title").focus()
    page.keyboard.type("Pocket show with a rather long title that has to wrap on a small screen")
    page.keyboard.press("Tab")
    page.keyboard.type("pocket")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{server.http}/studio/streams/pocket"
    assert horizontal_overflow(page) <= 0

    # Tab from the server field to the Reveal button; Enter reveals the key; focus stays visible.
    page.locator("#rtmp-server").focus()
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "reveal-key":
            break
    assert page.evaluate("() => document.activeElement.id") == "reveal-key"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('stream-key').value.startsWith('sk_')")
    assert horizontal_overflow(page) <= 0
    screenshot(page, "studio-phone")

    # Without the Clipboard API (plain http on another host) Copy selects the key for Ctrl+C.
    page.evaluate("() => Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    page.get_by_role("button", name="Copy key").click()
    page.wait_for_function("() => document.getElementById('copy-status').textContent.includes('Stream key')")
    assert page.evaluate("() => document.activeElement.id") == "stream-key"
    selected = page.evaluate(
        "() => { const el = document.activeElement;"
        " return el.value.slice(el.selectionStart, el.selectionEnd); }"
    )
    assert selected.startswith("sk_") and selected == page.get_by_label("Stream key").input_value()
    page.goto(f"{server.http}/studio/streams/pocket/delete")
    assert horizontal_overflow(page) <= 0
    with page.expect_navigation():
        page.get_by_role("button", name="Delete stream").click()
    assert page.url == f"{server.http}/studio"
    assert "You have no streams yet" in page.locator("main").inner_text()
    assert page_log.csp_violations() == []
    assert page_log.unexpected_console_errors(EXPECTED_CONSOLE) == []
