"""GStreamer publishes to ``streamit serve``: ``rtmpsink`` (librtmp, the lineage of OBS's RTMP output) and
``rtmp2sink`` (GStreamer's own RTMP client)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.conftest import require_tool
from tests.interop.conftest import Server, ffprobe_codecs, wait_for

pytestmark = pytest.mark.interop


def gstreamer_pipeline(sink: str, url: str) -> list[str]:
    """5 s of 320x240 H.264 + AAC in FLV, as an encoder would send it live."""
    return [
        "-q",
        "videotestsrc", "num-buffers=150", "is-live=true",
        "!", "video/x-raw,width=320,height=240,framerate=30/1",
        "!", "x264enc", "key-int-max=30", "tune=zerolatency", "speed-preset=veryfast",
        "!", "h264parse", "!", "flvmux", "name=mux", "streamable=true",
        "!", sink, f"location={url}",
        "audiotestsrc", "num-buffers=235", "is-live=true",
        "!", "audio/x-raw,rate=48000,channels=2",
        "!", "avenc_aac", "!", "aacparse", "!", "mux.",
    ]  # fmt: skip


@pytest.mark.parametrize("sink", ["rtmpsink", "rtmp2sink"])
def test_gstreamer_publishes(server: Server, ffprobe: str, tmp_path: Path, sink: str) -> None:
    gst = require_tool("gst-launch-1.0")
    info = server.create_stream(f"GStreamer {sink}", slug=sink)
    result = subprocess.run(
        [gst, *gstreamer_pipeline(sink, server.rtmp_url(info.stream_key))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    playlist_url = f"{server.http}/hls/{sink}/index.m3u8"
    assert wait_for(lambda: "#EXT-X-ENDLIST" in httpx.get(playlist_url, timeout=5).text, timeout=5)
    playlist = m3u8.loads(httpx.get(playlist_url, timeout=5).text)
    assert sum(float(s.duration) for s in playlist.segments) == pytest.approx(5, abs=1.2)
    segment = tmp_path / "first.ts"
    segment.write_bytes(httpx.get(f"{server.http}/hls/{sink}/{playlist.segments[0].uri}", timeout=5).content)
    assert ffprobe_codecs(ffprobe, segment) == {"h264", "aac"}
    stream = server.stream_json(sink)
    assert stream["status"] == "ENDED"
    media = stream["media"]
    assert isinstance(media, dict) and media["video"]["width"] == 320
