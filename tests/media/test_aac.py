"""AAC: AudioSpecificConfig of real ffmpeg output and hand-built variants, ADTS writing and parsing."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError, UnsupportedCodec
from streamit.flv import FlvTagType
from streamit.media import AudioConfig
from streamit.media.aac import (
    AdtsHeader,
    AdtsWriter,
    AudioSpecificConfig,
    audio_config_from_asc,
    iter_adts_frames,
    parse_adts_header,
    parse_audio_specific_config,
)
from tests.conftest import require_tool
from tests.flv.fixture_tags import MEDIA_DIR, PROBED, ProbedFile, fixture_tags
from tests.media.bit_writer import BitWriter

ADTS_FIXTURES = {
    "high_1280x720_bframes.flv": "high_1280x720_audio.aac",
    "baseline_322x182_mono.flv": "baseline_322x182_audio.aac",
}


def asc_of(name: str) -> bytes:
    body = next(t.payload for t in fixture_tags(name) if t.tag_type is FlvTagType.AUDIO)
    assert body[:2] == b"\xaf\x00"
    return body[2:]


def raw_frames(name: str) -> list[bytes]:
    return [t.payload[2:] for t in fixture_tags(name) if t.tag_type is FlvTagType.AUDIO and t.payload[1] == 1]


@pytest.mark.parametrize("probed", PROBED, ids=lambda p: p.name)
def test_asc_of_fixture_matches_ffprobe(probed: ProbedFile) -> None:
    record = asc_of(probed.name)
    asc = parse_audio_specific_config(record)
    assert (asc.object_type, asc.sample_rate, asc.channels) == (2, probed.sample_rate, probed.channels)
    assert (asc.sbr, asc.ps, asc.frame_length, asc.channel_config) == (False, False, 1024, probed.channels)
    config = audio_config_from_asc(record)
    assert config == asc.to_audio_config(record)
    assert (config.codec, config.codec_string, config.record) == ("aac", "mp4a.40.2", record)
    # Trailing zero bytes are padding; every prefix either fails or gives the same answer.
    assert parse_audio_specific_config(record + b"\x00\x00\x00") == asc
    for end in range(len(record)):
        with contextlib.suppress(RemoteProtocolError):
            assert parse_audio_specific_config(record[:end]) == asc


def asc(*fields: tuple[int, int]) -> bytes:
    bits = BitWriter()
    for count, value in fields:
        bits.u(count, value)
    return bits.to_bytes()


GA = (3, 0)  # frameLengthFlag, dependsOnCoreCoder, extensionFlag all 0


# channelConfiguration 0 with a program_config_element: front CPE + SCE, back CPE, one LFE, comment "hi".
PCE_ASC = asc(
    (5, 2),
    (4, 4),
    (4, 0),
    GA,
    (4, 0),
    (2, 1),
    (4, 4),
    (4, 2),
    (4, 0),
    (4, 1),
    (2, 1),
    (3, 0),
    (4, 0),
    (1, 0),
    (1, 0),
    (1, 0),
    (1, 1),
    (4, 0),
    (1, 0),
    (4, 1),
    (1, 1),
    (4, 2),
    (4, 0),
    (3, 0),  # byte_alignment: 69 bits so far
    (8, 2),
    (8, ord("h")),
    (8, ord("i")),
)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # HE-AAC, explicit hierarchical: AOT 5, core 24 kHz stereo, extension 48 kHz, core AOT 2.
        (
            asc((5, 5), (4, 6), (4, 2), (4, 3), (5, 2), GA),
            AudioSpecificConfig(5, 2, 6, 24000, 48000, 2, 2, True, False, 1024),
        ),
        # HE-AACv2: AOT 29, mono core → stereo output.
        (
            asc((5, 29), (4, 6), (4, 1), (4, 3), (5, 2), GA),
            AudioSpecificConfig(29, 2, 6, 24000, 48000, 1, 2, True, True, 1024),
        ),
        # Backward-compatible explicit SBR + PS via sync extensions 0x2b7 / 0x548.
        (
            asc((5, 2), (4, 7), (4, 1), GA, (11, 0x2B7), (5, 5), (1, 1), (4, 4), (11, 0x548), (1, 1)),
            AudioSpecificConfig(29, 2, 7, 22050, 44100, 1, 2, True, True, 1024),
        ),
        # Sync extension announcing that SBR is absent.
        (
            asc((5, 2), (4, 3), (4, 2), GA, (11, 0x2B7), (5, 5), (1, 0)),
            AudioSpecificConfig(2, 2, 3, 48000, 48000, 2, 2, False, False, 1024),
        ),
        # Escape sampling frequency that is in the table, and one that is not; 960-sample frames.
        (
            asc((5, 2), (4, 15), (24, 44100), (4, 2), (1, 1), (2, 0)),
            AudioSpecificConfig(2, 2, 4, 44100, 44100, 2, 2, False, False, 960),
        ),
        (
            asc((5, 2), (4, 15), (24, 37800), (4, 1), GA),
            AudioSpecificConfig(2, 2, 15, 37800, 37800, 1, 1, False, False, 1024),
        ),
        # AAC Main, channel configuration 7 (7.1 = 8 channels), dependsOnCoreCoder with a 14-bit delay.
        (
            asc((5, 1), (4, 8), (4, 7), (1, 0), (1, 1), (14, 100), (1, 0)),
            AudioSpecificConfig(1, 1, 8, 16000, 16000, 7, 8, False, False, 1024),
        ),
        # channelConfiguration 0: a program_config_element with front CPE + SCE, back CPE, one LFE.
        (
            PCE_ASC,
            AudioSpecificConfig(2, 2, 4, 44100, 44100, 0, 6, False, False, 1024),
        ),
    ],
)
def test_hand_built_asc(record: bytes, expected: AudioSpecificConfig) -> None:
    assert parse_audio_specific_config(record) == expected


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (b"", RemoteProtocolError),
        (b"\x12", RemoteProtocolError),
        (asc((5, 0), (4, 3), (4, 2), GA), RemoteProtocolError),  # null object type
        (asc((5, 2), (4, 13), (4, 2), GA), RemoteProtocolError),  # reserved sampling index
        (asc((5, 2), (4, 15), (24, 0), (4, 2), GA), RemoteProtocolError),
        (asc((5, 2), (4, 3), (4, 9), GA), RemoteProtocolError),  # reserved channel configuration
        (asc((5, 31), (6, 2), (4, 3), (4, 2), GA), UnsupportedCodec),  # AOT 34: MPEG-1 Layer-3
        (asc((5, 24), (4, 3), (4, 2), GA), UnsupportedCodec),  # ER CELP
    ],
)
def test_malformed_or_unsupported_asc(record: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_audio_specific_config(record)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=24))
def test_fuzz_asc_only_remote_protocol_errors(record: bytes) -> None:
    try:
        parsed = parse_audio_specific_config(record)
    except RemoteProtocolError:
        return
    assert parsed.sample_rate > 0 and parsed.channels > 0


@pytest.mark.parametrize(("flv", "adts"), ADTS_FIXTURES.items())
def test_adts_writer_reproduces_ffmpeg_adts_muxer(flv: str, adts: str) -> None:
    writer = AdtsWriter(audio_config_from_asc(asc_of(flv)))
    ours = b"".join(writer.frame(frame) for frame in raw_frames(flv))
    assert ours == (MEDIA_DIR / adts).read_bytes()


@pytest.mark.parametrize(("flv", "adts"), ADTS_FIXTURES.items())
def test_parse_adts_fixture(flv: str, adts: str) -> None:
    data = (MEDIA_DIR / adts).read_bytes()
    config = audio_config_from_asc(asc_of(flv))
    frames = list(iter_adts_frames(data))
    assert [payload for _, payload in frames] == raw_frames(flv)
    for header, _ in frames:
        assert (header.object_type, header.sampling_index, header.channel_config) == (
            config.object_type,
            config.sampling_index,
            config.channel_config,
        )
        assert (header.mpeg_version, header.header_length, header.raw_data_blocks) == (4, 7, 1)
        assert header.sample_rate == config.sample_rate
    # One byte at a time: every strict prefix of the first header is rejected as truncated.
    for end in range(7):
        with pytest.raises(RemoteProtocolError, match="truncated"):
            parse_adts_header(data[:end])
    # Trailing bytes after a header do not change it; a partial last frame is reported.
    assert parse_adts_header(data[:7] + b"\xff" * 9) == frames[0][0]
    with pytest.raises(RemoteProtocolError, match="truncated"):
        list(iter_adts_frames(data[:-1]))


def test_parse_adts_with_crc() -> None:
    header = parse_adts_header(b"\xff\xf8\x50\x80\x02\x1f\xfc")
    assert header == AdtsHeader(2, False, 2, 4, 2, 16, 0x7FF, 1)
    assert header.header_length == 9


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xe1\x50\x80\x02\x1f\xfc",
        b"\xff\xf3\x50\x80\x02\x1f\xfc",
        b"\xff\xf1\x74\x80\x02\x1f\xfc",
        b"\xff\xf1\x50\x80\x00\xdf\xfc",
    ],
)
def test_malformed_adts(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_adts_header(data)


def test_adts_writer_limits() -> None:
    writer = AdtsWriter(audio_config_from_asc(b"\x11\x90"))
    assert parse_adts_header(writer.header(8184)).frame_length == 8191
    with pytest.raises(RemoteProtocolError):
        writer.header(8185)


def test_adts_writer_writes_he_aac_as_its_lc_core() -> None:
    config = audio_config_from_asc(asc((5, 5), (4, 6), (4, 2), (4, 3), (5, 2), GA))
    assert (config.object_type, config.sample_rate, config.codec_string) == (5, 48000, "mp4a.40.5")
    header = parse_adts_header(AdtsWriter(config).header(100))
    assert (header.object_type, header.sample_rate, header.channel_config) == (2, 24000, 2)


@pytest.mark.parametrize(
    "config",
    [
        AudioConfig("aac", b"", 23, 48000, 2, 3, 2),
        AudioConfig("aac", b"", 2, 37800, 2, 15, 2),
        AudioConfig("aac", b"", 2, 48000, 6, 3, 0),
    ],
)
def test_adts_cannot_carry(config: AudioConfig) -> None:
    with pytest.raises(UnsupportedCodec):
        AdtsWriter(config)


@pytest.mark.parametrize("probed", PROBED[1:3], ids=lambda p: p.name)
def test_adts_output_is_read_by_ffprobe(probed: ProbedFile, tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    writer = AdtsWriter(audio_config_from_asc(asc_of(probed.name)))
    path = tmp_path / "audio.aac"
    path.write_bytes(b"".join(writer.frame(frame) for frame in raw_frames(probed.name)))
    result = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_name,sample_rate,channels,nb_read_packets",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert result.stderr == ""
    assert result.stdout.strip() == f"aac,{probed.sample_rate},{probed.channels},{probed.audio_packets}"


def test_program_config_comment_is_skipped_exactly() -> None:
    assert parse_audio_specific_config(PCE_ASC).channels == 6
    with pytest.raises(RemoteProtocolError, match="truncated"):
        parse_audio_specific_config(PCE_ASC[:-1])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_adts_only_remote_protocol_errors(data: bytes) -> None:
    try:
        frames = list(iter_adts_frames(b"\xff\xf1" + data))
    except RemoteProtocolError:
        return
    assert sum(header.frame_length for header, _ in frames) == len(data) + 2
