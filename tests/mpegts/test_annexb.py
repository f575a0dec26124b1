from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError
from streamit.mpegts.annexb import (
    ACCESS_UNIT_DELIMITER,
    access_unit_annexb,
    access_unit_split,
    parameter_sets_annexb,
)
from tests.mpegts.flv_fixture import read_flv
from tests.mpegts.ts_demux import split_annexb

MEDIA = read_flv()
PARAMS = parameter_sets_annexb(MEDIA.video.sps, MEDIA.video.pps)


def avcc_nals(data: bytes) -> list[bytes]:
    nals, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        nals.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return nals


def avcc(*nals: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(n)) + n for n in nals)


def test_whole_real_access_units() -> None:
    for frame in MEDIA.video_frames:
        out = b"".join(access_unit_annexb(frame.data, frame.keyframe, PARAMS))
        assert out.startswith(ACCESS_UNIT_DELIMITER)
        units = split_annexb(out)
        assert units[0] == b"\x09\xf0"
        expected = avcc_nals(frame.data)
        if frame.keyframe:
            assert units[1 : 1 + len(MEDIA.video.sps)] == list(MEDIA.video.sps)
            rest = units[1 + len(MEDIA.video.sps) + len(MEDIA.video.pps) :]
        else:
            rest = units[1:]
        assert rest == expected


def test_keyframes_of_the_fixture_hold_an_idr_slice() -> None:
    key = MEDIA.video_frames[0]
    assert key.keyframe
    assert 5 in {nal[0] & 0x1F for nal in avcc_nals(key.data)}


def test_every_prefix_parses_at_nal_boundaries_or_raises() -> None:
    # The AU offered one byte more at a time: a NAL boundary parses, anything else is the peer's error.
    data = MEDIA.video_frames[0].data
    boundaries = {0}
    for nal in avcc_nals(data):
        boundaries.add(max(boundaries) + 4 + len(nal))
    for end in range(len(data) + 1):
        if end in boundaries:
            access_unit_annexb(data[:end], True, PARAMS)
        else:
            with pytest.raises(RemoteProtocolError):
                access_unit_annexb(data[:end], True, PARAMS)


@pytest.mark.parametrize("trailing", [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x09", b"\xff\xff\xff\xff\x41"])
def test_trailing_bytes_are_rejected(trailing: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        access_unit_annexb(MEDIA.video_frames[1].data + trailing, False, PARAMS)


def test_zero_length_nal_is_skipped_and_empty_au_yields_nothing() -> None:
    assert access_unit_annexb(b"", True, PARAMS) == []
    assert access_unit_annexb(avcc(b"\x09\xf0"), False, PARAMS) == []
    out = b"".join(access_unit_annexb(b"\x00\x00\x00\x00" + avcc(b"\x41\x9a"), False, PARAMS))
    assert split_annexb(out) == [b"\x09\xf0", b"\x41\x9a"]


def test_in_band_aud_dropped_and_in_band_parameter_sets_win() -> None:
    sps, pps = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x3c\x80"
    out = b"".join(access_unit_annexb(avcc(b"\x09\x10", sps, pps, b"\x65\x88"), True, PARAMS))
    assert split_annexb(out) == [b"\x09\xf0", sps, pps, b"\x65\x88"]


def test_idr_without_keyframe_flag_still_gets_parameter_sets() -> None:
    out = b"".join(access_unit_annexb(avcc(b"\x06\x05", b"\x65\x88"), False, PARAMS))
    assert split_annexb(out) == [b"\x09\xf0", *MEDIA.video.sps, *MEDIA.video.pps, b"\x06\x05", b"\x65\x88"]


def test_non_idr_gets_no_parameter_sets() -> None:
    out = b"".join(access_unit_annexb(avcc(b"\x41\x9a"), False, PARAMS))
    assert split_annexb(out) == [b"\x09\xf0", b"\x41\x9a"]


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=64), st.booleans())
def test_arbitrary_bytes_parse_or_raise_remote_protocol_error(data: bytes, keyframe: bool) -> None:
    try:
        parts = access_unit_annexb(data, keyframe, PARAMS)
    except RemoteProtocolError:
        return
    assert parts == [] or bytes(parts[0]) == ACCESS_UNIT_DELIMITER


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"\x09\xf0", b"\x65\x88", b"\x41\x9a" * 300, b"\x06\x05", b"", b"\x67\x42"]),
        max_size=6,
    ),
    st.booleans(),
)
def test_split_is_the_access_unit_with_its_last_nal_unit_left_in_place(
    nals: list[bytes], keyframe: bool
) -> None:
    data = avcc(*nals)
    split = access_unit_split(data, keyframe, PARAMS)
    whole = access_unit_annexb(data, keyframe, PARAMS)
    if split is None:
        assert whole == []
        return
    pieces, start, end = split
    assert pieces[-1] == b"\x00\x00\x00\x01"
    assert b"".join(pieces) + data[start:end] == b"".join(whole)
