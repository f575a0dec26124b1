"""The live Stream fan-out: sinks, bounded readers, drop-to-keyframe, late joiners."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError
from streamit.flv import FlvDemuxer, FlvTagType
from streamit.media import AudioConfig, Frame, TrackKind, VideoConfig
from streamit.media.stream import MAX_QUEUED_CONFIGS, Stream, StreamItem, StreamReader
from tests.flv.fixture_tags import fixture_tags

MS = Fraction(1, 1000)
VIDEO_CONFIG = VideoConfig("h264", b"v1", (b"\x67",), (b"\x68",), 320, 180, 100, 13, Fraction(30))
VIDEO_CONFIG_2 = VideoConfig("h264", b"v2", (b"\x67",), (b"\x68",), 640, 360, 100, 30, Fraction(30))
AUDIO_CONFIG = AudioConfig("aac", b"\x11\x90", 2, 48000, 2, 3, 2)


def video(dts: int, keyframe: bool = False, size: int = 10) -> Frame:
    return Frame(TrackKind.VIDEO, dts, dts, MS, keyframe, bytes(size))


def audio(dts: int, size: int = 4) -> Frame:
    return Frame(TrackKind.AUDIO, dts, dts, MS, True, bytes(size))


def drain(reader: StreamReader) -> list[StreamItem]:
    items: list[StreamItem] = []
    while (item := reader.pop()) is not None:
        items.append(item)
    return items


def fixture_items() -> list[StreamItem]:
    demuxer = FlvDemuxer()
    items: list[StreamItem] = []
    for tag in fixture_tags("main_320x180.flv"):
        if tag.tag_type is FlvTagType.VIDEO:
            items += demuxer.feed_video(tag.timestamp, tag.payload)
        elif tag.tag_type is FlvTagType.AUDIO:
            items += demuxer.feed_audio(tag.timestamp, tag.payload)
    return items


def test_sinks_see_everything_in_order() -> None:
    stream = Stream()
    calls: list[tuple[str, StreamItem]] = []
    first = lambda item: calls.append(("first", item))  # noqa: E731
    stream.add_sink(first)
    stream.add_sink(lambda item: calls.append(("second", item)))
    items = fixture_items()
    for item in items:
        stream.push(item)
    assert [c[1] for c in calls[::2]] == items and [c[1] for c in calls[1::2]] == items
    assert {c[0] for c in calls[::2]} == {"first"}
    stream.remove_sink(first)
    stream.remove_sink(first)
    stream.push(audio(10_000))
    assert calls[-1] == ("second", audio(10_000))
    assert stream.video_config is items[0] or stream.video_config is items[1]
    assert stream.gop_start is not None and stream.gop_start.keyframe
    assert stream.frames_in == len(items) - 1


def test_reader_gets_configs_then_starts_at_keyframe() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    stream.push(AUDIO_CONFIG)
    stream.push(video(0, keyframe=True))
    stream.push(video(33))
    reader = stream.open_reader()
    stream.push(audio(40))
    stream.push(video(66))
    stream.push(video(100, keyframe=True))
    stream.push(audio(101))
    assert drain(reader) == [VIDEO_CONFIG, AUDIO_CONFIG, video(100, keyframe=True), audio(101)]
    assert reader.dropped_frames == 0  # skipping to the first keyframe is not a drop


def test_audio_only_stream_starts_immediately() -> None:
    stream = Stream()
    stream.push(AUDIO_CONFIG)
    reader = stream.open_reader()
    stream.push(audio(0))
    assert drain(reader) == [AUDIO_CONFIG, audio(0)]


def test_repeated_config_is_not_fanned_out_again() -> None:
    stream = Stream()
    seen: list[StreamItem] = []
    stream.add_sink(seen.append)
    stream.push(VIDEO_CONFIG)
    stream.push(VideoConfig(**{name: getattr(VIDEO_CONFIG, name) for name in VIDEO_CONFIG.__slots__}))
    stream.push(VIDEO_CONFIG_2)
    assert seen == [VIDEO_CONFIG, VIDEO_CONFIG_2]


def test_on_readable_fires_on_empty_to_non_empty_and_end() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    wakeups: list[int] = []
    reader = stream.open_reader()
    reader.on_readable = lambda: wakeups.append(len(reader))
    stream.push(video(0, keyframe=True))
    stream.push(video(33))
    assert wakeups == []  # the config was already queued
    drain(reader)
    stream.push(video(66))
    stream.push(video(100))
    assert wakeups == [1]
    drain(reader)
    assert not reader.at_end
    stream.end()
    assert wakeups == [1, 0]
    assert reader.at_end
    stream.end()
    with pytest.raises(LocalProtocolError):
        stream.push(video(133))
    with pytest.raises(LocalProtocolError):
        stream.open_reader()


def test_on_readable_given_at_open() -> None:
    stream = Stream()
    stream.push(AUDIO_CONFIG)
    wakeups: list[str] = []
    reader = stream.open_reader(on_readable=lambda: wakeups.append("x"))
    assert wakeups == ["x"] and len(reader) == 1


def test_slow_reader_drops_to_next_keyframe_by_frame_count() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    reader = stream.open_reader(max_frames=4, max_bytes=1_000)
    stream.push(video(0, keyframe=True))
    for dts in (33, 66, 100):
        stream.push(video(dts))
    assert reader.queued_frames == 4
    stream.push(audio(110))  # overflow: the 4 queued frames and this one are lost
    stream.push(video(133))  # still waiting for a keyframe: lost
    stream.push(video(166, keyframe=True))
    stream.push(audio(170))
    assert reader.dropped_frames == 6
    assert drain(reader) == [VIDEO_CONFIG, video(166, keyframe=True), audio(170)]


def test_keyframe_that_overflows_restarts_the_queue() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    reader = stream.open_reader(max_frames=100, max_bytes=50)
    stream.push(video(0, keyframe=True, size=20))
    stream.push(video(33, size=20))
    stream.push(video(66, keyframe=True, size=20))
    assert reader.dropped_frames == 2
    assert drain(reader) == [VIDEO_CONFIG, video(66, keyframe=True, size=20)]


def test_frame_larger_than_the_byte_cap_is_dropped() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    reader = stream.open_reader(max_frames=10, max_bytes=50)
    stream.push(video(0, keyframe=True, size=51))
    stream.push(video(16, size=5))  # references the lost keyframe
    assert reader.dropped_frames == 2 and reader.queued_frames == 0
    stream.push(video(33, keyframe=True, size=50))
    assert reader.queued_bytes == 50


def test_pending_config_change_survives_overflow() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    stream.push(AUDIO_CONFIG)
    reader = stream.open_reader(max_frames=2, max_bytes=1_000)
    stream.push(video(0, keyframe=True))
    stream.push(VIDEO_CONFIG_2)
    stream.push(video(33, keyframe=True))
    stream.push(video(66))  # overflow
    stream.push(video(100, keyframe=True))
    assert drain(reader) == [VIDEO_CONFIG_2, AUDIO_CONFIG, video(100, keyframe=True)]


def test_config_storm_is_bounded() -> None:
    stream = Stream()
    reader = stream.open_reader()
    for index in range(50):
        stream.push(VideoConfig("h264", bytes([index]), (), (), 2, 2, 66, 10, None))
        stream.push(AudioConfig("aac", bytes([index]), 2, 48000, 2, 3, 2))
        assert reader.queued_configs <= MAX_QUEUED_CONFIGS
    items = drain(reader)
    assert [type(item) for item in items][-2:] == [VideoConfig, AudioConfig]
    assert items[-2] == stream.video_config and items[-1] == stream.audio_config


def test_closed_reader_is_detached() -> None:
    stream = Stream()
    stream.push(VIDEO_CONFIG)
    reader = stream.open_reader()
    other = stream.open_reader()
    assert stream.readers == (reader, other)
    reader.close()
    reader.close()
    assert reader.closed and reader.at_end and reader.pop() is None
    assert list(stream.readers) == [other]
    stream.push(video(0, keyframe=True))
    assert len(reader) == 0 and len(other) == 2


@pytest.mark.parametrize(("max_frames", "max_bytes"), [(0, 10), (10, 0)])
def test_reader_caps_must_be_positive(max_frames: int, max_bytes: int) -> None:
    with pytest.raises(LocalProtocolError):
        Stream().open_reader(max_frames=max_frames, max_bytes=max_bytes)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("video"), st.booleans(), st.integers(min_value=0, max_value=300)),
        st.tuples(st.just("audio"), st.just(False), st.integers(min_value=0, max_value=60)),
        st.tuples(st.just("vconfig"), st.booleans(), st.just(0)),
        st.tuples(st.just("aconfig"), st.booleans(), st.just(0)),
        st.tuples(st.just("pop"), st.booleans(), st.integers(min_value=1, max_value=5)),
        st.tuples(st.just("open"), st.booleans(), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS, st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=600))
def test_reader_queues_never_exceed_caps(
    operations: list[tuple[str, bool, int]], max_frames: int, max_bytes: int
) -> None:
    stream = Stream()
    readers = [stream.open_reader(max_frames=max_frames, max_bytes=max_bytes)]
    delivered: dict[int, list[StreamItem]] = {0: []}
    pushed_frames = 0
    for dts, (kind, flag, value) in enumerate(operations, start=1):
        if kind == "video":
            stream.push(video(dts, keyframe=flag, size=value))
            pushed_frames += 1
        elif kind == "audio":
            stream.push(audio(dts, size=value))
            pushed_frames += 1
        elif kind == "vconfig":
            stream.push(VIDEO_CONFIG if flag else VIDEO_CONFIG_2)
        elif kind == "aconfig":
            stream.push(AUDIO_CONFIG if flag else AudioConfig("aac", b"\x12\x10", 2, 44100, 2, 4, 2))
        elif kind == "pop":
            index = len(readers) - 1 if flag else 0
            for _ in range(value):
                item = readers[index].pop()
                if item is not None:
                    delivered[index].append(item)
        else:
            readers.append(stream.open_reader(max_frames=max_frames, max_bytes=max_bytes))
            delivered[len(readers) - 1] = []
        for reader in readers:
            assert reader.queued_frames <= max_frames
            assert reader.queued_bytes <= max_bytes
            assert reader.queued_configs <= MAX_QUEUED_CONFIGS
            assert len(reader) == reader.queued_frames + reader.queued_configs
    for index, reader in enumerate(readers):
        delivered[index] += drain(reader)
        frames = [item for item in delivered[index] if isinstance(item, Frame)]
        # Order is preserved, and every frame was either delivered or counted as dropped/skipped.
        assert [f.dts for f in frames] == sorted(f.dts for f in frames)
        if index == 0:
            assert len(frames) + reader.dropped_frames <= pushed_frames
        # A video frame is only ever delivered after a config and after a keyframe of its reader.
        first_video = next((f for f in frames if f.track is TrackKind.VIDEO), None)
        if first_video is not None:
            assert first_video.keyframe
