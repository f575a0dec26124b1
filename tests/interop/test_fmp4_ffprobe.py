"""fMP4/LL-HLS output read by real peers: ffprobe/ffmpeg decode init + parts, m3u8 parses the playlists.

An FLV made by ffmpeg goes through the real FLV reader and demuxer, then the LL-HLS packager; the init
segment and every part are written to files as an origin would serve them.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest

from streamit.fmp4 import parse_fragment
from streamit.hls.parts import (
    InitSegmentReady,
    LlHlsEvent,
    LlHlsPackager,
    Part,
    PartReady,
    PlaylistUpdated,
    SegmentReady,
)
from streamit.media.frame import Frame, TrackKind
from tests.conftest import require_tool
from tests.fmp4.flv_media import DemuxedFlv, demux_file, make_audio_only_flv, make_flv

pytestmark = pytest.mark.interop

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PART_TARGET = Fraction(33, 100)


def package(media: DemuxedFlv, out: Path) -> tuple[list[LlHlsEvent], LlHlsPackager]:
    packager = LlHlsPackager(part_target=PART_TARGET)
    events: list[LlHlsEvent] = []
    for config in (media.video, media.audio):
        if config is not None:
            events += packager.on_config(config)
    for frame in media.frames:
        events += packager.on_frame(frame, START + timedelta(milliseconds=frame.dts))
    events += packager.end()
    for event in events:
        if isinstance(event, InitSegmentReady):
            (out / event.name).write_bytes(event.data)
        elif isinstance(event, PartReady):
            (out / event.part.name).write_bytes(event.part.data)
        elif isinstance(event, SegmentReady):
            (out / event.segment.name).write_bytes(event.segment.data)
    return events, packager


def probe_packets(ffprobe: str, path: Path) -> tuple[dict[str, dict[str, object]], list[dict[str, object]]]:
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stderr == ""
    report = json.loads(result.stdout)
    return {s["codec_type"]: s for s in report["streams"]}, report["packets"]


def joined(out: Path, names: list[str], target: Path) -> Path:
    target.write_bytes(b"".join((out / name).read_bytes() for name in names))
    return target


def assert_packets_match(
    packets: list[dict[str, object]], index: object, frames: list[Frame], scale: int
) -> None:
    mine = [p for p in packets if p["stream_index"] == index]
    assert [p["dts"] for p in mine] == [f.dts * scale // 1000 for f in frames]
    assert [p["pts"] for p in mine] == [f.pts * scale // 1000 for f in frames]
    dts = [int(str(p["dts"])) for p in mine]
    assert dts == sorted(set(dts))


def assert_parts_continuous(out: Path, parts: list[str]) -> None:
    """Each part's tfdt is where the previous part of the same track ended (ffprobe derives packet
    durations itself, so the durations written in trun are checked with our reader)."""
    next_time: dict[int, int] = {}
    for name in parts:
        for run in parse_fragment((out / name).read_bytes()).runs:
            if run.track_id in next_time:
                assert run.base_media_decode_time == next_time[run.track_id], name
            last = run.samples[-1]
            next_time[run.track_id] = last.decode_time + last.duration


def test_ffprobe_reads_every_sample_of_the_parts(tmp_path: Path) -> None:
    ffmpeg, ffprobe = require_tool("ffmpeg"), require_tool("ffprobe")
    media = demux_file(make_flv(ffmpeg, tmp_path / "source.flv", seconds=7, gop=30))
    out = tmp_path / "hls"
    out.mkdir()
    events, _ = package(media, out)
    parts = [e.part for e in events if isinstance(e, PartReady)]
    segments = [e.segment for e in events if isinstance(e, SegmentReady)]
    assert len(segments) == 4 and len(parts) > 20
    # Through the parts as an LL-HLS client fetches them, and through the segments: the same packets.
    by_parts = joined(out, ["init.mp4"] + [p.name for p in parts], tmp_path / "parts.mp4")
    by_segments = joined(out, ["init.mp4"] + [s.name for s in segments], tmp_path / "segments.mp4")
    assert by_parts.read_bytes() == by_segments.read_bytes()
    streams, packets = probe_packets(ffprobe, by_parts)
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (160, 90)
    assert streams["audio"]["sample_rate"] == "48000"
    # Every frame that followed the first keyframe is present, with its timestamps.
    first_video = next(i for i, f in enumerate(media.frames) if f.track is TrackKind.VIDEO)
    kept = media.frames[first_video:]
    assert_packets_match(
        packets, streams["video"]["index"], [f for f in kept if f.track is TrackKind.VIDEO], 90_000
    )
    assert_packets_match(
        packets, streams["audio"]["index"], [f for f in kept if f.track is TrackKind.AUDIO], 48_000
    )
    video_keyframes = [
        p for p in packets if p["stream_index"] == streams["video"]["index"] and "K" in str(p["flags"])
    ]
    assert len(video_keyframes) == 7  # one per second
    assert_parts_continuous(out, [p.name for p in parts])


def test_ffmpeg_decodes_init_and_segments_without_errors(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    media = demux_file(make_flv(ffmpeg, tmp_path / "source.flv", seconds=5, gop=30))
    out = tmp_path / "hls"
    out.mkdir()
    events, _ = package(media, out)
    names = ["init.mp4"] + [e.segment.name for e in events if isinstance(e, SegmentReady)]
    whole = joined(out, names, tmp_path / "all.mp4")
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(whole), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ""
    # An independent part alone after the init segment decodes too: a client can start there.
    independent: list[Part] = [e.part for e in events if isinstance(e, PartReady) and e.part.independent]
    alone = joined(out, ["init.mp4", independent[1].name], tmp_path / "alone.mp4")
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(alone), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == ""


def test_every_playlist_follows_the_ll_hls_rules(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    media = demux_file(make_flv(ffmpeg, tmp_path / "source.flv", seconds=6, gop=30))
    out = tmp_path / "hls"
    out.mkdir()
    events, packager = package(media, out)
    produced: set[str] = {"init.mp4"}
    independent_names = set()
    checked = 0
    for event in events:
        if isinstance(event, PartReady):
            produced.add(event.part.name)
            if event.part.independent:
                independent_names.add(event.part.name)
        elif isinstance(event, SegmentReady):
            produced.add(event.segment.name)
        elif isinstance(event, PlaylistUpdated):
            checked += 1
            parsed = m3u8.loads(event.text)
            assert parsed.version >= 9
            part_target = parsed.part_inf.part_target
            assert part_target == float(PART_TARGET)
            listed = [part for seg in parsed.segments for part in seg.parts]
            # Everything listed exists; part durations stay within PART-TARGET; INDEPENDENT marks keyframes.
            assert {p.uri for p in listed} <= produced
            assert {seg.uri for seg in parsed.segments if seg.uri} <= produced
            assert all(p.duration <= part_target for p in listed)
            assert all((p.independent == "YES") == (p.uri in independent_names) for p in listed)
            for seg in parsed.segments:
                if seg.parts:
                    assert seg.parts[0].independent == "YES"  # segments start at keyframes
            if not parsed.is_endlist:
                # The preload hint names the next part, which does not exist yet.
                hint = parsed.preload_hint.uri
                assert parsed.preload_hint.hint_type == "PART" and hint not in produced
                msn, index = packager_next(hint)
                last = listed[-1].uri if listed else None
                if last is not None and msn == part_msn(last):
                    assert index == part_index(last) + 1
                else:
                    assert index == 0
    assert checked > 15
    # Every part file on disk matches what the packager announced.
    assert all((out / name).is_file() for name in produced)
    assert packager.ended


def packager_next(uri: str) -> tuple[int, int]:
    return part_msn(uri), part_index(uri)


def part_msn(uri: str) -> int:
    return int(uri.removeprefix("part-").split("-")[0])


def part_index(uri: str) -> int:
    return int(uri.removesuffix(".m4s").split("-")[2])


def test_audio_only_stream(tmp_path: Path) -> None:
    ffmpeg, ffprobe = require_tool("ffmpeg"), require_tool("ffprobe")
    media = demux_file(make_audio_only_flv(ffmpeg, tmp_path / "audio.flv", seconds=5))
    assert media.video is None and media.audio is not None
    out = tmp_path / "hls"
    out.mkdir()
    events, _ = package(media, out)
    parts = [e.part.name for e in events if isinstance(e, PartReady)]
    streams, packets = probe_packets(ffprobe, joined(out, ["init.mp4", *parts], tmp_path / "audio.mp4"))
    assert set(streams) == {"audio"} and streams["audio"]["codec_name"] == "aac"
    assert streams["audio"]["channels"] == 2
    assert_packets_match(packets, streams["audio"]["index"], media.of(TrackKind.AUDIO), 44_100)
    assert_parts_continuous(out, parts)
