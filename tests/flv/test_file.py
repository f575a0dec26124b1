"""FLV file reader and writer against real ffmpeg files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError, UnsupportedCodec
from streamit.flv import FlvFileReader, FlvFileWriter, FlvHeader, FlvTag, FlvTagType
from tests.flv.fixture_tags import PROBED, fixture_bytes, fixture_tags

NAMES = [probed.name for probed in PROBED]


def read_all(chunks: list[bytes]) -> tuple[FlvFileReader, list[FlvTag]]:
    reader = FlvFileReader()
    tags: list[FlvTag] = []
    for chunk in chunks:
        reader.feed(chunk)
        tags.extend(reader)
    return reader, tags


@pytest.mark.parametrize("name", NAMES)
def test_whole_file(name: str) -> None:
    probed = next(p for p in PROBED if p.name == name)
    reader, tags = read_all([fixture_bytes(name)])
    reader.close()
    assert reader.header == FlvHeader(version=1, has_audio=True, has_video=True, data_offset=9)
    assert tags[0].tag_type is FlvTagType.SCRIPT_DATA
    assert tags[0].payload.startswith(b"\x02\x00\x0aonMetaData")
    video = [t for t in tags if t.tag_type is FlvTagType.VIDEO]
    audio = [t for t in tags if t.tag_type is FlvTagType.AUDIO]
    # + sequence header, and for video the end-of-sequence tag ffmpeg writes at the trailer.
    assert len(video) == probed.video_packets + 2
    assert len(audio) == probed.audio_packets + 1
    assert audio[1].timestamp == probed.first_audio_pts
    assert video[1].timestamp == probed.first_video_pts_dts[1]


@pytest.mark.parametrize("name", NAMES)
def test_one_byte_at_a_time(name: str) -> None:
    data = fixture_bytes(name)
    reader, tags = read_all([data[i : i + 1] for i in range(len(data))])
    reader.close()
    assert tuple(tags) == fixture_tags(name)


@pytest.mark.parametrize("name", NAMES)
def test_trailing_bytes_are_reported(name: str) -> None:
    reader, tags = read_all([fixture_bytes(name), b"\x09\x00\x00"])
    assert tuple(tags) == fixture_tags(name)
    assert reader.buffered == 3
    with pytest.raises(RemoteProtocolError, match="incomplete tag"):
        reader.close()


@pytest.mark.parametrize("name", NAMES)
def test_writer_reproduces_ffmpeg_file(name: str) -> None:
    writer = FlvFileWriter()
    rebuilt = writer.header(has_audio=True, has_video=True) + b"".join(
        writer.tag(tag.tag_type, tag.timestamp, tag.payload) for tag in fixture_tags(name)
    )
    assert rebuilt == fixture_bytes(name)


def test_extended_timestamp_round_trip() -> None:
    writer = FlvFileWriter()
    data = writer.header(has_audio=False, has_video=True) + writer.tag(FlvTagType.VIDEO, 0x12345678, b"x")
    assert data[4] == 0x01
    reader, tags = read_all([data])
    assert tags == [FlvTag(FlvTagType.VIDEO, 0x12345678, b"x")]
    assert reader.header is not None and not reader.header.has_audio


def test_writer_wraps_unbounded_timestamps() -> None:
    _, tags = read_all([FlvFileWriter().header(True, True), FlvFileWriter().tag(8, (1 << 32) + 5, b"")])
    assert tags == [FlvTag(FlvTagType.AUDIO, 5, b"")]


@pytest.mark.parametrize(("tag_type", "timestamp", "size"), [(7, 0, 0), (8, -1, 0), (9, 0, (1 << 24))])
def test_writer_rejects_invalid_tags(tag_type: int, timestamp: int, size: int) -> None:
    with pytest.raises(LocalProtocolError):
        FlvFileWriter().tag(tag_type, timestamp, bytes(size))


def test_larger_data_offset_is_skipped() -> None:
    header = b"FLV\x01\x05\x00\x00\x00\x0c" + b"pad" + b"\x00\x00\x00\x00"
    _, tags = read_all([header + FlvFileWriter().tag(18, 7, b"meta")])
    assert tags == [FlvTag(FlvTagType.SCRIPT_DATA, 7, b"meta")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"FLX", "signature"),
        (b"FLV\x01\x05\x00\x00\x00\x05\x00\x00\x00\x00", "DataOffset"),
        (b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x01", "PreviousTagSize0"),
        (FlvFileWriter().header(True, True) + b"\x07" + bytes(10), "TagType"),
        (
            FlvFileWriter().header(True, True) + FlvFileWriter().tag(9, 0, b"ab")[:-1] + b"\x0c",
            "does not match",
        ),
    ],
)
def test_malformed_files(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        read_all([data])


def test_encrypted_tags_are_unsupported() -> None:
    with pytest.raises(UnsupportedCodec):
        read_all([FlvFileWriter().header(True, True) + b"\x28" + bytes(10)])


def test_truncated_header_is_reported_on_close() -> None:
    reader, _ = read_all([b"FLV\x01"])
    with pytest.raises(RemoteProtocolError, match="header"):
        reader.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=20))
def test_fuzz_only_remote_protocol_errors(body: bytes, step: int) -> None:
    reader = FlvFileReader()
    data = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + body
    try:
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
            for tag in reader:
                assert isinstance(tag.tag_type, FlvTagType)
        reader.close()
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_start(data: bytes) -> None:
    reader = FlvFileReader()
    try:
        reader.feed(data)
        list(reader)
    except RemoteProtocolError:
        pass
