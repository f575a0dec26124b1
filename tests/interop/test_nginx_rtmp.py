"""A real nginx-rtmp (Debian's nginx + libnginx-mod-rtmp) authorises publishers through Streamit's hooks.

nginx-rtmp 1.2.2's HLS module sees the publish name before ``on_publish`` renames it, so HLS runs in a
second application fed by ``push`` (which carries the renamed name); see :mod:`streamit.api.hooks`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, require_tool
from tests.interop.conftest import PublisherFactory, Server, free_port, wait_for

pytestmark = pytest.mark.interop

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
HOOKS = "/api/v1/hooks/nginx-rtmp"


@dataclass
class Nginx:
    """A running nginx with the RTMP module."""

    process: subprocess.Popen[bytes]
    port: int
    root: Path
    hls: Path
    logs: Path

    def publish_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def error_log(self) -> str:
        return (self.logs / "error.log").read_text(errors="replace")


def nginx_config(root: Path, port: int, streamit_http: str, notify_method: str) -> str:
    hooks = f"{streamit_http}{HOOKS}"
    # Running as root, workers would switch to "nobody", which cannot enter pytest's private tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""
load_module {RTMP_MODULE};
{user}daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            on_publish {hooks}/on_publish;
            on_update {hooks}/on_update;
            on_publish_done {hooks}/on_publish_done;
            notify_update_timeout 1s;
            notify_method {notify_method};
            push rtmp://127.0.0.1:{port}/hls;
        }}
        application hls {{
            live on;
            allow publish 127.0.0.1;
            deny publish all;
            hls on;
            hls_path {root}/hls;
            hls_nested on;
            hls_fragment 1s;
            hls_playlist_length 4s;
            hls_cleanup off;
        }}
    }}
}}
"""


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def nginx(request: pytest.FixtureRequest, tmp_path: Path, server: Server) -> Iterator[Nginx]:
    """nginx with the RTMP module; ``notify_method`` ``post`` unless parametrised with ``get``."""
    notify_method: str = getattr(request, "param", "post")
    binary = require_tool("nginx")
    if not RTMP_MODULE.exists():
        message = f"{RTMP_MODULE} is missing (Debian package libnginx-mod-rtmp)"
        if IN_CI:
            pytest.fail(message + "; under CI it must be present")
        pytest.skip(message)
    root = tmp_path / "nginx"
    (root / "logs").mkdir(parents=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(nginx_config(root, port, server.http, notify_method))
    with (root / "logs" / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", f"{root}/", "-e", str(root / "logs" / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    running = Nginx(process, port, root, root / "hls", root / "logs")
    if not wait_for(lambda: accepts_connections(port) or process.poll() is not None, 10):
        process.kill()
    if process.poll() is not None:
        pytest.fail(
            f"nginx did not start:\n{(root / 'logs' / 'stderr.log').read_text()}\n{running.error_log()}"
        )
    yield running
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def status(server: Server, slug: str) -> object:
    return server.stream_json(slug)["status"]


def playlist_segments(playlist: Path) -> list[str]:
    if not playlist.exists():
        return []
    return [line for line in playlist.read_text().splitlines() if line.endswith(".ts")]


def paths_under(*roots: Path) -> list[str]:
    return [str(path) for root in roots if root.exists() for path in root.rglob("*")]


@pytest.mark.parametrize("nginx", ["post", "get"], indirect=True)
def test_publish_through_nginx_writes_hls_under_the_slug(
    server: Server, nginx: Nginx, publishers: PublisherFactory
) -> None:
    stream = server.create_stream("Nginx Show")
    assert status(server, stream.slug) == "DRAFT"
    publisher = publishers.generated(nginx.publish_url(stream.stream_key), seconds=5)
    assert wait_for(lambda: status(server, stream.slug) == "LIVE", 15), nginx.error_log()
    playlist = nginx.hls / stream.slug / "index.m3u8"
    assert wait_for(lambda: len(playlist_segments(playlist)) >= 2, 20), paths_under(nginx.hls)
    assert publisher.wait(30) == 0, publisher.errors()
    assert wait_for(lambda: status(server, stream.slug) == "ENDED", 15), server.log()
    record = server.stream_json(stream.slug)
    assert record["started_at"] and record["ended_at"]

    # HLS exists only under the public slug; the key is in no path and no file nginx or Streamit wrote.
    assert sorted(p.name for p in nginx.hls.iterdir()) == [stream.slug]
    assert all(stream.stream_key not in path for path in paths_under(nginx.root))
    for path in [*nginx.hls.rglob("*"), *nginx.logs.rglob("*")]:
        if path.is_file():
            assert stream.stream_key.encode() not in path.read_bytes(), path
    assert stream.stream_key not in server.log()


def test_wrong_key_is_refused_by_nginx(server: Server, nginx: Nginx, publishers: PublisherFactory) -> None:
    stream = server.create_stream("Nginx Refused")
    wrong = stream.stream_key[:-4] + "xxxx"
    publisher = publishers.generated(nginx.publish_url(wrong), seconds=3)
    assert publisher.wait(30) != 0
    assert status(server, stream.slug) == "DRAFT"
    assert paths_under(nginx.hls) == [] or not any(nginx.hls.iterdir())


def test_rotating_the_key_drops_the_nginx_publisher(
    server: Server, nginx: Nginx, publishers: PublisherFactory
) -> None:
    stream = server.create_stream("Nginx Rotated")
    publisher = publishers.generated(nginx.publish_url(stream.stream_key), seconds=60)
    assert wait_for(lambda: status(server, stream.slug) == "LIVE", 15), nginx.error_log()
    server.cli("streams", "rotate-key", stream.slug)
    started = time.monotonic()
    # on_update (every second here) now gets 403, so nginx-rtmp disconnects the publisher.
    assert publisher.wait(20) != 0
    assert time.monotonic() - started < 15
    assert wait_for(lambda: status(server, stream.slug) == "ENDED", 15), server.log()
