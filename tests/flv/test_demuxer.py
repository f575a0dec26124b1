"""FlvDemuxer against the tag bodies of real ffmpeg FLV files, plus malformed and unsupported input."""

from __future__ import annotations

import itertools
import json
import subprocess
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError, UnsupportedCodec
from streamit.flv import FlvDemuxer, FlvTag, FlvTagType, TimestampUnwrapper
from streamit.media import AudioConfig, Frame, TrackKind, VideoConfig
from streamit.media.frame import MILLISECONDS
from streamit.media.h264 import build_avc_decoder_config, iter_nal_units
from tests.conftest import require_tool
from tests.flv.fixture_tags import FLV_DIR, PROBED, ProbedFile, fixture_tags
from tests.media.bit_writer import BitWriter

Item = VideoConfig | AudioConfig | Frame


def demux(tags: tuple[FlvTag, ...], demuxer: FlvDemuxer | None = None) -> list[Item]:
    demuxer = demuxer or FlvDemuxer()
    items: list[Item] = []
    for tag in tags:
        if tag.tag_type is FlvTagType.VIDEO:
            items += demuxer.feed_video(tag.timestamp, tag.payload)
        elif tag.tag_type is FlvTagType.AUDIO:
            items += demuxer.feed_audio(tag.timestamp, tag.payload)
    return items


def bodies(name: str, tag_type: FlvTagType) -> list[FlvTag]:
    return [tag for tag in fixture_tags(name) if tag.tag_type is tag_type]


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_fixture_configs_match_ffprobe(probed: ProbedFile) -> None:
    items = demux(fixture_tags(probed.name))
    video = [i for i in items if isinstance(i, VideoConfig)]
    audio = [i for i in items if isinstance(i, AudioConfig)]
    assert len(video) == len(audio) == 1
    assert (video[0].width, video[0].height) == (probed.width, probed.height)
    assert (video[0].profile, video[0].level, video[0].fps) == (probed.profile, probed.level, probed.fps)
    assert video[0].codec == "h264"
    assert video[0].codec_string == f"avc1.{video[0].sps[0][1:4].hex()}"
    assert (audio[0].sample_rate, audio[0].channels, audio[0].object_type) == (
        probed.sample_rate,
        probed.channels,
        2,
    )
    # The configs come first, as ffmpeg writes the sequence headers before any frame.
    assert items[:2] == [video[0], audio[0]] or items[:2] == [audio[0], video[0]]


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_fixture_frames(probed: ProbedFile) -> None:
    frames = [i for i in demux(fixture_tags(probed.name)) if isinstance(i, Frame)]
    video = [f for f in frames if f.track is TrackKind.VIDEO]
    audio = [f for f in frames if f.track is TrackKind.AUDIO]
    assert (len(video), len(audio)) == (probed.video_packets, probed.audio_packets)
    assert (video[0].pts, video[0].dts) == probed.first_video_pts_dts
    assert audio[0].pts == probed.first_audio_pts
    assert [f.keyframe for f in video] == [True] + [False] * (len(video) - 1)
    assert all(f.keyframe for f in audio)
    for track in (video, audio):
        assert all(f.time_base == MILLISECONDS and f.pts >= f.dts for f in track)
        assert all(a.dts < b.dts for a, b in itertools.pairwise(track))
    for frame in video:
        assert sum(4 + len(nal) for nal in iter_nal_units(frame.data)) == len(frame.data)


def test_bframes_have_composition_offsets() -> None:
    video = [
        i
        for i in demux(fixture_tags("high_1280x720_bframes.flv"))
        if isinstance(i, Frame) and i.track.value == "video"
    ]
    offsets = {f.pts - f.dts for f in video}
    assert len(offsets) > 1
    # Presentation order is a permutation of decode order shifted by the reorder delay.
    assert sorted(f.pts for f in video) == [f.dts + 80 for f in video]


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_every_packet_matches_ffprobe(probed: ProbedFile) -> None:
    ffprobe = require_tool("ffprobe")
    out = subprocess.run(
        [ffprobe, "-v", "error", "-show_packets", "-of", "json", str(FLV_DIR / probed.name)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = sorted(
        (p["codec_type"], int(p["pts"]), int(p["dts"]), "K" in p["flags"], int(p["size"]))
        for p in json.loads(out)["packets"]
    )
    frames = [i for i in demux(fixture_tags(probed.name)) if isinstance(i, Frame)]
    assert sorted((f.track.value, f.pts, f.dts, f.keyframe, len(f.data)) for f in frames) == expected


@pytest.mark.parametrize("name", [p.name for p in PROBED])
def test_sequence_header_prefixes_fail_or_agree(name: str) -> None:
    for tag_type, feed in ((FlvTagType.VIDEO, "feed_video"), (FlvTagType.AUDIO, "feed_audio")):
        header = bodies(name, tag_type)[0].payload
        (expected,) = getattr(FlvDemuxer(), feed)(0, header)
        for end in range(len(header)):
            try:
                result = getattr(FlvDemuxer(), feed)(0, header[:end])
            except RemoteProtocolError:
                continue
            if end == 0:
                assert result == []
                continue
            # A prefix can only succeed by dropping the optional high-profile tail of the record.
            (config,) = result
            assert {**_fields(config), "record": b""} == {**_fields(expected), "record": b""}
            assert expected.record.startswith(config.record)
        # Trailing bytes after the record are extensions we do not need.
        assert getattr(FlvDemuxer(), feed)(0, header + bytes(8)) == [
            type(expected)(**{**_fields(expected), "record": expected.record + bytes(8)})
        ]


def _fields(config: VideoConfig | AudioConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__slots__}


def test_truncated_or_padded_video_frames_are_rejected() -> None:
    tags = fixture_tags("main_320x180.flv")
    demuxer = FlvDemuxer()
    demux(tags[:3], demuxer)
    body = next(t.payload for t in tags if t.tag_type is FlvTagType.VIDEO and t.payload[1] == 1)
    for end in range(6, len(body), 97):
        with pytest.raises(RemoteProtocolError):
            demuxer.feed_video(0, body[:end])
    with pytest.raises(RemoteProtocolError):
        demuxer.feed_video(0, body + b"\x01")
    assert demuxer.feed_video(0, body[:5]) == []


def test_frames_before_config_are_dropped_and_counted() -> None:
    tags = [t for t in fixture_tags("main_320x180.flv") if t.tag_type is not FlvTagType.SCRIPT_DATA]
    headers = [t for t in tags if t.payload[1] == 0]
    frames = [t for t in tags if t.payload[1] == 1]
    demuxer = FlvDemuxer()
    assert demux(tuple(frames[:5]), demuxer) == []
    assert demuxer.dropped_before_config == 5
    items = demux(tuple(headers + frames[5:]), demuxer)
    assert sum(isinstance(i, Frame) for i in items) == len(frames) - 5


def test_enhanced_rtmp_avc1_and_mp4a_match_legacy_tags() -> None:
    tags = fixture_tags("high_1280x720_bframes.flv")
    legacy = demux(tags)
    enhanced: list[Item] = []
    demuxer = FlvDemuxer()
    for tag in tags:
        body = tag.payload
        if tag.tag_type is FlvTagType.VIDEO and body[1] in (0, 1):
            frame_type = body[0] >> 4
            # PacketType 0 = SequenceStart, 1 = CodedFrames (with SI24 composition time).
            enhanced += demuxer.feed_video(
                tag.timestamp,
                bytes([0x80 | frame_type << 4 | body[1]]) + b"avc1" + body[2:]
                if body[1]
                else bytes([0x80 | frame_type << 4]) + b"avc1" + body[5:],
            )
        elif tag.tag_type is FlvTagType.AUDIO:
            enhanced += demuxer.feed_audio(tag.timestamp, bytes([0x90 | body[1]]) + b"mp4a" + body[2:])
    assert enhanced == legacy


def test_enhanced_rtmp_coded_frames_x_has_no_composition_offset() -> None:
    demuxer = FlvDemuxer()
    demux(fixture_tags("main_320x180.flv")[:3], demuxer)
    body = next(
        t.payload
        for t in fixture_tags("main_320x180.flv")
        if t.tag_type is FlvTagType.VIDEO and t.payload[1] == 1
    )
    (frame,) = demuxer.feed_video(40, b"\x93avc1" + body[5:])
    assert isinstance(frame, Frame)
    assert (frame.pts, frame.dts, frame.keyframe) == (40, 40, True)
    assert demuxer.feed_video(40, b"\x92avc1") == []  # SequenceEnd
    assert demuxer.feed_video(40, b"\x94hvc1amf") == []  # Metadata is ignored whatever the codec


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x12\x00", "Sorenson H.263"),
        (b"\x14\x00", "VP6"),
        (b"\x1c\x00\x00\x00\x00", "HEVC"),
        (b"\x90hvc1", "HEVC"),
        (b"\x91av01\x00\x00\x00", "AV1"),
        (b"\x90vp09", "VP9"),
    ],
)
def test_unsupported_video_codecs(body: bytes, message: str) -> None:
    with pytest.raises(UnsupportedCodec, match=message):
        FlvDemuxer().feed_video(0, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"\x2f\xff\xfb", "MP3"), (b"\xb6\x00", "Speex"), (b"\x90Opus\x00", "Opus"), (b"\x30", "PCM")],
)
def test_unsupported_audio_codecs(body: bytes, message: str) -> None:
    with pytest.raises(UnsupportedCodec, match=message):
        FlvDemuxer().feed_audio(0, body)


def test_ignored_video_bodies() -> None:
    demuxer = FlvDemuxer()
    assert demuxer.feed_video(0, b"") == []
    assert demuxer.feed_video(0, b"\x57\x00") == []  # video info/command frame
    assert demuxer.feed_video(0, b"\x17\x02\x00\x00\x00") == []  # end of sequence
    assert demuxer.feed_audio(0, b"") == []
    assert demuxer.dropped_before_config == 0


@pytest.mark.parametrize(
    "body", [b"\x07\x01\x00\x00\x00", b"\x67\x01\x00\x00\x00", b"\x17\x03\x00\x00\x00", b"\x17\x01\x00"]
)
def test_malformed_video_bodies(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FlvDemuxer().feed_video(0, body)


@pytest.mark.parametrize("body", [b"\xaf", b"\xaf\x02", b"\xaf\x00", b"\xaf\x00\x00\x00"])
def test_malformed_audio_bodies(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FlvDemuxer().feed_audio(0, body)


@pytest.mark.parametrize("length_size", [1, 2, 3])
def test_short_nal_lengths_are_normalised_to_four_bytes(length_size: int) -> None:
    tags = fixture_tags("baseline_322x182_mono.flv")
    legacy = [i for i in demux(tags) if isinstance(i, Frame) and i.track is TrackKind.VIDEO]
    demuxer = FlvDemuxer()
    record = bytearray(bodies("baseline_322x182_mono.flv", FlvTagType.VIDEO)[0].payload[5:])
    record[4] = 0xFC | (length_size - 1)
    (config,) = demuxer.feed_video(0, b"\x17\x00\x00\x00\x00" + record)
    assert isinstance(config, VideoConfig)
    converted: list[Item] = []
    for tag in bodies("baseline_322x182_mono.flv", FlvTagType.VIDEO)[1:]:
        nals = list(iter_nal_units(tag.payload[5:]))
        if length_size == 1 and any(len(n) > 255 for n in nals):
            continue
        body = tag.payload[:5] + b"".join(len(n).to_bytes(length_size, "big") + bytes(n) for n in nals)
        converted += demuxer.feed_video(tag.timestamp, body)
    assert all(frame in legacy for frame in converted)
    assert len(converted) == (0 if length_size == 1 else len(legacy))
    small = [b"\x09\xf0", b"\x41\x9a\x00\x01"]
    body = b"\x27\x01\x00\x00\x00" + b"".join(len(n).to_bytes(length_size, "big") + n for n in small)
    (frame,) = demuxer.feed_video(1000, body)
    assert isinstance(frame, Frame)
    assert frame.data == b"\x00\x00\x00\x02\x09\xf0\x00\x00\x00\x04\x41\x9a\x00\x01"


def test_negative_composition_offset() -> None:
    demuxer = FlvDemuxer()
    demux(fixture_tags("main_320x180.flv")[:3], demuxer)
    (frame,) = demuxer.feed_video(100, b"\x27\x01\xff\xff\xfe\x00\x00\x00\x02\x41\x9a")
    assert isinstance(frame, Frame)
    assert (frame.dts, frame.pts, frame.keyframe) == (100, 98, False)


def test_timestamps_unwrap_per_track() -> None:
    demuxer = FlvDemuxer()
    demux(fixture_tags("main_320x180.flv")[:3], demuxer)
    frame = b"\x27\x01\x00\x00\x00\x00\x00\x00\x02\x41\x9a"
    dts = [demuxer.feed_video(ts, frame)[0] for ts in (0xFFFF_FFF0, 0xFFFF_FFFF, 5, 20)]
    assert [f.dts for f in dts if isinstance(f, Frame)] == [
        0xFFFF_FFF0,
        0xFFFF_FFFF,
        (1 << 32) + 5,
        (1 << 32) + 20,
    ]
    # The audio track has its own clock, which has not wrapped.
    (audio,) = demuxer.feed_audio(0xFFFF_FFF8, b"\xaf\x01\x21")
    assert isinstance(audio, Frame) and audio.dts == 0xFFFF_FFF8


@given(st.lists(st.integers(min_value=0, max_value=(1 << 32) - 1), min_size=1, max_size=30))
def test_frame_timestamps_unwrap_as_the_unwrapper_does(timestamps: list[int]) -> None:
    demuxer = FlvDemuxer()
    demux(fixture_tags("main_320x180.flv")[:3], demuxer)
    video, audio = TimestampUnwrapper(), TimestampUnwrapper()
    frame = b"\x27\x01\x00\x00\x00\x00\x00\x00\x02\x41\x9a"
    for timestamp in timestamps:
        (video_frame,) = demuxer.feed_video(timestamp, frame)
        (audio_frame,) = demuxer.feed_audio(timestamp, b"\xaf\x01\x21")
        assert isinstance(video_frame, Frame) and video_frame.dts == video.unwrap(timestamp)
        assert isinstance(audio_frame, Frame) and audio_frame.dts == audio.unwrap(timestamp)


def sps_without_vui(width_mbs: int, height_mbs: int) -> bytes:
    bits = BitWriter().u(8, 66).u(8, 0xC0).u(8, 30).ue(0)
    bits.ue(0).ue(2).ue(1).u(1, 0).ue(width_mbs - 1).ue(height_mbs - 1).u(1, 1).u(1, 1).u(1, 0).u(1, 0)
    return b"\x67" + bits.to_bytes(trailing_one=True)


@pytest.mark.parametrize(
    ("framerate", "fps"),
    [
        (29.97, Fraction(30000, 1001)),
        (25, Fraction(25)),
        (59.94, Fraction(60000, 1001)),
        (12.5, Fraction(25, 2)),
    ],
)
def test_fps_falls_back_to_metadata(framerate: float, fps: Fraction) -> None:
    demuxer = FlvDemuxer()
    demuxer.feed_metadata({"width": 320.0, "framerate": framerate})
    assert demuxer.metadata == {"width": 320.0, "framerate": framerate}
    record = build_avc_decoder_config(sps_without_vui(20, 15), [b"\x68\xce\x3c\x80"])
    (config,) = demuxer.feed_video(0, b"\x17\x00\x00\x00\x00" + record)
    assert isinstance(config, VideoConfig)
    assert (config.width, config.height, config.fps) == (320, 240, fps)


@pytest.mark.parametrize("framerate", [None, "30", True, 0, -5.0, float("nan"), float("inf")])
def test_unusable_metadata_framerate(framerate: object) -> None:
    demuxer = FlvDemuxer()
    demuxer.feed_metadata({"framerate": framerate})
    record = build_avc_decoder_config(sps_without_vui(20, 15), [b"\x68\xce\x3c\x80"])
    (config,) = demuxer.feed_video(0, b"\x17\x00\x00\x00\x00" + record)
    assert isinstance(config, VideoConfig) and config.fps is None


def configured_demuxer() -> FlvDemuxer:
    demuxer = FlvDemuxer()
    demux(fixture_tags("main_320x180.flv")[:3], demuxer)
    assert demuxer.video_config is not None and demuxer.audio_config is not None
    return demuxer


@settings(max_examples=400, deadline=None)
@given(
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=(1 << 32) - 1),
    st.one_of(
        st.binary(max_size=64),
        st.tuples(
            st.sampled_from(
                [b"\x17\x00", b"\x17\x01", b"\x27\x01", b"\x80", b"\x90", b"\xaf\x00", b"\xaf\x01"]
            ),
            st.binary(max_size=64),
        ).map(lambda t: t[0] + t[1]),
    ),
)
def test_fuzz_only_remote_protocol_errors(configured: bool, video: bool, timestamp: int, body: bytes) -> None:
    demuxer = configured_demuxer() if configured else FlvDemuxer()
    try:
        items = demuxer.feed_video(timestamp, body) if video else demuxer.feed_audio(timestamp, body)
    except RemoteProtocolError:
        return
    for item in items:
        assert isinstance(item, VideoConfig | AudioConfig | Frame)
