"""Seed inputs for every fuzz target, cut from the real captures in ``tests/fixtures``.

Mutating real bytes reaches deep states (a connected, publishing RTMP session; a configured demuxer) that
random bytes almost never reach.  Every seed is built from committed fixtures only:

* ``tests/fixtures/rtmp/*.bin`` — what ffmpeg sent to nginx-rtmp while publishing (handshake included);
* ``tests/fixtures/flv/*.flv`` — FLV files written by ffmpeg;
* ``tests/fixtures/media/*`` — an Annex-B H.264 stream and ADTS AAC streams from ffmpeg;
* ``tests/fixtures/discovery/*.m3u8``, ``tests/fixtures/edge/index.m3u8`` — playlists by nginx-rtmp/ffmpeg;
* ``tests/fixtures/hooks/*.txt`` — nginx-rtmp's hook requests.

Seeds are kept small (a few kilobytes) so that one fuzz iteration stays cheap.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from streamit.discovery.entry import encode_entry
from streamit.discovery.location import StreamLocation
from streamit.flv import FlvFileReader, FlvFileWriter, FlvTag, FlvTagType
from streamit.media.h264 import split_annexb
from streamit.rtmp.chunk import ChunkReader, Message
from streamit.rtmp.handshake import HANDSHAKE_SIZE

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
HANDSHAKE_LENGTH = 1 + 2 * HANDSHAKE_SIZE
"""C0 + C1 + C2: the client's handshake bytes at the start of every RTMP capture."""
RTMP_CAPTURES = ("ffmpeg_publish.bin", "ffmpeg_publish_extended_ts.bin")
FLV_FILES = ("main_320x180.flv", "high_1280x720_bframes.flv", "baseline_322x182_mono.flv", "offset_16780.flv")

COMMAND_TYPES = (17, 20)
DATA_TYPES = (15, 18)
AUDIO_TYPE = 8
VIDEO_TYPE = 9


def _read(*parts: str) -> bytes:
    return FIXTURES.joinpath(*parts).read_bytes()


@cache
def rtmp_captures() -> tuple[bytes, ...]:
    """The whole client→server byte streams of the captured ffmpeg publishes."""
    return tuple(_read("rtmp", name) for name in RTMP_CAPTURES)


@cache
def rtmp_messages() -> tuple[Message, ...]:
    """Every message of every capture, reassembled by the chunk reader."""
    messages: list[Message] = []
    for capture in rtmp_captures():
        reader = ChunkReader()
        found, _ = reader.read(capture[HANDSHAKE_LENGTH:])
        messages.extend(found)
    return tuple(messages)


def _first_of_each(bodies: list[bytes], limit: int) -> list[bytes]:
    unique = list(dict.fromkeys(bodies))
    return unique[:limit]


@cache
def handshake_seeds() -> tuple[bytes, ...]:
    """C0+C1+C2 of each capture (ffmpeg's plain handshake) and a digest-scheme C1 variant."""
    return tuple(capture[:HANDSHAKE_LENGTH] for capture in rtmp_captures())


@cache
def chunk_seeds() -> tuple[bytes, ...]:
    """Prefixes of the chunk streams after the handshake: commands, metadata, first media."""
    seeds = []
    for capture in rtmp_captures():
        stream = capture[HANDSHAKE_LENGTH:]
        seeds += [stream[:600], stream[:2048], stream[:6144]]
    return tuple(seeds)


@cache
def connection_seeds() -> tuple[bytes, ...]:
    """The start of each capture, handshake included, up to the first media messages."""
    return tuple(capture[: HANDSHAKE_LENGTH + size] for capture in rtmp_captures() for size in (700, 4096))


@cache
def ingest_seeds() -> tuple[bytes, ...]:
    """The whole captures (about 2 s of media, several keyframes) and the start of one."""
    return (*rtmp_captures(), connection_seeds()[1])


@cache
def amf0_seeds() -> tuple[bytes, ...]:
    """Bodies of the captured AMF0 commands and data messages (connect, publish, onMetaData …)."""
    bodies = [m.payload for m in rtmp_messages() if m.type_id in (*COMMAND_TYPES, *DATA_TYPES)]
    return tuple(_first_of_each(bodies, 16))


@cache
def amf3_seeds() -> tuple[bytes, ...]:
    """AMF3 values: the captured commands re-encoded as AMF3 by the encoder under test, plus literals."""
    from streamit.rtmp.amf0 import decode_amf0_all
    from streamit.rtmp.amf3 import encode_amf3

    seeds = []
    for body in amf0_seeds():
        for value in decode_amf0_all(body):
            seeds.append(encode_amf3(value))
    # A sealed typed object, a mixed array and references (AMF3 §3.11, §3.12, §1.3.2).
    seeds.append(bytes.fromhex("0a 13 07 46 6f 6f 03 61 04 01 06 05 68 69"))
    seeds.append(bytes.fromhex("09 05 03 6b 06 03 76 01 04 01 06 00 0c 07 01 02 03"))
    return tuple(_first_of_each(seeds, 24))


@cache
def flv_tags(name: str) -> tuple[FlvTag, ...]:
    """All tags of one FLV fixture."""
    reader = FlvFileReader()
    reader.feed(_read("flv", name))
    tags = tuple(reader)
    reader.close()
    return tags


@cache
def flv_file_seeds() -> tuple[bytes, ...]:
    """Each FLV fixture cut to its header and first tags (metadata, sequence headers, first frames)."""
    writer = FlvFileWriter()
    seeds = []
    for name in FLV_FILES:
        out = [writer.header(has_audio=True, has_video=True)]
        size = 0
        for tag in flv_tags(name)[:12]:
            encoded = writer.tag(tag.tag_type, tag.timestamp, tag.payload)
            if size + len(encoded) > 8192:
                break
            out.append(encoded)
            size += len(encoded)
        seeds.append(b"".join(out))
    return tuple(seeds)


@cache
def flv_tag_seeds() -> tuple[bytes, ...]:
    """One tag body each, prefixed by a selector byte: 0 video, 1 audio (see ``targets.flv_tag``)."""
    seeds = []
    for name in FLV_FILES:
        for tag in flv_tags(name)[:10]:
            if tag.tag_type is FlvTagType.VIDEO and len(tag.payload) < 4096:
                seeds.append(b"\x00" + tag.payload)
            elif tag.tag_type is FlvTagType.AUDIO:
                seeds.append(b"\x01" + tag.payload)
    # Enhanced RTMP (E-RTMP v1) headers: an HEVC sequence start and an Opus frame, to reach those branches.
    seeds.append(b"\x00\x90hvc1\x01\x02\x03")
    seeds.append(b"\x01\x91Opus\x00\x00")
    return tuple(_first_of_each(seeds, 32))


@cache
def avc_config_seeds() -> tuple[bytes, ...]:
    """The AVCDecoderConfigurationRecord of every FLV fixture (body of its AVC sequence header)."""
    records = [
        tag.payload[5:]
        for name in FLV_FILES
        for tag in flv_tags(name)
        if tag.tag_type is FlvTagType.VIDEO and tag.payload[:2] == b"\x17\x00"
    ]
    return tuple(_first_of_each(records, 8))


@cache
def sps_seeds() -> tuple[bytes, ...]:
    """SPS NAL units: from the AVC records and from the Annex-B fixture."""
    from streamit.media.h264 import parse_avc_decoder_config

    nals = [sps for record in avc_config_seeds() for sps in parse_avc_decoder_config(record).sps]
    nals += [nal for nal in split_annexb(_read("media", "main_320x180.h264")) if nal[0] & 0x1F == 7]
    return tuple(_first_of_each([bytes(nal) for nal in nals], 8))


@cache
def avcc_seeds() -> tuple[bytes, ...]:
    """AVCC access units (4-byte lengths) from the FLV fixtures, each behind a length-size byte."""
    frames = [
        b"\x04" + tag.payload[5:]
        for name in FLV_FILES
        for tag in flv_tags(name)[:16]
        if tag.tag_type is FlvTagType.VIDEO and tag.payload[1:2] == b"\x01" and len(tag.payload) < 2048
    ]
    return tuple(_first_of_each(frames, 8))


@cache
def aac_config_seeds() -> tuple[bytes, ...]:
    """AudioSpecificConfig of every FLV fixture, plus HE-AAC v1/v2 configurations."""
    configs = [
        tag.payload[2:]
        for name in FLV_FILES
        for tag in flv_tags(name)
        if tag.tag_type is FlvTagType.AUDIO and tag.payload[1:2] == b"\x00"
    ]
    # ISO/IEC 14496-3 §1.6.2.1: explicit SBR (object type 5), PS (29), and AAC-LC with the
    # backward-compatible 0x2b7 sync extension announcing SBR.
    configs += [bytes.fromhex("2b 92 08 00"), bytes.fromhex("eb 09 88 00"), bytes.fromhex("13 10 56 e5 98")]
    return tuple(_first_of_each(configs, 10))


@cache
def adts_seeds() -> tuple[bytes, ...]:
    """The first ADTS frames of each AAC fixture."""
    from streamit.media.aac import parse_adts_header

    seeds = []
    for name in ("baseline_322x182_audio.aac", "high_1280x720_audio.aac"):
        data = _read("media", name)
        ends = [0]
        while ends[-1] < len(data) and len(ends) <= 8:
            ends.append(ends[-1] + parse_adts_header(data[ends[-1] :]).frame_length)
        seeds += [data[: ends[1]], data[: ends[-1]]]
    return tuple(seeds)


@cache
def playlist_seeds() -> tuple[bytes, ...]:
    """Playlists written by nginx-rtmp and ffmpeg, and one served by the edge's origin fixture."""
    names = sorted(FIXTURES.joinpath("discovery").glob("*.m3u8"))
    seeds = [path.read_bytes() for path in names]
    seeds.append(_read("edge", "index.m3u8"))
    seeds.append(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n")
    return tuple(seeds)


@cache
def registry_entry_seeds() -> tuple[bytes, ...]:
    """Canonical registry entries (what every node writes to Redis and every edge reads back)."""
    from datetime import UTC, datetime

    locations = [
        StreamLocation(slug="demo", origin_url="http://10.0.0.5:8080", node="origin-1"),
        StreamLocation(
            slug="cam-2",
            origin_url="https://origin.example:8443/base",
            node="watcher",
            started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            metadata={"playlist": "cam-2/index.m3u8"},
        ),
    ]
    return tuple(encode_entry(location) for location in locations)


@cache
def nginx_form_seeds() -> tuple[bytes, ...]:
    """The bodies and query strings of nginx-rtmp's captured hook requests."""
    seeds = [path.read_bytes().strip() for path in sorted(FIXTURES.joinpath("hooks").glob("*.txt"))]
    return tuple(_first_of_each(seeds, 12))
