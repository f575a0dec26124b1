"""A real nginx-rtmp (Debian's nginx + libnginx-mod-rtmp) authorises publishers through Streamit's hooks.

nginx-rtmp 1.2.2's HLS module sees the publish name before ``on_publish`` renames it, so HLS runs in a
second application fed by ``push`` (which carries the renamed name); see :mod:`streamit.api.hooks`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.conftest import PublisherFactory, Server, free_port, wait_for
from tests.interop.nginx import main_context, start_nginx, stop_nginx

pytestmark = pytest.mark.interop

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
    return (
        main_context(root)
        + f"""
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
    )


@pytest.fixture
def nginx(request: pytest.FixtureRequest, tmp_path: Path, server: Server) -> Iterator[Nginx]:
    """nginx with the RTMP module; ``notify_method`` ``post`` unless parametrised with ``get``."""
    notify_method: str = getattr(request, "param", "post")
    root = tmp_path / "nginx"
    port = free_port()
    process = start_nginx(root, nginx_config(root, port, server.http, notify_method), [port])
    running = Nginx(process, port, root, root / "hls", root / "logs")
    yield running
    stop_nginx(process)


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
