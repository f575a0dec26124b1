"""``streamit serve`` against real peers: Debian ffmpeg publishes, ffprobe and ``m3u8`` read the HLS."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import Publisher, PublisherFactory, Server, wait_for

pytestmark = pytest.mark.interop

TARGET = 2.0
GOP = 1.0


@dataclass
class Capture:
    """Everything a polling viewer saw of one live stream."""

    segments: dict[int, bytes] = field(default_factory=dict)
    durations: dict[int, float] = field(default_factory=dict)
    first_segment_at: float | None = None
    playlists: list[str] = field(default_factory=list)


def poll_once(server: Server, slug: str, capture: Capture) -> m3u8.M3U8 | None:
    response = httpx.get(f"{server.http}/hls/{slug}/index.m3u8", timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    text = response.text
    capture.playlists.append(text)
    playlist = m3u8.loads(text)
    for index, segment in enumerate(playlist.segments):
        sequence = playlist.media_sequence + index
        if sequence in capture.segments:
            continue
        seg = httpx.get(f"{server.http}/hls/{slug}/{segment.uri}", timeout=5)
        if seg.status_code == 404:
            continue
        assert seg.headers["content-type"] == "video/mp2t"
        capture.segments[sequence] = seg.content
        capture.durations[sequence] = float(segment.duration)
        if capture.first_segment_at is None:
            capture.first_segment_at = time.monotonic()
    return playlist


def ffprobe_json(ffprobe: str, target: str, *, packets: bool) -> dict[str, list[dict[str, object]]]:
    args = [ffprobe, "-v", "error", "-of", "json", "-show_streams"]
    if packets:
        args += ["-show_packets"]
    result = subprocess.run([*args, target], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, list[dict[str, object]]] = json.loads(result.stdout)
    return data


def check_timeline(ffprobe: str, ts_file: Path, *, width: int, height: int) -> None:
    """h264 + aac present; timestamps monotone per stream; audio and video do not drift apart."""
    probe = ffprobe_json(ffprobe, str(ts_file), packets=True)
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert kinds["video"]["codec_name"] == "h264"
    assert (kinds["video"]["width"], kinds["video"]["height"]) == (width, height)
    assert kinds["audio"]["codec_name"] == "aac"
    assert int(str(kinds["audio"]["sample_rate"])) == 48000
    index = {s["index"]: s["codec_type"] for s in probe["streams"]}
    video = [float(str(p["dts_time"])) for p in probe["packets"] if index[p["stream_index"]] == "video"]
    audio = [float(str(p["pts_time"])) for p in probe["packets"] if index[p["stream_index"]] == "audio"]
    assert len(video) > 30 and len(audio) > 40
    assert all(b > a for a, b in itertools.pairwise(video)), "video DTS not monotone"
    assert all(b > a for a, b in itertools.pairwise(audio)), "audio PTS not monotone"
    # Each track against its own clock (30 fps frames, 1024-sample AAC frames): the pyrtmp failure mode
    # was audio timestamps falling behind by a few ms per message.
    video_drift = max(abs((t - video[0]) - i / 30) for i, t in enumerate(video))
    audio_drift = max(abs((t - audio[0]) - i * 1024 / 48000) for i, t in enumerate(audio))
    assert video_drift < 0.050, f"video drifted {video_drift * 1000:.1f} ms"
    assert audio_drift < 0.050, f"audio drifted {audio_drift * 1000:.1f} ms"
    start_offset = abs(video[0] - audio[0])
    end_offset = abs((video[-1] - video[0]) - (audio[-1] - audio[0]))
    assert start_offset < 0.100, f"audio and video start {start_offset * 1000:.1f} ms apart"
    assert end_offset < 0.100, f"audio and video end {end_offset * 1000:.1f} ms apart"


def watch_live_stream(
    server: Server, ffprobe: str, slug: str, publisher: Publisher, timeout: float
) -> tuple[Capture, float]:
    """Poll the playlist like a player until the publisher exits; probe the live playlist once."""
    capture = Capture()
    probed = False
    deadline = time.monotonic() + timeout
    while publisher.poll() is None:
        assert time.monotonic() < deadline, "publisher did not finish"
        playlist = poll_once(server, slug, capture)
        if playlist is not None and not probed and len(playlist.segments) >= 2:
            assert not playlist.is_endlist
            assert server.stream_json(slug)["status"] == "LIVE"
            live = ffprobe_json(ffprobe, f"{server.http}/hls/{slug}/index.m3u8", packets=False)
            assert {s["codec_name"] for s in live["streams"]} == {"h264", "aac"}
            probed = True
        time.sleep(0.3)
    exited_at = time.monotonic()
    assert probed, "the live playlist never had two segments"
    return capture, exited_at


def assert_ended_quickly(server: Server, slug: str, capture: Capture, exited_at: float) -> m3u8.M3U8:
    def ended() -> bool:
        playlist = poll_once(server, slug, capture)
        return bool(playlist and playlist.is_endlist and server.stream_json(slug)["status"] == "ENDED")

    assert wait_for(ended, timeout=5, interval=0.05), "no ENDLIST / ENDED after the publisher exited"
    elapsed = time.monotonic() - exited_at
    assert elapsed < 2.0, f"ENDLIST and ENDED took {elapsed:.2f} s"
    final = m3u8.loads(capture.playlists[-1])
    return final


def check_capture(capture: Capture, tmp_path: Path, ffprobe: str) -> Path:
    sequences = sorted(capture.segments)
    assert sequences == list(range(sequences[0], sequences[-1] + 1)), "a segment was never listed"
    for sequence in sequences[:-1]:
        assert abs(capture.durations[sequence] - TARGET) <= GOP + 0.01, capture.durations
    for sequence in sequences:
        data = capture.segments[sequence]
        assert len(data) % 188 == 0 and data[0] == 0x47
    joined = tmp_path / "all.ts"
    joined.write_bytes(b"".join(capture.segments[s] for s in sequences))
    return joined


def test_ffmpeg_publish_to_hls(
    server: Server, publishers: PublisherFactory, ffmpeg: str, ffprobe: str, tmp_path: Path
) -> None:
    info = server.create_stream("Interop test", slug="interop")
    assert info.stream_key not in info.playback_url
    assert server.stream_json("interop")["status"] == "DRAFT"
    publisher = publishers.generated(server.rtmp_url(info.stream_key), seconds=20)
    started = time.monotonic()
    capture, exited_at = watch_live_stream(server, ffprobe, "interop", publisher, timeout=60)
    assert publisher.returncode == 0, publisher.errors()
    final = assert_ended_quickly(server, "interop", capture, exited_at)
    assert capture.first_segment_at is not None
    assert capture.first_segment_at - started < TARGET + 3.0
    joined = check_capture(capture, tmp_path, ffprobe)
    assert sum(capture.durations.values()) == pytest.approx(20, abs=1.5)
    check_timeline(ffprobe, joined, width=640, height=360)
    # The ended playlist is still a valid HLS presentation for ffmpeg, start to end.
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", f"{server.http}/hls/interop/index.m3u8", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    assert final.target_duration >= max(round(d) for d in capture.durations.values())
    stream = server.stream_json("interop")
    assert stream["started_at"] and stream["ended_at"]
    media = stream["media"]
    assert isinstance(media, dict)
    assert media["video"]["width"] == 640 and media["video"]["height"] == 360
    assert media["audio"]["codec"] == "aac" and media["audio"]["sample_rate"] == 48000
    assert info.stream_key not in server.log()


def test_timestamps_above_2_pow_24_ms(
    server: Server, publishers: PublisherFactory, ffmpeg: str, ffprobe: str, tmp_path: Path
) -> None:
    info = server.create_stream("Extended timestamps", slug="extended")
    publisher = publishers.generated(
        server.rtmp_url(info.stream_key), seconds=10, extra=["-output_ts_offset", "16780"]
    )
    capture, exited_at = watch_live_stream(server, ffprobe, "extended", publisher, timeout=40)
    assert publisher.returncode == 0
    assert_ended_quickly(server, "extended", capture, exited_at)
    joined = check_capture(capture, tmp_path, ffprobe)
    check_timeline(ffprobe, joined, width=640, height=360)
    probe = ffprobe_json(ffprobe, str(joined), packets=True)
    first = float(str(probe["packets"][0]["pts_time"]))
    assert first > 16780, "timestamps above 2^24 ms were not carried through"


def test_wrong_key_is_refused(server: Server, publishers: PublisherFactory) -> None:
    server.create_stream("Real one", slug="real")
    publisher = publishers.generated(server.rtmp_url("sk_not_a_real_key_at_all_1234"), seconds=5)
    assert publisher.wait(20) != 0
    hls_root = server.data_dir / "hls"
    assert not hls_root.exists() or not any(hls_root.iterdir()), "a refused publish created HLS output"
    log = server.log()
    assert "publish refused from 127.0.0.1:" in log
    assert "sk_not_a_real_key_at_all_1234" not in log
    assert server.stream_json("real")["status"] == "DRAFT"
    assert httpx.get(f"{server.http}/hls/real/index.m3u8").status_code == 404


def test_reconnect_with_same_key_takes_over(server: Server, publishers: PublisherFactory) -> None:
    info = server.create_stream("Takeover", slug="takeover")
    first = publishers.generated(server.rtmp_url(info.stream_key), seconds=60)
    capture = Capture()
    assert wait_for(
        lambda: poll_once(server, "takeover", capture) is not None and len(capture.segments) >= 2, 20
    )
    second = publishers.generated(server.rtmp_url(info.stream_key), seconds=8)
    try:
        first.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("the first publisher was not disconnected when the second took over")
    assert server.stream_json("takeover")["status"] == "LIVE"
    before = max(capture.segments)
    while second.poll() is None:
        poll_once(server, "takeover", capture)
        time.sleep(0.3)
    assert second.returncode == 0
    exited_at = time.monotonic()
    final = assert_ended_quickly(server, "takeover", capture, exited_at)
    assert max(capture.segments) >= before + 3, "the new publisher's media did not reach the playlist"
    assert any("#EXT-X-DISCONTINUITY" in text for text in capture.playlists)
    assert final.is_endlist


def test_twenty_concurrent_publishers(
    server: Server, publishers: PublisherFactory, ffprobe: str, clip: Path
) -> None:
    streams = [server.create_stream(f"Concurrent {i}", slug=f"multi-{i}") for i in range(20)]
    running = [publishers.copy(clip, server.rtmp_url(s.stream_key)) for s in streams]
    for publisher in running:
        assert publisher.wait(60) == 0, publisher.errors()

    def all_ended() -> bool:
        return all(
            "#EXT-X-ENDLIST" in httpx.get(f"{server.http}/hls/{s.slug}/index.m3u8", timeout=5).text
            for s in streams
        )

    assert wait_for(all_ended, timeout=5)
    for s in streams:
        playlist = m3u8.loads(httpx.get(f"{server.http}/hls/{s.slug}/index.m3u8", timeout=5).text)
        assert len(playlist.segments) >= 3
        assert sum(float(seg.duration) for seg in playlist.segments) == pytest.approx(8, abs=1.5)
        probe = ffprobe_json(ffprobe, f"{server.http}/hls/{s.slug}/index.m3u8", packets=False)
        assert {st["codec_name"] for st in probe["streams"]} == {"h264", "aac"}
        assert server.stream_json(s.slug)["status"] == "ENDED"
