"""LL-HLS end to end: ffmpeg publishes to a real ``streamit serve`` (and a real origin + edge cluster);
``ll.m3u8`` parses with m3u8 and follows the LL-HLS rules, ffprobe/ffmpeg decode init + parts, blocking
requests are answered once the part exists, and the edge sends one upstream request for many viewers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.cluster import Cluster
from tests.interop.conftest import PublisherFactory, RedisTarget, Server, ffprobe_codecs, wait_for

pytestmark = pytest.mark.interop


def ll_playlist(url: str) -> m3u8.M3U8 | None:
    """The LL playlist once it lists two complete segments, else ``None``."""
    response = httpx.get(url, timeout=10)
    if response.status_code != 200:
        return None
    parsed = m3u8.loads(response.text)
    return parsed if len(parsed.segments) >= 3 and not parsed.is_endlist else None


def check_rules(playlist: m3u8.M3U8) -> None:
    """RFC 8216bis rules a player relies on: versions, server control, part durations, hint."""
    assert playlist.version is not None and int(playlist.version) >= 9
    assert playlist.server_control.can_block_reload == "YES"
    part_target = playlist.part_inf.part_target
    assert playlist.server_control.part_hold_back >= 2 * part_target
    parts = [part for segment in playlist.segments for part in segment.parts]
    assert parts and all(part.duration <= part_target for part in parts)
    for segment in playlist.segments:
        if segment.parts:
            assert segment.parts[0].independent == "YES"  # each segment starts with a keyframe
        if segment.uri is not None:
            assert segment.program_date_time is not None
    hint = playlist.preload_hint
    last = playlist.segments[-1]
    if last.uri is None:  # the open segment: the hint is its next part
        msn = playlist.media_sequence + len(playlist.segments) - 1
        assert hint.uri == f"part-{msn:06d}-{len(last.parts)}.m4s"
    else:
        msn = playlist.media_sequence + len(playlist.segments)
        assert hint.uri == f"part-{msn:06d}-0.m4s"


def hinted(playlist: m3u8.M3U8) -> tuple[int, int]:
    uri: str = playlist.preload_hint.uri
    _, msn, index = uri.removesuffix(".m4s").split("-")
    return int(msn), int(index)


def decode_segment_from_parts(base: str, playlist: m3u8.M3U8, out: Path, ffmpeg: str, ffprobe: str) -> None:
    """init.mp4 + the parts of the newest complete segment listing parts decode without error."""
    segment = next(s for s in reversed(playlist.segments) if s.uri is not None and s.parts)
    body = httpx.get(f"{base}/init.mp4", timeout=10).content
    for part in segment.parts:
        response = httpx.get(f"{base}/{part.uri}", timeout=10)
        assert response.status_code == 200 and "immutable" in response.headers["cache-control"]
        body += response.content
    whole = httpx.get(f"{base}/{segment.uri}", timeout=10)
    assert whole.status_code == 200
    assert whole.content == body[len(httpx.get(f"{base}/init.mp4", timeout=10).content) :]
    path = out / "parts.mp4"
    path.write_bytes(body)
    assert ffprobe_codecs(ffprobe, path) == {"h264", "aac"}
    decoded = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    count = ["-select_streams", "v", "-count_packets", "-show_entries", "stream=nb_read_packets"]
    frames = subprocess.run(
        [ffprobe, "-v", "error", *count, "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # 30 fps: every frame of the segment is in its parts.
    assert int(frames.stdout.strip()) == round(segment.duration * 30)


def blocking_request(base: str, msn: int, part: int) -> httpx.Response:
    return httpx.get(f"{base}/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}", timeout=20)


def test_serve_packages_ll_hls_that_players_can_read(
    server: Server, publishers: PublisherFactory, ffmpeg: str, ffprobe: str, tmp_path: Path
) -> None:
    info = server.create_stream("Low latency", slug="low")
    publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    base = f"{server.http}/hls/{info.slug}"
    assert wait_for(lambda: ll_playlist(f"{base}/ll.m3u8"), 30), server.log()
    playlist = ll_playlist(f"{base}/ll.m3u8")
    assert playlist is not None
    check_rules(playlist)
    assert server.stream_json(info.slug)["playback"] == {
        "hls": f"http://localhost:{server.http_port}/hls/low/index.m3u8",
        "llhls": f"http://localhost:{server.http_port}/hls/low/ll.m3u8",
    }
    decode_segment_from_parts(base, playlist, tmp_path, ffmpeg, ffprobe)
    # A blocking request for the hinted part is answered once it exists, with the part listed.
    msn, index = hinted(ll_playlist(f"{base}/ll.m3u8") or playlist)
    began = time.monotonic()
    response = blocking_request(base, msn, index)
    assert response.status_code == 200
    assert f"part-{msn:06d}-{index}.m4s" in response.text or f"seg-{msn:06d}.m4s" in response.text
    assert time.monotonic() - began < 10
    # The TS playlist is still there for every other player.
    assert httpx.get(f"{base}/index.m3u8", timeout=10).status_code == 200


@pytest.fixture
def cluster(tmp_path: Path, redis_target: RedisTarget) -> Iterator[Cluster]:
    started = Cluster(tmp_path, redis_target)
    yield started
    started.kill_all()


def test_ll_hls_through_an_edge_with_one_upstream_request_per_part(
    cluster: Cluster, publishers: PublisherFactory, ffmpeg: str, ffprobe: str, tmp_path: Path
) -> None:
    origin = cluster.origin("origin-a")
    edge = cluster.edge("edge-1")
    info = origin.create_stream("show")
    publishers.generated(origin.rtmp_url(info.stream_key), seconds=60)
    base = f"{edge.http}/hls/show"
    assert wait_for(lambda: ll_playlist(f"{base}/ll.m3u8"), 30), cluster.logs()
    playlist = ll_playlist(f"{base}/ll.m3u8")
    assert playlist is not None
    check_rules(playlist)
    decode_segment_from_parts(base, playlist, tmp_path, ffmpeg, ffprobe)

    viewers = 20
    with ThreadPoolExecutor(viewers) as pool:
        for _ in range(3):
            current = ll_playlist(f"{base}/ll.m3u8")
            assert current is not None
            msn, index = hinted(current)
            before = origin.metric("streamit_hls_requests_total", kind="ll_playlist", outcome="served")
            responses = list(pool.map(blocking_request, [base] * viewers, [msn] * viewers, [index] * viewers))
            assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
            assert all(
                f"part-{msn:06d}-{index}.m4s" in r.text or f"seg-{msn:06d}.m4s" in r.text for r in responses
            )
            after = origin.metric("streamit_hls_requests_total", kind="ll_playlist", outcome="served")
            # One upstream request answered them all; a loaded machine may spread the viewers over more
            # than the answer's freshness (a target duration), each later upstream answer being newer.
            bodies = {r.text for r in responses}
            assert after - before == len(bodies) and len(bodies) <= 3, cluster.logs()
    hint_uri = f"part-{msn:06d}-{index + 1}.m4s"
    with ThreadPoolExecutor(viewers) as pool:
        before = origin.metric("streamit_hls_requests_total", kind="ll_object", outcome="served")
        parts = list(pool.map(lambda _: httpx.get(f"{base}/{hint_uri}", timeout=20), range(viewers)))
    statuses = {r.status_code for r in parts}
    # The hinted part is held until complete (a 404 only if the segment closed before it).
    assert statuses in ({200}, {404}), statuses
    if statuses == {200}:
        assert origin.metric("streamit_hls_requests_total", kind="ll_object", outcome="served") - before == 1


def test_republish_continues_the_ll_playlist_after_a_discontinuity(
    server: Server, publishers: PublisherFactory
) -> None:
    info = server.create_stream("Again", slug="again")
    url = f"{server.http}/hls/again/ll.m3u8"
    first = publishers.generated(server.rtmp_url(info.stream_key), seconds=5)
    assert first.wait(60) == 0, first.errors()
    assert wait_for(lambda: "#EXT-X-ENDLIST" in httpx.get(url, timeout=5).text, 20), server.log()
    ended = m3u8.loads(httpx.get(url, timeout=5).text)
    last_msn = ended.media_sequence + len(ended.segments) - 1
    publishers.generated(server.rtmp_url(info.stream_key), seconds=60)

    def resumed() -> m3u8.M3U8 | None:
        text = httpx.get(url, timeout=5).text
        parsed = m3u8.loads(text)
        new = [s for s in parsed.segments if s.uri is not None and s.discontinuity]
        return parsed if new and "#EXT-X-ENDLIST" not in text else None

    assert wait_for(resumed, 30), server.log()
    playlist = resumed()
    assert playlist is not None
    check_rules(playlist)
    restarted = next(s for s in playlist.segments if s.discontinuity)
    assert restarted.init_section is not None and restarted.init_section.uri == "init-1.mp4"
    assert restarted.uri == f"seg-{last_msn + 1:06d}.m4s"  # numbering goes on: no URI is reused
    assert httpx.get(f"{server.http}/hls/again/init-1.mp4", timeout=5).status_code == 200
