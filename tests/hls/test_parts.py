"""The LL-HLS packager: where parts and segments are cut, what they carry, and its events."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import ConfigError, LocalProtocolError, NotFound, RemoteProtocolError
from streamit.fmp4 import AUDIO_TRACK_ID, VIDEO_TRACK_ID, fragments, parse_fragment, parse_init
from streamit.hls.parts import (
    InitSegmentReady,
    LlHlsEvent,
    LlHlsPackager,
    Part,
    PartedSegment,
    PartReady,
    PlaylistUpdated,
    SegmentExpired,
    SegmentReady,
    part_name,
    segment_name,
)
from streamit.media.frame import MILLISECONDS, Frame, TrackKind
from tests.fmp4.flv_media import BFRAMES_FLV, demux_file

CONFIGS = demux_file(BFRAMES_FLV)
assert CONFIGS.video is not None and CONFIGS.audio is not None
VIDEO_CONFIG = CONFIGS.video
AUDIO_CONFIG = CONFIGS.audio  # AAC-LC 48 kHz
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PART_TARGET = Fraction(33, 100)


def video_frame(index: int, gop: int = 30, fps: int = 30, base: int = 0) -> Frame:
    dts = base + round(index * 1000 / fps)
    data = struct.pack(">IcI", 5, b"V", index)  # a unique AVCC-looking payload per frame
    return Frame(TrackKind.VIDEO, dts + 67, dts, MILLISECONDS, index % gop == 0, data)


def audio_frame(index: int, base: int = 0) -> Frame:
    dts = base + round(index * 1024 * 1000 / 48_000)
    return Frame(TrackKind.AUDIO, dts, dts, MILLISECONDS, True, b"A" + struct.pack(">I", index))


def stream(
    seconds: float, *, video: bool = True, audio: bool = True, gop: int = 30, base: int = 0
) -> list[Frame]:
    frames: list[Frame] = []
    if video:
        frames += [video_frame(i, gop, base=base) for i in range(int(seconds * 30))]
    if audio:
        frames += [audio_frame(i, base) for i in range(int(seconds * 48_000 / 1024))]
    # RTMP interleaves by timestamp; audio first on ties.
    return sorted(frames, key=lambda f: (f.dts, f.track is TrackKind.VIDEO))


def run(packager: LlHlsPackager, frames: list[Frame], *, end: bool = True) -> list[LlHlsEvent]:
    events: list[LlHlsEvent] = []
    for config in (VIDEO_CONFIG, AUDIO_CONFIG):
        if any(f.track is (TrackKind.VIDEO if config is VIDEO_CONFIG else TrackKind.AUDIO) for f in frames):
            events += packager.on_config(config)
    for frame in frames:
        events += packager.on_frame(frame, START + timedelta(milliseconds=frame.dts))
    if end:
        events += packager.end()
    return events


def parts_of(events: list[LlHlsEvent]) -> list[Part]:
    return [e.part for e in events if isinstance(e, PartReady)]


def segments_of(events: list[LlHlsEvent]) -> list[PartedSegment]:
    return [e.segment for e in events if isinstance(e, SegmentReady)]


def test_names() -> None:
    assert segment_name(42) == "seg-000042.m4s"
    assert part_name(42, 3) == "part-000042-3.m4s"


def test_segments_cut_at_keyframes_after_the_target_and_parts_within_the_part_target() -> None:
    events = run(LlHlsPackager(part_target=PART_TARGET), stream(7, gop=30))
    segments = segments_of(events)
    assert [s.msn for s in segments] == [0, 1, 2, 3]
    assert [s.duration for s in segments[:3]] == [2, 2, 2]  # 1 s GOP, 2 s target
    assert [s.program_date_time for s in segments] == [START + timedelta(seconds=2 * i) for i in range(4)]
    parts = parts_of(events)
    assert all(part.duration <= PART_TARGET for part in parts)
    for segment in segments:
        assert segment.parts[0].independent  # every segment starts with a keyframe
        assert [p.index for p in segment.parts] == list(range(len(segment.parts)))
        assert sum(p.duration for p in segment.parts) == segment.duration
        assert segment.data == b"".join(p.data for p in segment.parts)
        # All parts but the last of a segment are close to the target (9 frames of 1/30 s).
        assert all(p.duration == Fraction(3, 10) for p in segment.parts[:-1])
    assert parts == [p for s in segments for p in s.parts]


def test_a_part_is_independent_exactly_when_it_starts_with_a_keyframe() -> None:
    # Keyframes every 9 frames (0.3 s): parts of 9 frames line up with them.
    events = run(LlHlsPackager(part_target=PART_TARGET), stream(6, gop=9))
    info = parse_init(next(e.data for e in events if isinstance(e, InitSegmentReady)))
    flags = {track_id: track.default_sample_flags for track_id, track in info.tracks.items()}
    independent_seen = 0
    for part in parts_of(events):
        video = next(r for r in parse_fragment(part.data, flags).runs if r.track_id == VIDEO_TRACK_ID)
        assert part.independent == video.samples[0].sync
        independent_seen += part.independent
    assert independent_seen > len(segments_of(events))  # mid-segment keyframes start parts too


def test_every_frame_is_in_exactly_one_part_with_continuous_timing() -> None:
    frames = stream(5)
    events = run(LlHlsPackager(), frames)
    runs: dict[int, list[tuple[int, int, int, bytes]]] = {VIDEO_TRACK_ID: [], AUDIO_TRACK_ID: []}
    expected_next: dict[int, int] = {}
    for part in parts_of(events):
        for track_run in parse_fragment(part.data).runs:
            # tfdt of every part continues where the previous part of the track ended.
            if track_run.track_id in expected_next:
                assert track_run.base_media_decode_time == expected_next[track_run.track_id]
            for sample in track_run.samples:
                runs[track_run.track_id].append(
                    (sample.decode_time, sample.duration, sample.composition_offset, sample.data)
                )
            last = track_run.samples[-1]
            expected_next[track_run.track_id] = last.decode_time + last.duration
    video = [f for f in frames if f.track is TrackKind.VIDEO]
    # Audio that arrives before the first keyframe is dropped (the tie at DTS 0 arrives first).
    first_video = next(i for i, f in enumerate(frames) if f.track is TrackKind.VIDEO)
    audio = [f for f in frames[first_video:] if f.track is TrackKind.AUDIO]
    assert frames[first_video - 1].dts == 0
    assert [s[3] for s in runs[VIDEO_TRACK_ID]] == [f.data for f in video]
    assert [s[0] for s in runs[VIDEO_TRACK_ID]] == [f.dts * 90 for f in video]
    assert all(s[2] == 67 * 90 for s in runs[VIDEO_TRACK_ID])
    assert [s[3] for s in runs[AUDIO_TRACK_ID]] == [f.data for f in audio]
    assert [s[0] for s in runs[AUDIO_TRACK_ID]] == [f.dts * 48 for f in audio]


def test_audio_only_streams_are_cut_on_any_frame() -> None:
    events = run(LlHlsPackager(), stream(5, video=False))
    init = next(e for e in events if isinstance(e, InitSegmentReady))
    assert list(parse_init(init.data).tracks) == [AUDIO_TRACK_ID]
    segments = segments_of(events)
    assert len(segments) == 3
    assert all(Fraction(2) <= s.duration < Fraction(2) + Fraction(1024, 48_000) for s in segments[:2])
    parts = parts_of(events)
    assert all(p.independent and p.duration <= PART_TARGET for p in parts)
    assert all(p.duration >= Fraction(3, 10) for s in segments for p in s.parts[:-1])


def test_frames_before_the_first_keyframe_and_of_unconfigured_tracks_are_dropped() -> None:
    packager = LlHlsPackager()
    assert packager.on_frame(video_frame(0), START) == []  # no configuration yet
    packager.on_config(VIDEO_CONFIG)
    packager.on_config(AUDIO_CONFIG)
    assert packager.on_frame(audio_frame(0), START) == []
    assert packager.on_frame(video_frame(1), START) == []  # not a keyframe
    with pytest.raises(NotFound):
        packager.playlist()
    with pytest.raises(NotFound):
        packager.init_segment  # noqa: B018 - the property raises
    events = packager.on_frame(video_frame(30), START)
    assert [type(e) for e in events] == [InitSegmentReady]
    assert packager.init_segment == ("init.mp4", events[0].data)  # type: ignore[union-attr]


def test_first_playlist_and_preload_hint_follow_the_parts() -> None:
    packager = LlHlsPackager()
    packager.on_config(VIDEO_CONFIG)
    events: list[LlHlsEvent] = []
    index = 0
    while not parts_of(events):
        events += packager.on_frame(video_frame(index), START)
        index += 1
    assert isinstance(events[-1], PlaylistUpdated)
    assert packager.next_part == (0, 1)
    assert packager.has_part(0, 0) and not packager.has_part(0, 1) and not packager.has_part(1, 0)
    text = events[-1].text
    assert '#EXT-X-PART:DURATION=0.3,URI="part-000000-0.m4s",INDEPENDENT=YES' in text
    assert text.endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-000000-1.m4s"\n')


def test_events_are_ordered_parts_then_segment_then_playlist() -> None:
    events = run(LlHlsPackager(), stream(3), end=False)
    first_segment = next(i for i, e in enumerate(events) if isinstance(e, SegmentReady))
    assert isinstance(events[first_segment - 1], PartReady)
    assert isinstance(events[first_segment + 1], PlaylistUpdated)
    playlist = events[first_segment + 1].text  # type: ignore[union-attr]
    assert "seg-000000.m4s" in playlist and "part-000001-0.m4s,INDEPENDENT" not in playlist
    assert playlist.endswith('seg-000000.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-000001-0.m4s"\n')
    assert isinstance(events[0], InitSegmentReady)


def test_end_flushes_and_ends_the_playlist() -> None:
    packager = LlHlsPackager()
    events = run(packager, stream(3))
    segments = segments_of(events)
    # The last frame (DTS 2967 ms) lasts the last step seen (2967 - 2933 ms).
    assert [s.duration for s in segments] == [2, Fraction(2967 + 34 - 2000, 1000)]
    assert packager.ended and packager.next_part is None
    assert isinstance(events[-1], PlaylistUpdated) and events[-1].text.endswith("#EXT-X-ENDLIST\n")
    assert "PRELOAD-HINT" not in events[-1].text
    assert packager.end() == []
    with pytest.raises(LocalProtocolError):
        packager.on_frame(video_frame(200), START)


def test_segments_expire_after_the_window_and_grace() -> None:
    events = run(LlHlsPackager(playlist_length=2, expire_grace=1), stream(13))
    expired = [e for e in events if isinstance(e, SegmentExpired)]
    # Seven segments (0-6): 5 and 6 are listed, 4 is in its grace period, 0-3 are gone.
    assert [e.name for e in expired] == [segment_name(msn) for msn in range(4)]
    assert expired[0].part_names == tuple(part_name(0, i) for i in range(7))
    last = [e for e in events if isinstance(e, PlaylistUpdated)][-1].text
    assert "#EXT-X-MEDIA-SEQUENCE:5" in last


def test_a_dts_going_backwards_raises_and_changes_nothing() -> None:
    packager = LlHlsPackager()
    frames = stream(1)
    run(packager, frames, end=False)
    before = packager.playlist()
    with pytest.raises(RemoteProtocolError):
        packager.on_frame(replace(frames[-1], dts=0, pts=0), START)
    assert packager.playlist() == before
    packager.on_frame(video_frame(30), START)  # the stream goes on


def test_a_new_codec_configuration_starts_a_new_init_segment_after_a_discontinuity() -> None:
    packager = LlHlsPackager()
    first = run(packager, stream(3), end=False)
    changed = replace(VIDEO_CONFIG, width=640, height=360)
    events = packager.on_config(changed)
    assert [s.msn for s in segments_of(events)] == [1]  # the open segment is closed
    events += packager.on_frame(video_frame(30, base=3000), START)
    inits = [e for e in first + events if isinstance(e, InitSegmentReady)]
    assert [e.name for e in inits] == ["init.mp4", "init-1.mp4"]
    assert parse_init(inits[1].data).tracks[VIDEO_TRACK_ID].width == 640
    for index in range(31, 45):
        events += packager.on_frame(video_frame(index, base=3000), START)
    text = packager.playlist()
    assert text.index('#EXT-X-MAP:URI="init.mp4"') < text.index("#EXT-X-DISCONTINUITY")
    assert text.index("#EXT-X-DISCONTINUITY") < text.index('#EXT-X-MAP:URI="init-1.mp4"')
    assert packager.on_config(changed) == []  # the same configuration again changes nothing


def test_segments_split_back_into_their_parts() -> None:
    segment = segments_of(run(LlHlsPackager(), stream(3)))[0]
    assert fragments(segment.data) == [part.data for part in segment.parts]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_duration": Fraction(0)},
        {"part_target": Fraction(0)},
        {"part_target": Fraction(3), "target_duration": Fraction(2)},
        {"playlist_length": 0},
        {"expire_grace": -1},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        LlHlsPackager(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fps", "part_target"),
    [
        (30, Fraction(33, 100)),
        (25, Fraction(33, 100)),
        (30, Fraction(1, 2)),
        (60, Fraction(1, 5)),
        (24, Fraction(1)),
    ],
)
def test_regular_frames_give_parts_within_the_part_target(fps: int, part_target: Fraction) -> None:
    packager = LlHlsPackager(part_target=part_target)
    packager.on_config(VIDEO_CONFIG)
    events: list[LlHlsEvent] = []
    for index in range(fps * 5):
        events += packager.on_frame(video_frame(index, gop=fps, fps=fps), START)
    parts = parts_of(events)
    assert parts and all(part.duration <= part_target for part in parts)
    # And no part is much shorter than it could be: one more frame would not have fitted.
    for segment in segments_of(events):
        for part in segment.parts[:-1]:
            assert part.duration + Fraction(1, fps) > part_target - Fraction(2, 1000)
    assert f"PART-TARGET={float(part_target):g}" in packager.playlist()


@settings(deadline=None, max_examples=40)  # shared CI machines are slow; correctness is what matters
@given(
    steps=st.lists(st.integers(1, 400), min_size=2, max_size=150),
    keyframes=st.lists(st.booleans(), min_size=150, max_size=150),
    part_ms=st.integers(100, 1000),
)
def test_any_frame_timing_keeps_the_playlist_valid(
    steps: list[int], keyframes: list[bool], part_ms: int
) -> None:
    packager = LlHlsPackager(part_target=Fraction(part_ms, 1000), target_duration=Fraction(2))
    packager.on_config(VIDEO_CONFIG)
    dts = 0
    events: list[LlHlsEvent] = []
    for index, step in enumerate(steps):
        frame = Frame(TrackKind.VIDEO, dts, dts, MILLISECONDS, index == 0 or keyframes[index], b"v")
        events += packager.on_frame(frame, START)  # renders the playlist, which checks every duration
        dts += step
    events += packager.end()
    parts = parts_of(events)
    # Every frame is in a part; a part overruns its target by less than one frame step.
    # The last frame (DTS = dts - steps[-1]) lasts the last step seen, steps[-2].
    assert sum(p.duration for p in parts) == Fraction(dts - steps[-1] + steps[-2], 1000)
    for part in parts:
        assert part.duration < Fraction(part_ms, 1000) + Fraction(max(steps), 1000)


def test_restart_after_end_continues_numbering_with_a_new_init_and_a_discontinuity() -> None:
    packager = LlHlsPackager(part_target=PART_TARGET)
    first = run(packager, stream(5))
    last_msn = segments_of(first)[-1].msn
    assert packager.restart() == []  # nothing was open
    assert not packager.ended
    # The new publisher's clock starts again at 0: allowed after a restart.
    second = run(packager, stream(5), end=False)
    inits = [e for e in second if isinstance(e, InitSegmentReady)]
    assert [e.name for e in inits] == ["init-1.mp4"]
    playlist = packager.playlist()
    assert "#EXT-X-ENDLIST" not in playlist
    assert playlist.count("#EXT-X-DISCONTINUITY\n") == 1
    assert '#EXT-X-MAP:URI="init-1.mp4"' in playlist
    new_segments = segments_of(second)
    assert new_segments[0].msn == last_msn + 1 and new_segments[0].discontinuity
    names = {p.name for p in parts_of(first)}
    assert names.isdisjoint(p.name for p in parts_of(second))  # no URI is reused


def test_restart_while_open_closes_the_segment_first() -> None:
    packager = LlHlsPackager(part_target=PART_TARGET)
    run(packager, stream(3), end=False)
    assert packager.next_part is not None
    open_msn = packager.next_part[0]
    events = packager.restart()
    closed = segments_of(events)
    assert [s.msn for s in closed] == [open_msn]
    assert isinstance(events[-1], PlaylistUpdated) and "#EXT-X-ENDLIST" not in events[-1].text
    assert packager.next_part is None
    # Frames of the new publisher need their configs again; until then they are dropped.
    assert packager.on_frame(video_frame(0), START) == []
    resumed = run(packager, stream(3), end=False)
    assert parts_of(resumed)[0].msn == open_msn + 1 and segments_of(resumed)[0].discontinuity
