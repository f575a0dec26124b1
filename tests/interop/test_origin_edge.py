"""``streamit origin`` registers its live streams in Redis; ``streamit edge`` follows them between origins.

Real processes throughout: Redis under a key prefix private to this test, two origins with their own data
directories, one edge, and ffmpeg publishing.  SIGKILL of the first origin stops its heartbeats, so its entry
expires and the edge answers 404; publishing the same slug to the second origin makes it playable again.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import (
    PublisherFactory,
    RedisTarget,
    StreamInfo,
    ffprobe_codecs,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.interop


SLUG = "show"
TTL = 3.0


@dataclass
class Node:
    """A ``streamit`` process (origin or edge) with its log file."""

    process: subprocess.Popen[bytes]
    http_port: int
    log_path: Path
    rtmp_port: int = 0
    data_dir: Path | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def create_stream(self, slug: str) -> StreamInfo:
        assert self.data_dir is not None
        command = [sys.executable, "-m", "streamit", "streams", "create", "Show", "--slug", slug, "--json"]
        command += ["--data-dir", str(self.data_dir), "--rtmp-port", str(self.rtmp_port)]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return StreamInfo(**json.loads(result.stdout))

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM; the exit status, or a failure if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"did not stop on SIGTERM:\n{self.log()}")


class Cluster:
    """Starts ``streamit`` roles sharing one Redis prefix and secret; kills whatever still runs at the end."""

    def __init__(self, directory: Path, target: RedisTarget) -> None:
        self.directory = directory
        self.secret = secrets.token_urlsafe(24)
        self.flags = ["--redis-url", target.url, "--cluster-secret", self.secret]
        self.flags += ["--redis-prefix", target.prefix]
        self.nodes: list[Node] = []

    def _start(
        self, name: str, args: list[str], http_port: int, rtmp_port: int = 0, data_dir: Path | None = None
    ) -> Node:
        env = {**os.environ, "STREAMIT_LOG_LEVEL": "INFO", "STREAMIT_NODE_ID": name}
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamit", *args, *self.flags],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        node = Node(process, http_port, log_path, rtmp_port, data_dir)
        self.nodes.append(node)
        healthy = wait_for(
            lambda: (
                node.process.poll() is not None
                or httpx.get(f"{node.http}/healthz", timeout=1).status_code == 200
            ),
            30,
        )
        assert healthy and node.process.poll() is None, node.log()
        return node

    def origin(self, name: str) -> Node:
        data_dir = self.directory / name
        http_port, rtmp_port = free_port(), free_port()
        args = ["origin", "--data-dir", str(data_dir), "--http-port", str(http_port)]
        args += ["--rtmp-port", str(rtmp_port), "--public-url", f"http://127.0.0.1:{http_port}"]
        args += ["--discovery-ttl", str(TTL)]
        return self._start(name, args, http_port, rtmp_port, data_dir)

    def edge(self, name: str) -> Node:
        http_port = free_port()
        return self._start(name, ["edge", "--http-port", str(http_port)], http_port)

    def logs(self) -> str:
        return "\n".join(f"--- {node.log_path.name}\n{node.log()}" for node in self.nodes)

    def kill_all(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


@pytest.fixture
def cluster(tmp_path: Path, redis_target: RedisTarget) -> Iterator[Cluster]:
    started = Cluster(tmp_path, redis_target)
    yield started
    started.kill_all()


def registered(target: RedisTarget, slug: str) -> dict[str, object] | None:
    """The registry entry of ``slug`` as stored in Redis (its signed JSON), or None."""
    raw = target.admin.hget(f"{target.prefix}stream:{slug}", "entry")
    if raw is None:
        return None
    entry: dict[str, object] = json.loads(raw)
    return entry


def test_edge_follows_a_stream_from_a_killed_origin_to_its_new_origin(
    tmp_path: Path,
    cluster: Cluster,
    redis_target: RedisTarget,
    publishers: PublisherFactory,
    ffprobe: str,
) -> None:
    origin_a = cluster.origin("origin-a")
    origin_b = cluster.origin("origin-b")
    edge = cluster.edge("edge-1")
    playlist_url = f"{edge.http}/hls/{SLUG}/index.m3u8"
    assert httpx.get(playlist_url, timeout=5).status_code == 404

    stream_a = origin_a.create_stream(SLUG)
    publishers.generated(origin_a.rtmp_url(stream_a.stream_key), seconds=60)

    def playable() -> m3u8.M3U8 | None:
        response = httpx.get(playlist_url, timeout=5)
        if response.status_code != 200:
            return None
        parsed = m3u8.loads(response.text)
        return parsed if len(parsed.segments) >= 2 and not parsed.is_endlist else None

    def assert_plays(origin: Node) -> None:
        assert wait_for(playable, 20), cluster.logs()
        playlist = playable()
        assert playlist is not None
        segment = httpx.get(f"{edge.http}/hls/{SLUG}/{playlist.segments[-1].uri}", timeout=5)
        assert segment.status_code == 200, segment.text
        path = tmp_path / f"{origin.log_path.stem}.ts"
        path.write_bytes(segment.content)
        assert ffprobe_codecs(ffprobe, path) >= {"h264", "aac"}
        entry = registered(redis_target, SLUG)
        assert entry is not None and entry["origin_url"] == origin.http, entry

    assert_plays(origin_a)
    entry = registered(redis_target, SLUG)
    assert entry is not None
    assert wait_for(lambda: "video_codec" in str(registered(redis_target, SLUG)), 5), entry
    entry = registered(redis_target, SLUG)
    assert entry is not None
    metadata = entry["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["video_codec"] == "h264" and metadata["width"] == "640", metadata
    assert metadata["audio_codec"] == "aac", metadata

    origin_a.process.kill()
    origin_a.process.wait()
    killed = time.monotonic()
    assert wait_for(lambda: httpx.get(playlist_url, timeout=5).status_code == 404, TTL + 2), cluster.logs()
    assert time.monotonic() - killed <= TTL + 2
    assert registered(redis_target, SLUG) is None

    stream_b = origin_b.create_stream(SLUG)
    publisher_b = publishers.generated(origin_b.rtmp_url(stream_b.stream_key), seconds=8)
    assert_plays(origin_b)

    # Once the publish ends the origin withdraws the entry at once, without waiting for the TTL.
    assert publisher_b.wait(30) == 0, publisher_b.errors()
    assert wait_for(lambda: registered(redis_target, SLUG) is None, 2), origin_b.log()

    assert edge.terminate() == 0
    assert origin_b.terminate() == 0
    assert list(redis_target.admin.scan_iter(match=redis_target.prefix + "*")) == []
    for node in (origin_b, edge):
        assert "Traceback" not in node.log(), node.log()
        assert cluster.secret not in node.log()
