"""H.264: avcC and SPS parsing of real x264 output, AVCC ↔ Annex B, NAL helpers."""

from __future__ import annotations

import contextlib
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.flv import FlvTagType
from streamit.media.h264 import (
    ACCESS_UNIT_DELIMITER,
    AvcDecoderConfig,
    NalUnitType,
    SequenceParameterSet,
    avcc_to_annexb,
    build_avc_decoder_config,
    contains_nal_type,
    is_idr,
    iter_nal_units,
    nal_unit_types,
    parse_avc_decoder_config,
    parse_sps,
    split_annexb,
    to_four_byte_lengths,
)
from tests.conftest import require_tool
from tests.flv.fixture_tags import MEDIA_DIR, PROBED, ProbedFile, fixture_tags
from tests.media.bit_writer import BitWriter


def avc_record(name: str) -> bytes:
    body = next(t.payload for t in fixture_tags(name) if t.tag_type is FlvTagType.VIDEO)
    assert body[:2] == b"\x17\x00"
    return body[5:]


def video_frames(name: str) -> list[bytes]:
    return [t.payload[5:] for t in fixture_tags(name) if t.tag_type is FlvTagType.VIDEO and t.payload[1] == 1]


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_avc_decoder_config_of_fixture(probed: ProbedFile) -> None:
    record = avc_record(probed.name)
    config = parse_avc_decoder_config(record)
    assert config.nal_length_size == 4
    assert (config.profile_indication, config.level_indication) == (probed.profile, probed.level)
    assert len(config.sps) == len(config.pps) == 1
    assert config.sps[0][0] & 0x1F == NalUnitType.SPS
    assert config.pps[0][0] & 0x1F == NalUnitType.PPS
    # Trailing bytes (the high-profile extension or anything else) do not change the result.
    assert parse_avc_decoder_config(record + b"\xfd\xf8\xf8\x00\x99") == config


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_avc_decoder_config_prefixes(probed: ProbedFile) -> None:
    record = avc_record(probed.name)
    full = parse_avc_decoder_config(record)
    for end in range(len(record)):
        with contextlib.suppress(RemoteProtocolError):
            assert parse_avc_decoder_config(record[:end]) == full


def test_build_avc_decoder_config_round_trip() -> None:
    config = parse_avc_decoder_config(avc_record("main_320x180.flv"))
    rebuilt = build_avc_decoder_config(config.sps[0], config.pps, nal_length_size=2)
    assert parse_avc_decoder_config(rebuilt) == AvcDecoderConfig(100, 0, 13, 2, config.sps, config.pps)
    assert rebuilt == avc_record("main_320x180.flv")[: len(rebuilt)].replace(b"\xff\xe1", b"\xfd\xe1", 1)
    with pytest.raises(LocalProtocolError):
        build_avc_decoder_config(config.sps[0], [])


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"\x02\x64\x00\x0d\xff\xe1\x00",
        b"\x01\x64\x00\x0d\xff\xe1\x00\x00\x01",
        b"\x01\x64\x00\x0d\xff\xe1\x00\x05\x67",
    ],
)
def test_avc_decoder_config_malformed(record: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_avc_decoder_config(record)


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_sps_of_fixture_matches_ffprobe(probed: ProbedFile) -> None:
    sps_nal = parse_avc_decoder_config(avc_record(probed.name)).sps[0]
    sps = parse_sps(sps_nal)
    assert (sps.width, sps.height) == (probed.width, probed.height)
    assert (sps.profile_idc, sps.level_idc, sps.fps) == (probed.profile, probed.level, probed.fps)
    assert (sps.chroma_format_idc, sps.bit_depth_luma, sps.bit_depth_chroma, sps.frame_mbs_only) == (
        1,
        8,
        8,
        True,
    )
    # Whole, with trailing bytes, and every prefix: the same answer or a RemoteProtocolError.
    assert parse_sps(sps_nal + b"\x80\x00\x00\x03\x01") == sps
    for end in range(len(sps_nal)):
        with contextlib.suppress(RemoteProtocolError):
            assert parse_sps(sps_nal[:end]) == sps


def high_sps(
    *,
    width_mbs: int,
    height_map_units: int,
    frame_mbs_only: bool,
    crop: tuple[int, int, int, int],
    chroma_format_idc: int = 1,
    scaling: bool = False,
    poc_type: int = 0,
    timing: tuple[int, int] | None = None,
) -> bytes:
    bits = BitWriter().u(8, 100).u(8, 0).u(8, 40).ue(0)
    bits.ue(chroma_format_idc)
    if chroma_format_idc == 3:
        bits.u(1, 0)
    bits.ue(2).ue(2).u(1, 0)
    bits.u(1, 1 if scaling else 0)
    if scaling:
        # List 0 present with a few deltas then an explicit stop (nextScale 0); list 6 uses 64 deltas of 0.
        for index in range(8 if chroma_format_idc != 3 else 12):
            if index == 0:
                bits.u(1, 1).se(3).se(-2).se(-9)
            elif index == 6:
                bits.u(1, 1)
                for _ in range(64):
                    bits.se(0)
            else:
                bits.u(1, 0)
    bits.ue(0).ue(poc_type)
    if poc_type == 0:
        bits.ue(2)
    elif poc_type == 1:
        bits.u(1, 0).se(-1).se(1).ue(3).se(5).se(-5).se(0)
    bits.ue(4).u(1, 0).ue(width_mbs - 1).ue(height_map_units - 1)
    bits.u(1, 1 if frame_mbs_only else 0)
    if not frame_mbs_only:
        bits.u(1, 1)
    bits.u(1, 1)
    if any(crop):
        bits.u(1, 1)
        for value in crop:
            bits.ue(value)
    else:
        bits.u(1, 0)
    if timing is None:
        bits.u(1, 0)
    else:
        # VUI: extended SAR, overscan, signal type with colour description, chroma location, timing.
        bits.u(1, 1).u(1, 1).u(8, 255).u(16, 4).u(16, 3).u(1, 1).u(1, 0)
        bits.u(1, 1).u(3, 5).u(1, 0).u(1, 1).u(24, 0x010101).u(1, 1).ue(0).ue(0)
        bits.u(1, 1).u(32, timing[0]).u(32, timing[1]).u(1, 1)
    rbsp = bits.to_bytes(trailing_one=True)
    # Re-insert emulation prevention as an encoder would (H.264 §7.4.1).
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return b"\x67" + bytes(out)


@pytest.mark.parametrize(
    ("kwargs", "size", "fps"),
    [
        (
            {"width_mbs": 120, "height_map_units": 68, "frame_mbs_only": True, "crop": (0, 0, 0, 4)},
            (1920, 1080),
            None,
        ),
        # Interlaced: map units are field macroblock pairs, crop units double vertically.
        (
            {"width_mbs": 120, "height_map_units": 34, "frame_mbs_only": False, "crop": (0, 0, 0, 2)},
            (1920, 1080),
            None,
        ),
        (
            {
                "width_mbs": 45,
                "height_map_units": 36,
                "frame_mbs_only": True,
                "crop": (1, 2, 3, 0),
                "chroma_format_idc": 3,
            },
            (717, 573),
            None,
        ),
        (
            {
                "width_mbs": 45,
                "height_map_units": 36,
                "frame_mbs_only": True,
                "crop": (1, 0, 1, 0),
                "chroma_format_idc": 2,
            },
            (718, 575),
            None,
        ),
        (
            {
                "width_mbs": 45,
                "height_map_units": 36,
                "frame_mbs_only": True,
                "crop": (0, 0, 0, 0),
                "scaling": True,
                "poc_type": 1,
                "timing": (1001, 60000),
            },
            (720, 576),
            Fraction(30000, 1001),
        ),
        (
            {
                "width_mbs": 4,
                "height_map_units": 3,
                "frame_mbs_only": True,
                "crop": (0, 0, 0, 0),
                "poc_type": 2,
                "timing": (0, 50),
            },
            (64, 48),
            None,
        ),
    ],
)
def test_synthetic_high_profile_sps(
    kwargs: dict[str, object], size: tuple[int, int], fps: Fraction | None
) -> None:
    sps = parse_sps(high_sps(**kwargs))  # type: ignore[arg-type]
    assert isinstance(sps, SequenceParameterSet)
    assert ((sps.width, sps.height), sps.fps, sps.profile_idc, sps.level_idc) == (size, fps, 100, 40)


@pytest.mark.parametrize(
    "nal",
    [
        b"",
        b"\x68\x64\x00\x1f",  # a PPS header
        b"\xe7\x64\x00\x1f\xac",  # forbidden_zero_bit set
        b"\x67\x64\x00",
        b"\x67\x42\x00\x1e\x00\x00\x00\x00\x00",  # exp-Golomb code with too many leading zeros
    ],
)
def test_sps_malformed(nal: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_sps(nal)


def test_sps_cropping_everything_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="cropping"):
        parse_sps(high_sps(width_mbs=1, height_map_units=1, frame_mbs_only=True, crop=(4, 4, 0, 0)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_sps_only_remote_protocol_errors(body: bytes) -> None:
    try:
        sps = parse_sps(b"\x67" + body)
    except RemoteProtocolError:
        return
    assert sps.width > 0 and sps.height > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_avc_decoder_config_only_remote_protocol_errors(body: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_avc_decoder_config(b"\x01" + body)


def test_nal_helpers_on_fixture_frames() -> None:
    frames = video_frames("main_320x180.flv")
    assert nal_unit_types(frames[0]) == [NalUnitType.SEI, NalUnitType.IDR_SLICE]
    assert is_idr(frames[0]) and not is_idr(frames[1])
    assert contains_nal_type(frames[0], NalUnitType.SEI)
    assert all(nal_unit_types(frame) == [NalUnitType.NON_IDR_SLICE] for frame in frames[1:])


def test_iter_nal_units_skips_empty_and_rejects_truncation() -> None:
    data = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02\x09\xf0" + b"\x00\x00\x00\x01\x0c"
    assert [bytes(n) for n in iter_nal_units(data)] == [b"\x09\xf0", b"\x0c"]
    with pytest.raises(RemoteProtocolError, match="prefix"):
        list(iter_nal_units(data + b"\x00"))
    with pytest.raises(RemoteProtocolError, match="past the end"):
        list(iter_nal_units(data + b"\x00\x00\x00\x05\x01"))


def test_to_four_byte_lengths() -> None:
    assert to_four_byte_lengths(b"\x02\x09\xf0\x01\x0c", 1) == b"\x00\x00\x00\x02\x09\xf0\x00\x00\x00\x01\x0c"
    assert to_four_byte_lengths(b"\x00\x02\x09\xf0", 2) == b"\x00\x00\x00\x02\x09\xf0"


def test_avcc_to_annexb_matches_ffmpeg_bitstream_filter() -> None:
    """Our conversion carries exactly the NAL units ffmpeg's h264_mp4toannexb emits (which also
    inserts the SPS/PPS before the IDR)."""
    record = parse_avc_decoder_config(avc_record("main_320x180.flv"))
    ours = b"".join(avcc_to_annexb(frame) for frame in video_frames("main_320x180.flv"))
    theirs = split_annexb((MEDIA_DIR / "main_320x180.h264").read_bytes())
    assert [n for n in theirs if n[0] & 0x1F in (7, 8)] == [record.sps[0], record.pps[0]]
    assert split_annexb(ours) == [n for n in theirs if n[0] & 0x1F not in (7, 8)]


def test_avcc_to_annexb_layout() -> None:
    out = avcc_to_annexb(b"\x00\x00\x00\x02\x41\x9a", prefix=[ACCESS_UNIT_DELIMITER, b"\x67\x42"])
    assert out == b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x41\x9a"
    assert avcc_to_annexb(b"\x02\x41\x9a", 1) == b"\x00\x00\x00\x01\x41\x9a"
    assert split_annexb(b"") == [] and split_annexb(b"\x00\x00\x01\x09\xf0\x00\x00") == [b"\x09\xf0"]


@pytest.mark.parametrize(
    "name", ["main_320x180.flv", "high_1280x720_bframes.flv", "baseline_322x182_mono.flv"]
)
def test_annexb_output_decodes_with_ffprobe(name: str, tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    record = parse_avc_decoder_config(avc_record(name))
    stream = b"".join(
        avcc_to_annexb(
            frame,
            prefix=[ACCESS_UNIT_DELIMITER, *record.sps, *record.pps]
            if is_idr(frame)
            else [ACCESS_UNIT_DELIMITER],
        )
        for frame in video_frames(name)
    )
    path = tmp_path / "video.h264"
    path.write_bytes(stream)
    result = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    probed = next(p for p in PROBED if p.name == name)
    assert result.stderr == ""
    assert result.stdout.strip() == f"h264,{probed.width},{probed.height},{probed.video_packets}"
