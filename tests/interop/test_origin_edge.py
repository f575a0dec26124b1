"""``streamit origin`` registers its live streams in Redis; ``streamit edge`` follows them between origins.

Real processes throughout: Redis under a key prefix private to this test, two origins with their own data
directories, one edge, and ffmpeg publishing.  SIGKILL of the first origin stops its heartbeats, so its entry
expires and the edge answers 404; publishing the same slug to the second origin makes it playable again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.cluster import TTL, Cluster, Node, registered
from tests.interop.conftest import PublisherFactory, RedisTarget, ffprobe_codecs, wait_for

pytestmark = pytest.mark.interop


SLUG = "show"


@pytest.fixture
def cluster(tmp_path: Path, redis_target: RedisTarget) -> Iterator[Cluster]:
    started = Cluster(tmp_path, redis_target)
    yield started
    started.kill_all()


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
