"""FLV tag bodies built from configs and frames are byte-identical to ffmpeg's."""

from __future__ import annotations

from fractions import Fraction

import pytest

from streamit.errors import LocalProtocolError
from streamit.flv import (
    FlvDemuxer,
    FlvTagType,
    audio_config_body,
    audio_frame_body,
    video_config_body,
    video_end_of_sequence_body,
    video_frame_body,
)
from streamit.media import AudioConfig, Frame, TrackKind, VideoConfig
from tests.flv.fixture_tags import PROBED, fixture_tags


@pytest.mark.parametrize("name", [p.name for p in PROBED])
def test_round_trip_reproduces_ffmpeg_tag_bodies(name: str) -> None:
    demuxer = FlvDemuxer()
    for tag in fixture_tags(name):
        if tag.tag_type is FlvTagType.VIDEO:
            items = demuxer.feed_video(tag.timestamp, tag.payload)
            if not items:
                assert tag.payload == video_end_of_sequence_body()
                continue
            (item,) = items
            body = video_config_body(item) if isinstance(item, VideoConfig) else video_frame_body(item)
        elif tag.tag_type is FlvTagType.AUDIO:
            (audio,) = demuxer.feed_audio(tag.timestamp, tag.payload)
            body = audio_config_body(audio) if isinstance(audio, AudioConfig) else audio_frame_body(audio)
        else:
            continue
        assert body == tag.payload


def test_frame_in_other_time_base_is_rescaled() -> None:
    frame = Frame(
        TrackKind.VIDEO, pts=9000 + 3600, dts=9000, time_base=Fraction(1, 90000), keyframe=False, data=b""
    )
    assert video_frame_body(frame) == b"\x27\x01\x00\x00\x28"


def test_negative_composition_offset_is_si24() -> None:
    frame = Frame(TrackKind.VIDEO, pts=10, dts=12, time_base=Fraction(1, 1000), keyframe=True, data=b"x")
    assert video_frame_body(frame) == b"\x17\x01\xff\xff\xfex"


@pytest.mark.parametrize(
    ("frame", "build"),
    [
        (Frame(TrackKind.AUDIO, 0, 0, Fraction(1, 1000), True, b""), video_frame_body),
        (Frame(TrackKind.VIDEO, 0, 0, Fraction(1, 1000), True, b""), audio_frame_body),
        (Frame(TrackKind.VIDEO, 1 << 24, 0, Fraction(1, 1000), True, b""), video_frame_body),
    ],
)
def test_invalid_frames(frame: Frame, build: object) -> None:
    assert callable(build)
    with pytest.raises(LocalProtocolError):
        build(frame)
