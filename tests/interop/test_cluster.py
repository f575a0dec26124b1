"""The whole cluster as separate processes: ``api`` + two ``origin`` + two ``edge`` on PostgreSQL and Redis.

ffmpeg publishes to origin A; the stream plays through both edges (ffprobe, m3u8); 50 simulated viewers per
edge follow it for 20 s while the nodes' Redis connections are killed, and origin A serves at most one fetch
per segment per edge.  SIGKILL of origin A: the API says ENDED ("origin lost") and both edges answer 404
within TTL + 2 s; publishing the same stream to origin B brings it back through both edges.  A second test
restarts a private Redis under a running cluster.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import m3u8
import pytest
import redis

from tests.interop.cluster import TTL, Cluster, Node, PrivateRedis, postgres_url, registered
from tests.interop.conftest import PublisherFactory, RedisTarget, ffprobe_codecs, wait_for

__all__ = ["postgres_url"]

pytestmark = pytest.mark.interop

SLUG = "show"
VIEWERS_PER_EDGE = 50
VIEWING_SECONDS = 20.0


@pytest.fixture
def pg_cluster(tmp_path: Path, redis_target: RedisTarget, postgres_url: str) -> Iterator[Cluster]:
    started = Cluster(tmp_path, redis_target, database_url=postgres_url)
    yield started
    started.kill_all()


@dataclass
class Audience:
    """What simulated viewers of one edge saw."""

    segments: set[str] = field(default_factory=set)
    playlist_requests: int = 0
    segment_requests: int = 0
    errors: list[str] = field(default_factory=list)
    longest_wait: float = 0.0


async def _viewer(client: httpx.AsyncClient, base: str, audience: Audience, deadline: float) -> None:
    """Polls the live playlist twice per target duration and fetches each new segment, as a player does."""
    seen: set[str] = set()
    last_new = time.monotonic()
    while time.monotonic() < deadline:
        try:
            response = await client.get(f"{base}/hls/{SLUG}/index.m3u8")
            audience.playlist_requests += 1
            if response.status_code != 200:
                audience.errors.append(f"playlist {response.status_code}")
            else:
                uris = [segment.uri for segment in m3u8.loads(response.text).segments]
                # A player joins three segments from the live end (RFC 8216 §6.3.3), then follows.
                for uri in uris[-3:] if not seen else uris:
                    if uri in seen:
                        continue
                    segment = await client.get(f"{base}/hls/{SLUG}/{uri}")
                    audience.segment_requests += 1
                    if segment.status_code != 200 or segment.content[:1] != b"\x47":
                        audience.errors.append(f"segment {uri} {segment.status_code}")
                        continue
                    seen.add(uri)
                    audience.segments.add(uri)
                    last_new = time.monotonic()
        except httpx.HTTPError as exc:
            audience.errors.append(f"{type(exc).__name__}: {exc}")
        audience.longest_wait = max(audience.longest_wait, time.monotonic() - last_new)
        await asyncio.sleep(1.0)


async def _watch(edges: list[Node], viewers: int, seconds: float) -> list[Audience]:
    deadline = time.monotonic() + seconds
    audiences = [Audience() for _ in edges]
    clients = [httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=viewers)) for _ in edges]
    try:
        await asyncio.gather(
            *(
                _viewer(client, edge.http, audience, deadline)
                for client, edge, audience in zip(clients, edges, audiences, strict=True)
                for _ in range(viewers)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    return audiences


def _kill_cluster_connections(admin: redis.Redis, names: list[str]) -> int:
    """``CLIENT KILL`` every Redis connection of the named nodes; how many were killed."""
    killed = 0
    for client in admin.client_list():
        if any(client.get("name", "").endswith(name) for name in names):
            killed += int(admin.client_kill_filter(_id=client["id"]))
    return killed


def _playlist(edge: Node) -> m3u8.M3U8 | None:
    response = httpx.get(f"{edge.http}/hls/{SLUG}/index.m3u8", timeout=5)
    if response.status_code != 200:
        return None
    parsed = m3u8.loads(response.text)
    return parsed if len(parsed.segments) >= 2 and not parsed.is_endlist else None


def _assert_plays(edge: Node, path: Path, ffprobe: str) -> None:
    assert wait_for(lambda: _playlist(edge), 25), edge.log()
    playlist = _playlist(edge)
    assert playlist is not None
    segment = httpx.get(f"{edge.http}/hls/{SLUG}/{playlist.segments[-1].uri}", timeout=5)
    assert segment.status_code == 200, segment.text
    path.write_bytes(segment.content)
    assert ffprobe_codecs(ffprobe, path) >= {"h264", "aac"}


def _api_stream(api: Node) -> dict[str, object]:
    response = httpx.get(f"{api.http}/api/v1/streams/{SLUG}", timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_api_two_origins_two_edges_on_postgresql(
    tmp_path: Path,
    pg_cluster: Cluster,
    redis_target: RedisTarget,
    publishers: PublisherFactory,
    ffprobe: str,
) -> None:
    cluster = pg_cluster
    origin_a = cluster.origin("origin-a")
    origin_b = cluster.origin("origin-b")
    edges = [cluster.edge("edge-1"), cluster.edge("edge-2")]
    api = cluster.api("api", playback_url=edges[0].http)

    stream = origin_a.create_stream(SLUG)
    assert _api_stream(api)["status"] == "DRAFT"
    publishers.generated(origin_a.rtmp_url(stream.stream_key), seconds=120)
    for number, edge in enumerate(edges):
        _assert_plays(edge, tmp_path / f"edge-{number}.ts", ffprobe)
    live = _api_stream(api)
    assert live["status"] == "LIVE"
    assert live["playback"]["hls"] == f"{edges[0].http}/hls/{SLUG}/index.m3u8"

    # 50 viewers per edge for 20 s; halfway through, every node's Redis connections are killed.
    segments_before = origin_a.metric("streamit_hls_requests_total", kind="segment", outcome="served")
    playlists_before = origin_a.metric("streamit_hls_requests_total", kind="playlist", outcome="served")

    async def watch_and_kill() -> tuple[list[Audience], int]:
        watching = asyncio.create_task(_watch(edges, VIEWERS_PER_EDGE, VIEWING_SECONDS))
        await asyncio.sleep(VIEWING_SECONDS / 2)
        names = ["origin-a", "origin-b", "edge-1", "edge-2", "api"]
        killed = await asyncio.to_thread(_kill_cluster_connections, redis_target.admin, names)
        return await watching, killed

    audiences, killed = asyncio.run(watch_and_kill())
    segment_fetches = origin_a.metric("streamit_hls_requests_total", kind="segment", outcome="served")
    playlist_fetches = origin_a.metric("streamit_hls_requests_total", kind="playlist", outcome="served")
    segment_fetches -= segments_before
    playlist_fetches -= playlists_before

    assert killed >= 3, "CLIENT KILL found no connections of the cluster's nodes"
    for edge, audience in zip(edges, audiences, strict=True):
        assert audience.errors == [], (edge.http, audience.errors[:10], cluster.logs())
        assert len(audience.segments) >= VIEWING_SECONDS / 2 / 2, audience
        assert audience.longest_wait < 3 * 2.0 + 1, audience
    distinct = len(audiences[0].segments) + len(audiences[1].segments)
    viewer_segment_requests = sum(audience.segment_requests for audience in audiences)
    # At most one origin fetch per segment per edge, however many viewers asked for it.
    assert 0 < segment_fetches <= distinct, (segment_fetches, distinct, viewer_segment_requests)
    assert viewer_segment_requests >= 20 * segment_fetches
    viewer_playlist_requests = sum(audience.playlist_requests for audience in audiences)
    assert playlist_fetches * 10 < viewer_playlist_requests, (playlist_fetches, viewer_playlist_requests)
    # The registration survived the killed connections: heartbeats reconnect by themselves.
    assert wait_for(lambda: registered(redis_target, SLUG) is not None, TTL / 3 + 1), cluster.logs()

    origin_a.process.kill()
    origin_a.process.wait()
    killed_at = time.monotonic()

    def gone_everywhere() -> bool:
        ended = _api_stream(api)["status"] == "ENDED"
        return ended and all(
            httpx.get(f"{edge.http}/hls/{SLUG}/index.m3u8", timeout=5).status_code == 404 for edge in edges
        )

    assert wait_for(gone_everywhere, TTL + 2, interval=0.05), cluster.logs()
    assert time.monotonic() - killed_at <= TTL + 2
    sessions = httpx.get(
        f"{api.http}/api/v1/streams/{SLUG}/sessions",
        headers={"Authorization": f"Bearer {_token(api)}"},
        timeout=5,
    ).json()["sessions"]
    assert [(s["node"], s["end_reason"]) for s in sessions] == [("origin-a", "origin lost")]
    assert "origin lost" in api.log()
    assert api.metric("streamit_streams_origin_lost_total") == 1

    # The same stream (same key, same database) published to origin B plays again through both edges.
    publishers.generated(origin_b.rtmp_url(stream.stream_key), seconds=60)
    for number, edge in enumerate(edges):
        _assert_plays(edge, tmp_path / f"edge-{number}-b.ts", ffprobe)
    assert wait_for(lambda: _api_stream(api)["status"] == "LIVE", 5)
    entry = registered(redis_target, SLUG)
    assert entry is not None and entry["origin_url"] == origin_b.http

    for node in (api, *edges, origin_b):
        assert node.terminate() == 0, node.log()
        assert "Traceback" not in node.log(), node.log()
        assert cluster.secret not in node.log()
        assert stream.stream_key not in node.log()


def _token(api: Node) -> str:
    """A fresh API token from the CLI, on the cluster's database."""
    assert api.data_dir is not None and api.database_url is not None
    command = [sys.executable, "-m", "streamit", "tokens", "create", "--name", f"test-{time.monotonic_ns()}"]
    command += ["--json", "--data-dir", str(api.data_dir), "--database-url", api.database_url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    token: str = json.loads(result.stdout)["token"]
    return token


def test_redis_restart_mid_stream(
    tmp_path: Path, postgres_url: str, publishers: PublisherFactory, ffprobe: str
) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    admin = redis.Redis(port=private.port)
    target = RedisTarget(private.url, "streamit-restart:", admin)
    cluster = Cluster(tmp_path, target, database_url=postgres_url)
    try:
        origin = cluster.origin("origin-a")
        edge = cluster.edge("edge-1")
        api = cluster.api("api", playback_url=edge.http)
        stream = origin.create_stream(SLUG)
        publishers.generated(origin.rtmp_url(stream.stream_key), seconds=120)
        _assert_plays(edge, tmp_path / "before.ts", ffprobe)
        assert _api_stream(api)["status"] == "LIVE"

        async def watch_through_restart() -> list[Audience]:
            watching = asyncio.create_task(_watch([edge], 10, 16.0))
            await asyncio.sleep(5)
            await asyncio.to_thread(private.stop)  # every entry is lost: no persistence
            await asyncio.sleep(0.5)
            await asyncio.to_thread(private.start)
            restarted = time.monotonic()
            back = await asyncio.to_thread(
                wait_for, lambda: registered(cluster.target, SLUG) is not None, TTL / 3 + 1.5, 0.05
            )
            assert back, f"not re-registered {time.monotonic() - restarted:.1f} s after the restart"
            return await watching

        (audience,) = asyncio.run(watch_through_restart())
        # Playback continues: viewers kept getting new segments; a playlist reload may have met a 404
        # while the origin had not re-registered yet, which players retry.
        assert audience.longest_wait < 3 * 2.0 + 1, audience
        assert all(error.startswith("playlist 404") for error in audience.errors), audience.errors
        assert len(audience.segments) >= 5, audience
        # The API did not mistake the restart for a dead origin.
        assert _api_stream(api)["status"] == "LIVE", api.log()
        _assert_plays(edge, tmp_path / "after.ts", ffprobe)
        for node in (api, edge, origin):
            assert node.terminate() == 0, node.log()
            assert "Traceback" not in node.log(), node.log()
    finally:
        cluster.kill_all()
        admin.close()
        private.stop()


def test_api_key_rotation_kicks_the_publisher_on_its_origin(
    pg_cluster: Cluster, publishers: PublisherFactory
) -> None:
    cluster = pg_cluster
    origin = cluster.origin("origin-a")
    edge = cluster.edge("edge-1")
    api = cluster.api("api", playback_url=edge.http)
    stream = origin.create_stream(SLUG)
    publisher = publishers.generated(origin.rtmp_url(stream.stream_key), seconds=60)
    assert wait_for(lambda: _api_stream(api)["status"] == "LIVE", 20), cluster.logs()

    rotated = httpx.post(
        f"{api.http}/api/v1/streams/{SLUG}/rotate-key",
        headers={"Authorization": f"Bearer {_token(api)}"},
        timeout=10,
    )
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["stream_key"]
    assert new_key != stream.stream_key
    started = time.monotonic()
    assert publisher.wait(15) is not None
    assert time.monotonic() - started < 10
    assert wait_for(lambda: _api_stream(api)["status"] == "ENDED", 10), cluster.logs()
    assert "asked 1 origin(s) to disconnect" in api.log()
    assert new_key not in api.log() and new_key not in origin.log()

    again = publishers.generated(origin.rtmp_url(new_key), seconds=30)
    assert wait_for(lambda: _api_stream(api)["status"] == "LIVE", 20), cluster.logs()
    assert again.poll() is None, again.errors()
