from __future__ import annotations

import dataclasses
import itertools
import json
import math
import struct
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import ConfigError, LocalProtocolError, NotFound, RemoteProtocolError, UnsupportedCodec
from streamit.hls import (
    HlsPackager,
    PackagerEvent,
    PlaylistUpdated,
    Segment,
    SegmentExpired,
    SegmentReady,
)
from streamit.hls.events import SegmentAppended
from streamit.hls.packager import AUDIO_FRAMES_PER_PES
from streamit.media.aac import iter_adts_frames
from streamit.media.frame import MILLISECONDS, Frame, TrackKind
from streamit.mpegts.muxer import AUDIO_PID, PMT_PID, TIMESTAMP_OFFSET, VIDEO_PID
from tests.conftest import require_tool
from tests.mpegts.flv_fixture import read_flv
from tests.mpegts.ts_demux import TsPacket, check_continuity, parse_packets, parse_pes, split_annexb

MEDIA = read_flv()
T0 = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def wallclock(frame: Frame) -> datetime:
    return T0 + timedelta(milliseconds=frame.dts)


def configured(
    target_duration: Fraction = Fraction(2),
    playlist_length: int = 6,
    expire_grace: int = 2,
    flush_bytes: int | None = None,
) -> HlsPackager:
    packager = HlsPackager(
        target_duration=target_duration,
        playlist_length=playlist_length,
        expire_grace=expire_grace,
        flush_bytes=flush_bytes,
    )
    assert packager.on_config(MEDIA.video) == []
    assert packager.on_config(MEDIA.audio) == []
    return packager


def run(packager: HlsPackager, frames: Iterable[Frame]) -> list[PackagerEvent]:
    events: list[PackagerEvent] = []
    for frame in frames:
        events.extend(packager.on_frame(frame, wallclock(frame)))
    return events


def ready(events: list[PackagerEvent]) -> list[Segment]:
    """The finished segments, each with all its bytes (those handed out early, then the rest)."""
    appended: dict[str, list[bytes]] = {}
    segments = []
    for event in events:
        if isinstance(event, SegmentAppended):
            appended.setdefault(event.name, []).append(event.data)
        elif isinstance(event, SegmentReady):
            data = b"".join([*appended.pop(event.segment.name, []), event.segment.data])
            segments.append(dataclasses.replace(event.segment, data=data))
    assert not appended, "bytes handed out for a segment that never completed"
    return segments


def playlists(events: list[PackagerEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, PlaylistUpdated)]


def first_video_pes_is_an_idr_with_parameter_sets(data: bytes) -> bool:
    packets = parse_packets(data)
    if [p.pid for p in packets[:2]] != [0, PMT_PID]:
        return False
    video = parse_pes(packets, VIDEO_PID)
    units = split_annexb(video[0].data)
    types = [u[0] & 0x1F for u in units]
    return video[0].random_access and types[:3] == [9, 7, 8] and 5 in types


def audio_frames_by_pes(packets: list[TsPacket], per_pes: int = AUDIO_FRAMES_PER_PES) -> list[int]:
    """The raw AAC frame sizes in the audio PES, in order; each PES's PTS is its first frame's."""
    sizes: list[int] = []
    pes = parse_pes(packets, AUDIO_PID)
    frames = iter(MEDIA.audio_frames)
    for packet in pes:
        units = list(iter_adts_frames(packet.data))
        assert 1 <= len(units) <= per_pes
        first = next(frames)
        assert packet.pts == first.pts * 90 + TIMESTAMP_OFFSET
        sizes.append(len(units[0][1]))
        for _ in units[1:]:
            sizes.append(len(next(frames).data))
        assert [len(u[1]) for u in units] == sizes[-len(units) :]
    return sizes


def write_out(tmp_path: Path, events: list[PackagerEvent]) -> Path:
    for event in events:
        if isinstance(event, SegmentAppended):
            with (tmp_path / event.name).open("ab") as file:
                file.write(event.data)
        elif isinstance(event, SegmentReady):
            with (tmp_path / event.segment.name).open("ab") as file:
                file.write(event.segment.data)
        elif isinstance(event, PlaylistUpdated):
            (tmp_path / "index.m3u8").write_text(event.text)
        else:
            (tmp_path / event.name).unlink()
    return tmp_path / "index.m3u8"


def test_fixture_is_cut_into_keyframe_aligned_segments() -> None:
    packager = configured()
    events = run(packager, MEDIA.frames) + packager.end()
    segments = ready(events)
    assert [s.name for s in segments] == [f"seg-00000{i}.ts" for i in range(4)]
    assert [s.duration for s in segments] == [2, 2, 2, 1]
    assert sum(s.duration for s in segments) == Fraction(MEDIA.video_frames[-1].dts + 40, 1000)
    assert [s.program_date_time for s in segments] == [T0 + timedelta(seconds=2 * i) for i in range(4)]
    assert not any(s.discontinuity for s in segments)
    for segment in segments:
        assert len(segment.data) % 188 == 0
        assert first_video_pes_is_an_idr_with_parameter_sets(segment.data)
    # One transport stream: counters continue from segment to segment.
    state: dict[int, int] = {}
    for segment in segments:
        state = check_continuity(parse_packets(segment.data), start=state)
    # Every frame is in exactly one segment, in order.
    packets = parse_packets(b"".join(s.data for s in segments))
    assert len(parse_pes(packets, VIDEO_PID)) == len(MEDIA.video_frames)
    assert audio_frames_by_pes(packets) == [len(f.data) for f in MEDIA.audio_frames]
    # The window holds metadata only.
    assert all(s.data == b"" for s in packager.segments)
    assert [s.name for s in packager.segments] == [s.name for s in segments]


def test_grouped_audio_stays_inside_its_segment(tmp_path: Path) -> None:
    packager = HlsPackager(audio_frames_per_pes=5)
    packager.on_config(MEDIA.video)
    packager.on_config(MEDIA.audio)
    segments = ready(run(packager, MEDIA.frames) + packager.end())
    in_segments = 0
    for segment in segments:
        assert first_video_pes_is_an_idr_with_parameter_sets(segment.data)
        # Every audio PES is whole inside one segment (a cut one would not parse as ADTS frames).
        for pes in parse_pes(parse_packets(segment.data), AUDIO_PID):
            in_segments += len(list(iter_adts_frames(pes.data)))
    assert in_segments == len(MEDIA.audio_frames)
    packets = parse_packets(b"".join(s.data for s in segments))
    assert audio_frames_by_pes(packets, per_pes=5) == [len(f.data) for f in MEDIA.audio_frames]
    assert len(parse_pes(packets, AUDIO_PID)) < len(MEDIA.audio_frames) / 2
    # No audio PES waits for a later segment: each segment's audio ends before the next one's keyframe.
    for segment, following in itertools.pairwise(segments):
        last_audio = parse_pes(parse_packets(segment.data), AUDIO_PID)[-1]
        next_video = parse_pes(parse_packets(following.data), VIDEO_PID)[0]
        assert last_audio.pts < next_video.decode_ts
    with pytest.raises(ConfigError):
        HlsPackager(audio_frames_per_pes=0)


def test_events_come_in_store_order() -> None:
    packager = configured(playlist_length=2, expire_grace=1)
    events = run(packager, MEDIA.frames) + packager.end()
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SegmentReady",
        "PlaylistUpdated",
        "SegmentReady",
        "PlaylistUpdated",
        "SegmentReady",
        "PlaylistUpdated",
        "SegmentReady",
        "PlaylistUpdated",
        "SegmentExpired",
    ]
    expired = [e for e in events if isinstance(e, SegmentExpired)]
    assert [e.name for e in expired] == ["seg-000000.ts"]
    last = m3u8.loads(playlists(events)[-1])
    assert [s.uri for s in last.segments] == ["seg-000002.ts", "seg-000003.ts"]
    assert last.media_sequence == 2 and last.is_endlist


@pytest.mark.parametrize("flush_bytes", [1, 188, 5000, 65536])
def test_open_segment_is_handed_out_in_order_as_it_grows(flush_bytes: int) -> None:
    whole = configured()
    expected = ready(run(whole, MEDIA.frames) + whole.end())
    packager = configured(playlist_length=2, expire_grace=1, flush_bytes=flush_bytes)
    events = run(packager, MEDIA.frames) + packager.end()
    assert ready(events) == expected
    largest_frame = max(len(f.data) for f in MEDIA.frames)
    open_name = None
    for event in events:
        if isinstance(event, SegmentAppended):
            # Bytes go out as soon as flush_bytes gathered: never much more than that at once.
            assert len(event.data) % 188 == 0 and 0 < len(event.data) < flush_bytes + 2 * largest_frame
            assert open_name in (None, event.name)
            open_name = event.name
        elif isinstance(event, SegmentReady):
            assert open_name in (None, event.segment.name)
            open_name = None
        else:
            assert open_name is None, "a playlist or expiry between a segment's bytes"
    kinds = [type(e).__name__ for e in events if not isinstance(e, SegmentAppended)]
    assert kinds == [
        type(e).__name__ for e in run(configured(playlist_length=2, expire_grace=1), MEDIA.frames)
    ] + [
        "SegmentReady",
        "PlaylistUpdated",
        "SegmentExpired",
    ]


def test_playlist_is_not_published_before_the_first_segment() -> None:
    packager = configured()
    with pytest.raises(NotFound):
        packager.playlist()
    assert run(packager, MEDIA.frames[:40]) == []
    with pytest.raises(NotFound):
        packager.playlist()
    assert packager.end() != []
    assert "#EXT-X-ENDLIST" in packager.playlist()


def test_end_then_restart_continues_with_a_discontinuity() -> None:
    packager = configured()
    events = run(packager, MEDIA.frames) + packager.end()
    assert packager.ended and packager.end() == []
    with pytest.raises(LocalProtocolError):
        packager.on_frame(MEDIA.frames[0], T0)
    packager.restart()
    assert not packager.ended
    republished = packager.on_config(MEDIA.video)
    assert playlists(republished) and "#EXT-X-ENDLIST" not in playlists(republished)[0]
    packager.on_config(MEDIA.audio)
    later = T0 + timedelta(minutes=1)
    for frame in MEDIA.frames:
        republished.extend(packager.on_frame(frame, later + timedelta(milliseconds=frame.dts)))
    republished.extend(packager.end())
    segments = ready(republished)
    assert [s.sequence for s in segments] == [4, 5, 6, 7]
    assert [s.discontinuity for s in segments] == [True, False, False, False]
    assert segments[0].program_date_time == later
    parsed = m3u8.loads(playlists(republished)[-1])
    assert [s.discontinuity for s in parsed.segments] == [False, False, True, False, False, False]
    assert parsed.media_sequence == 2 and parsed.discontinuity_sequence is None
    state: dict[int, int] = {}
    for segment in ready(events) + segments:
        state = check_continuity(parse_packets(segment.data), start=state)


def test_discontinuity_sequence_counts_scrolled_out_discontinuities() -> None:
    packager = configured(playlist_length=2, expire_grace=0)
    run(packager, MEDIA.frames)
    packager.end()
    packager.restart()
    packager.on_config(MEDIA.video)
    packager.on_config(MEDIA.audio)
    events = run(packager, MEDIA.frames) + packager.end()
    texts = playlists(events)
    parsed = [m3u8.loads(text) for text in texts]
    assert [p.discontinuity_sequence or 0 for p in parsed] == [0, 0, 1, 1, 1][: len(parsed)]
    assert parsed[-1].media_sequence == 6
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in texts[-1]


def test_takeover_restart_flushes_the_open_segment_with_the_next_call() -> None:
    packager = configured()
    first = run(packager, MEDIA.frames[:150])
    assert len(ready(first)) == 1
    packager.restart()
    flushed = packager.on_config(MEDIA.video)
    (segment,) = ready(flushed)
    assert segment.sequence == 1 and 0 < segment.duration < 2
    assert "#EXT-X-ENDLIST" not in playlists(flushed)[0]
    assert first_video_pes_is_an_idr_with_parameter_sets(segment.data)
    assert run(packager, MEDIA.audio_frames[:5]) == []  # no audio configuration yet: dropped


def test_deferred_events_survive_an_unsupported_config() -> None:
    packager = configured()
    run(packager, MEDIA.frames[:150])
    packager.restart()
    with pytest.raises(UnsupportedCodec):
        packager.on_config(dataclasses.replace(MEDIA.audio, codec="mp3"))
    (segment,) = ready(packager.on_config(MEDIA.video))
    assert segment.sequence == 1


def test_timestamp_jump_closes_the_segment_and_marks_a_discontinuity() -> None:
    packager = configured()
    shifted = [dataclasses.replace(f, pts=f.pts + 60_000, dts=f.dts + 60_000) for f in MEDIA.frames]
    events = run(packager, MEDIA.frames[:300]) + run(packager, shifted) + packager.end()
    segments = ready(events)
    assert [s.discontinuity for s in segments] == [False, False, False, True, False, False, False]
    last_before = [f for f in MEDIA.frames[:300] if f.track is TrackKind.VIDEO][-1]
    assert segments[2].duration == Fraction(last_before.dts + 40 - 4000, 1000)
    assert segments[3].program_date_time == wallclock(shifted[0])


def test_audio_only_stream() -> None:
    packager = HlsPackager(target_duration=Fraction(1))
    packager.on_config(MEDIA.audio)
    events = run(packager, MEDIA.audio_frames) + packager.end()
    segments = ready(events)
    assert len(segments) >= 6
    assert all(s.duration >= 1 for s in segments[:-1])
    for segment in segments:
        packets = parse_packets(segment.data)
        first_audio = parse_pes(packets, AUDIO_PID)[0]
        assert first_audio.random_access and first_audio.pcr is not None


def test_video_config_after_audio_frames_cuts_at_the_first_keyframe() -> None:
    packager = HlsPackager()
    packager.on_config(MEDIA.audio)
    audio_first = [f for f in MEDIA.frames[:40] if f.track is TrackKind.AUDIO]
    assert run(packager, audio_first) == []
    packager.on_config(MEDIA.video)
    events = run(packager, MEDIA.frames[40:]) + packager.end()
    segments = ready(events)
    audio_segment, first_video_segment = segments[0], segments[1]
    assert parse_pes(parse_packets(audio_segment.data), VIDEO_PID) == []
    assert first_video_pes_is_an_idr_with_parameter_sets(first_video_segment.data)


def test_frames_without_configuration_are_dropped() -> None:
    packager = HlsPackager()
    assert run(packager, MEDIA.frames) == []
    assert packager.end() == []
    assert packager.segments == ()


def test_malformed_frame_leaves_the_packager_unchanged() -> None:
    packager = configured()
    run(packager, MEDIA.frames[:10])
    bad = dataclasses.replace(MEDIA.video_frames[25], data=b"\x00\x00\x00\x09\x65")
    reference = configured()
    run(reference, MEDIA.frames[:10])
    with pytest.raises(RemoteProtocolError):
        packager.on_frame(bad, T0)
    rest = MEDIA.frames[10:]
    assert ready(run(packager, rest) + packager.end()) == ready(run(reference, rest) + reference.end())


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError):
        HlsPackager(target_duration=Fraction(0))
    with pytest.raises(ConfigError):
        HlsPackager(playlist_length=0)
    with pytest.raises(ConfigError):
        HlsPackager(expire_grace=-1)
    with pytest.raises(ConfigError):
        HlsPackager(flush_bytes=0)


def avcc(nal: bytes) -> bytes:
    return struct.pack(">I", len(nal)) + nal


IDR = avcc(b"\x65\x88\x84\x00\x33")
NON_IDR = avcc(b"\x41\x9a\x02")


@st.composite
def frame_sequences(draw: st.DrawFn) -> list[Frame]:
    frames: list[Frame] = []
    dts = draw(st.integers(0, 10_000))
    audio_dts = dts
    for _ in range(draw(st.integers(1, 300))):
        step = draw(st.sampled_from([33, 40, 40, 40, 67, 500, 1500, -3000]))
        dts = max(0, dts + step)
        keyframe = draw(st.integers(0, 9)) == 0
        frames.append(Frame(TrackKind.VIDEO, dts, dts, MILLISECONDS, keyframe, IDR if keyframe else NON_IDR))
        while audio_dts < dts and draw(st.booleans()):
            audio_dts = max(audio_dts + 23, dts - 100)
            frames.append(Frame(TrackKind.AUDIO, audio_dts, audio_dts, MILLISECONDS, True, b"\x21\x10"))
    return frames


@settings(max_examples=60, deadline=None)
@given(
    frame_sequences(),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(0, 3),
    st.sampled_from([None, 1, 400, 5000]),
)
def test_segmenter_invariants(
    frames: list[Frame], target: int, length: int, grace: int, flush_bytes: int | None
) -> None:
    packager = configured(
        target_duration=Fraction(target), playlist_length=length, expire_grace=grace, flush_bytes=flush_bytes
    )
    events = run(packager, frames) + packager.end()
    segments = ready(events)
    assert [s.sequence for s in segments] == list(range(len(segments)))
    starts = []
    for segment in segments:
        assert first_video_pes_is_an_idr_with_parameter_sets(segment.data)
        starts.append(parse_pes(parse_packets(segment.data), VIDEO_PID)[0].decode_ts - TIMESTAMP_OFFSET)
    for index, segment in enumerate(segments[:-1]):
        if not segments[index + 1].discontinuity:
            assert segment.duration == Fraction(starts[index + 1] - starts[index], 90_000)
    longest = Fraction(0)
    expired: list[str] = []
    for event in events:
        if isinstance(event, SegmentReady):
            longest = max(longest, event.segment.duration)
        elif isinstance(event, SegmentExpired):
            expired.append(event.name)
        elif isinstance(event, PlaylistUpdated):
            parsed = m3u8.loads(event.text)
            assert parsed.target_duration == max(1, math.ceil(longest))
            assert 1 <= len(parsed.segments) <= length
            for item in parsed.segments:
                assert math.floor(item.duration + 0.5) <= parsed.target_duration
                assert item.uri not in expired
    assert len(expired) == len(set(expired)) == max(0, len(segments) - length - grace)
    assert expired == [s.name for s in segments[: len(expired)]]
    assert len(packager.segments) == min(length, len(segments))


def ffprobe_json(ffprobe: str, *args: str) -> dict[str, list[dict[str, object]]]:
    result = subprocess.run(
        [ffprobe, "-v", "error", *args, "-of", "json"], capture_output=True, check=True, text=True
    )
    assert result.stderr == ""
    report: dict[str, list[dict[str, object]]] = json.loads(result.stdout)
    return report


def test_ffprobe_and_ffmpeg_read_segments_and_playlist(tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    ffmpeg = require_tool("ffmpeg")
    packager = configured(playlist_length=10)
    playlist = write_out(tmp_path, run(packager, MEDIA.frames) + packager.end())
    for segment in packager.segments:
        report = ffprobe_json(ffprobe, "-show_streams", str(tmp_path / segment.name))
        streams = {s["codec_type"]: s for s in report["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
        assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    report = ffprobe_json(ffprobe, "-show_streams", "-show_packets", str(playlist))
    streams = {str(s["codec_type"]): s for s in report["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    for kind, frames in (("video", MEDIA.video_frames), ("audio", MEDIA.audio_frames)):
        packets = [p for p in report["packets"] if p["stream_index"] == streams[kind]["index"]]
        # Timestamps survive unchanged on both tracks, so audio and video stay in sync.
        assert [p["pts"] for p in packets] == [f.pts * 90 + TIMESTAMP_OFFSET for f in frames]
        dts = [int(str(p["dts"])) for p in packets]
        assert dts == sorted(dts)
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(playlist), "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""


def test_ffmpeg_plays_across_a_republish(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    packager = configured(playlist_length=20)
    events = run(packager, MEDIA.frames) + packager.end()
    packager.restart()
    events += packager.on_config(MEDIA.video) + packager.on_config(MEDIA.audio)
    events += run(packager, MEDIA.frames) + packager.end()
    playlist = write_out(tmp_path, events)
    assert playlist.read_text().count("#EXT-X-DISCONTINUITY\n") == 1
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(playlist), "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""
