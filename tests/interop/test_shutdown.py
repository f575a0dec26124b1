"""Stopping ``streamit serve`` — cleanly or by a crash — never leaves a stream LIVE or a playlist open."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import PublisherFactory, Server, start_server, stop_server, wait_for

pytestmark = pytest.mark.interop


def wait_until_live_with_segments(server: Server, slug: str) -> None:
    def live() -> bool:
        response = httpx.get(f"{server.http}/hls/{slug}/index.m3u8", timeout=5)
        return response.status_code == 200 and len(m3u8.loads(response.text).segments) >= 2

    assert wait_for(live, timeout=20), server.log()
    assert server.stream_json(slug)["status"] == "LIVE"


def status_from_cli(server: Server, slug: str) -> str:
    shown = json.loads(server.cli("streams", "show", slug, "--json"))
    status: str = shown["status"]
    return status


def test_sigterm_ends_streams_cleanly(server: Server, publishers: PublisherFactory) -> None:
    info = server.create_stream("Shutdown", slug="shutdown")
    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    wait_until_live_with_segments(server, "shutdown")
    started = time.monotonic()
    stop_server(server)
    assert time.monotonic() - started < 5, "shutdown took too long"
    assert server.process.returncode == 0, server.log()
    playlist = (server.data_dir / "hls" / "shutdown" / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    assert status_from_cli(server, "shutdown") == "ENDED"
    assert publisher.wait(10) != 0, "the publisher was not disconnected"


def test_restart_after_a_crash_ends_streams_left_live(
    server: Server, publishers: PublisherFactory, tmp_path: Path
) -> None:
    info = server.create_stream("Crash", slug="crash")
    publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    wait_until_live_with_segments(server, "crash")
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    assert status_from_cli(server, "crash") == "LIVE"  # nothing could record the end
    restarted = start_server(server.data_dir, tmp_path / "restart.log", server.rtmp_port, server.http_port)
    try:
        assert restarted.stream_json("crash")["status"] == "ENDED"
        assert "closed 1 session(s)" in restarted.log()
        sessions = restarted.owner_get("/api/v1/streams/crash/sessions", restarted.create_token()).json()
        assert [s["end_reason"] for s in sessions["sessions"]] == ["crash"]
        playlist = m3u8.loads(httpx.get(f"{restarted.http}/hls/crash/index.m3u8", timeout=5).text)
        assert playlist.is_endlist and len(playlist.segments) >= 2
    finally:
        stop_server(restarted)
