"""The fMP4 reader: whole buffers, byte-at-a-time box splitting, trailing bytes, malformed input, fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import MessageTooLarge, RemoteProtocolError
from streamit.fmp4 import (
    AUDIO_TRACK_ID,
    VIDEO_TRACK_ID,
    BoxReader,
    Sample,
    TrackRun,
    box,
    fragments,
    init_segment,
    media_fragment,
    parse_boxes,
    parse_fragment,
    parse_init,
)
from tests.fmp4.flv_media import BFRAMES_FLV, demux_file

MEDIA = demux_file(BFRAMES_FLV)
INIT = init_segment(MEDIA.video, MEDIA.audio)
FRAGMENT = media_fragment(
    3,
    [
        TrackRun(VIDEO_TRACK_ID, [Sample(0, 3600, 7200, True, b"\x00\x00\x00\x01\x65")], video=True),
        TrackRun(
            AUDIO_TRACK_ID, [Sample(0, 1024, 0, True, b"\x21"), Sample(1024, 1024, 0, True, b"\x22")], False
        ),
    ],
)
STREAM = INIT + FRAGMENT + FRAGMENT


def test_whole_buffer() -> None:
    assert [b.kind for b in parse_boxes(STREAM)] == [b"ftyp", b"moov", b"moof", b"mdat", b"moof", b"mdat"]
    assert parse_init(INIT).tracks[VIDEO_TRACK_ID].sample_entry == b"avc1"
    fragment = parse_fragment(FRAGMENT)
    assert fragment.sequence_number == 3
    assert [[s.data for s in run.samples] for run in fragment.runs] == [
        [b"\x00\x00\x00\x01\x65"],
        [b"\x21", b"\x22"],
    ]


def test_box_reader_whole_and_byte_at_a_time() -> None:
    whole = BoxReader()
    whole.feed(STREAM)
    expected = list(whole)
    assert [b.kind for b in expected] == [b"ftyp", b"moov", b"moof", b"mdat", b"moof", b"mdat"]
    assert expected == list(parse_boxes(STREAM))
    reader = BoxReader()
    found = []
    for index in range(len(STREAM)):
        reader.feed(STREAM[index : index + 1])
        found.extend(reader)
    assert found == expected and reader.buffered == 0


def test_box_reader_keeps_trailing_bytes() -> None:
    reader = BoxReader()
    reader.feed(FRAGMENT + b"\x00\x00\x00\x10fr")
    assert [b.kind for b in reader] == [b"moof", b"mdat"]
    assert reader.buffered == 6
    reader.feed(b"ee" + bytes(8))
    assert [b.kind for b in reader] == [b"free"]


def test_whole_buffer_parsers_reject_trailing_bytes() -> None:
    for trailing in (b"\x00", b"\x00\x00\x00\x09free"):
        with pytest.raises(RemoteProtocolError):
            parse_boxes(STREAM + trailing)
        with pytest.raises(RemoteProtocolError):
            parse_fragment(FRAGMENT + trailing)
        with pytest.raises(RemoteProtocolError):
            parse_init(INIT + trailing)


def test_a_complete_trailing_box_is_allowed() -> None:
    assert parse_fragment(FRAGMENT + box(b"free")).sequence_number == 3


def test_box_reader_caps_box_size() -> None:
    reader = BoxReader(max_box_size=1000)
    reader.feed(struct.pack(">I4s", 1001, b"mdat"))
    with pytest.raises(MessageTooLarge):
        reader.next_box()


def test_large_size_boxes_are_read() -> None:
    large = struct.pack(">I4sQ", 1, b"free", 20) + b"abcd"
    (found,) = parse_boxes(large)
    assert (found.kind, found.payload) == (b"free", b"abcd")


def test_segments_split_into_fragments() -> None:
    assert fragments(FRAGMENT + FRAGMENT) == [FRAGMENT, FRAGMENT]
    with pytest.raises(RemoteProtocolError):
        parse_fragment(FRAGMENT + FRAGMENT)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x07free",  # size below the header
        b"\x00\x00\x00\x00free",  # size 0: to end of file
        b"\x00\x00\x00\x10free",  # runs past the buffer
        b"\x00\x00\x00\x01free" + struct.pack(">Q", 15),
        box(b"moof", box(b"mfhd", bytes(8))),  # no mdat
        box(b"mdat"),  # no moof
        FRAGMENT[:-1],
        box(b"moov", *[box(b"trak")]),
    ],
)
def test_malformed_input_raises_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_fragment(data)
    with pytest.raises(RemoteProtocolError):
        parse_init(data)


def test_deep_nesting_is_refused() -> None:
    nested = box(b"free")
    for _ in range(20):
        nested = box(b"moov", nested)
    with pytest.raises(RemoteProtocolError):
        parse_boxes(nested)


def test_sample_outside_the_buffer_is_refused() -> None:
    # Point the video trun's data offset past the end of the fragment.
    moof_size = struct.unpack_from(">I", FRAGMENT)[0]
    position = FRAGMENT.index(b"trun") + 4 + 4 + 4
    bad = FRAGMENT[:position] + struct.pack(">i", moof_size + 1000) + FRAGMENT[position + 4 :]
    with pytest.raises(RemoteProtocolError):
        parse_fragment(bad)


def test_trun_count_larger_than_its_entries_is_refused() -> None:
    position = FRAGMENT.index(b"trun") + 4 + 4
    bad = FRAGMENT[:position] + struct.pack(">I", 1 << 30) + FRAGMENT[position + 4 :]
    with pytest.raises(RemoteProtocolError):
        parse_fragment(bad)


def _parse_all(data: bytes) -> None:
    parse_boxes(data)
    parse_fragment(data)
    parse_init(data)


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    for parser in (parse_boxes, parse_fragment, parse_init):
        with contextlib.suppress(RemoteProtocolError):
            parser(data)
    reader = BoxReader(max_box_size=1 << 16)
    reader.feed(data)
    with contextlib.suppress(RemoteProtocolError):
        list(reader)


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.data())
def test_fuzz_mutated_real_boxes(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([INIT, FRAGMENT]))
    position = data.draw(st.integers(0, len(source) - 1))
    value = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(source)))
    mutated = (source[:position] + bytes((value,)) + source[position + 1 :])[:cut]
    for parser in (parse_boxes, parse_fragment, parse_init):
        with contextlib.suppress(RemoteProtocolError):
            parser(mutated)
