"""Publish sessions and key rotation with a real ffmpeg publisher against ``streamit serve``."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.interop.conftest import PublisherFactory, Server, wait_for

pytestmark = pytest.mark.interop


def test_a_publish_is_recorded_as_a_session(server: Server, publishers: PublisherFactory) -> None:
    info = server.create_stream("Sessions", slug="sessions")
    token = server.create_token()
    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=7)
    assert publisher.wait(30) == 0, publisher.errors()

    def closed() -> bool:
        listed = server.owner_get("/api/v1/streams/sessions/sessions", token).json()["sessions"]
        return len(listed) == 1 and listed[0]["ended_at"] is not None

    assert wait_for(closed, timeout=5)
    session = server.owner_get("/api/v1/streams/sessions/sessions", token).json()["sessions"][0]
    assert session["end_reason"] == "unpublish"
    assert session["remote_addr"].startswith("127.0.0.1:")
    assert (session["width"], session["height"]) == (640, 360)
    assert (session["video_codec"], session["audio_codec"]) == ("h264", "aac")
    # 800 kbit/s video + 96 kbit/s audio for 7 s, in FLV payload bytes.
    assert 300_000 < session["bytes_in"] < 1_500_000
    assert 300 < session["avg_bitrate_kbps"] < 1500
    assert session["peak_bitrate_kbps"] >= session["avg_bitrate_kbps"]
    assert server.owner_get("/api/v1/streams/sessions/sessions", "wrong-token").status_code == 401


def test_rotating_the_key_disconnects_the_publisher(server: Server, publishers: PublisherFactory) -> None:
    info = server.create_stream("Rotate", slug="rotate")
    token = server.create_token()
    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    assert wait_for(lambda: server.stream_json("rotate")["status"] == "LIVE", timeout=15)
    time.sleep(1)
    response = httpx.post(
        f"{server.http}/api/v1/streams/rotate/rotate-key",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    new_key = response.json()["stream_key"]
    assert new_key and new_key != info.stream_key
    try:
        assert publisher.wait(10) != 0
    except subprocess.TimeoutExpired:
        pytest.fail("the publisher on the old key was not disconnected")
    assert wait_for(lambda: server.stream_json("rotate")["status"] == "ENDED", timeout=5)
    # The old key no longer publishes; the new one does.
    old = publishers.generated(server.rtmp_url(info.stream_key), seconds=3)
    assert old.wait(20) != 0
    fresh = publishers.generated(server.rtmp_url(new_key), seconds=4)
    assert fresh.wait(30) == 0, fresh.errors()
    assert info.stream_key not in server.log() and new_key not in server.log()
