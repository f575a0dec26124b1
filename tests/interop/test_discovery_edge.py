"""``streamit discovery`` registers what a real nginx-rtmp writes; ``streamit edge`` serves it from Redis.

Real processes throughout: nginx (Debian's, with libnginx-mod-rtmp) packages HLS and serves the folder over
HTTP as the origin, ffmpeg publishes to it, and Streamit's discovery watcher and edge find each other
through a real Redis under a key prefix private to this test.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import PublisherFactory, RedisTarget, ffprobe_codecs, free_port, wait_for
from tests.interop.nginx import main_context, start_nginx, stop_nginx

pytestmark = pytest.mark.interop

SLUG = "show"


@dataclass
class NginxOrigin:
    """nginx-rtmp packaging HLS into ``hls`` and serving that folder over HTTP."""

    process: subprocess.Popen[bytes]
    rtmp_port: int
    http_port: int
    root: Path
    hls: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def publish_url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{name}"

    def error_log(self) -> str:
        return (self.root / "logs" / "error.log").read_text(errors="replace")


def nginx_config(root: Path, rtmp_port: int, http_port: int) -> str:
    temp = root / "temp"
    return (
        main_context(root)
        + f"""
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        application live {{
            live on;
            hls on;
            hls_path {root}/hls;
            hls_nested on;
            hls_fragment 1s;
            hls_playlist_length 4s;
            hls_cleanup off;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        root {root}/hls;
    }}
}}
"""
    )


@pytest.fixture
def nginx_origin(tmp_path: Path) -> Iterator[NginxOrigin]:
    root = tmp_path / "nginx"
    for sub in ("logs", "hls", "temp"):
        (root / sub).mkdir(parents=True)
    rtmp_port, http_port = free_port(), free_port()
    process = start_nginx(root, nginx_config(root, rtmp_port, http_port), [rtmp_port, http_port])
    origin = NginxOrigin(process, rtmp_port, http_port, root, root / "hls")
    yield origin
    stop_nginx(process)


class Role:
    """A ``streamit <role>`` process whose output goes to a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        env = {**os.environ, "STREAMIT_LOG_LEVEL": "INFO"}
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamit", *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM; the exit status, or a failure if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"did not stop on SIGTERM:\n{self.log()}")


@pytest.fixture
def roles() -> Iterator[list[Role]]:
    started: list[Role] = []
    yield started
    for role in started:
        if role.process.poll() is None:
            role.process.kill()
            role.process.wait()


def test_edge_serves_a_stream_that_discovery_found_in_nginx_rtmps_folder(
    tmp_path: Path,
    redis_target: RedisTarget,
    nginx_origin: NginxOrigin,
    roles: list[Role],
    publishers: PublisherFactory,
    ffprobe: str,
) -> None:
    secret = secrets.token_urlsafe(24)
    cluster = [
        "--redis-url",
        redis_target.url,
        "--cluster-secret",
        secret,
        "--redis-prefix",
        redis_target.prefix,
    ]
    discovery = Role(
        [
            "discovery",
            "--hls-dir",
            str(nginx_origin.hls),
            "--origin-url",
            nginx_origin.http,
            "--node",
            "nginx-origin",
            *cluster,
        ],
        tmp_path / "discovery.log",
    )
    roles.append(discovery)
    edge_port = free_port()
    edge = Role(["edge", "--http-port", str(edge_port), *cluster], tmp_path / "edge.log")
    roles.append(edge)
    edge_url = f"http://127.0.0.1:{edge_port}"
    playlist_url = f"{edge_url}/hls/{SLUG}/index.m3u8"
    assert wait_for(lambda: httpx.get(f"{edge_url}/healthz", timeout=1).status_code == 200, 30), edge.log()
    assert httpx.get(playlist_url, timeout=5).status_code == 404

    publisher = publishers.generated(nginx_origin.publish_url(SLUG), seconds=8)

    def playlist_with_segments() -> m3u8.M3U8 | None:
        response = httpx.get(playlist_url, timeout=5)
        if response.status_code != 200:
            return None
        parsed = m3u8.loads(response.text)
        return parsed if len(parsed.segments) >= 2 else None

    assert wait_for(playlist_with_segments, 20), (discovery.log(), edge.log(), nginx_origin.error_log())
    response = httpx.get(playlist_url, timeout=5)
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert "via" in response.headers
    playlist = m3u8.loads(response.text)
    assert playlist.target_duration is not None and not playlist.is_endlist

    segment_url = f"{edge_url}/hls/{SLUG}/{playlist.segments[-1].uri}"
    first = httpx.get(segment_url, timeout=5)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    second = httpx.get(segment_url, timeout=5)
    assert second.status_code == 200 and second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    segment = tmp_path / "segment.ts"
    segment.write_bytes(first.content)
    assert ffprobe_codecs(ffprobe, segment) >= {"h264", "aac"}

    assert publisher.wait(30) == 0, publisher.errors()
    stopped = time.monotonic()
    # Stale after 3 target durations without a rewrite, plus one rescan and the edge's 1 s location cache.
    deadline = 3 * playlist.target_duration + 5
    assert wait_for(lambda: httpx.get(playlist_url, timeout=5).status_code == 404, deadline), discovery.log()
    assert time.monotonic() - stopped >= 2 * playlist.target_duration
    # nginx-rtmp (hls_cleanup off) leaves the playlist behind without ENDLIST: it ended by going stale.
    assert b"#EXT-X-ENDLIST" not in (nginx_origin.hls / SLUG / "index.m3u8").read_bytes()
    assert list(redis_target.admin.scan_iter(match=redis_target.prefix + "*")) == []

    assert edge.terminate() == 0
    assert discovery.terminate() == 0
    for role in (discovery, edge):
        assert "Traceback" not in role.log(), role.log()
    assert secret not in discovery.log() and secret not in edge.log()
