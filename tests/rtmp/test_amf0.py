"""AMF0: every marker from hand-written bytes, references, the AMF3 switch, round trips, hostile input."""

from __future__ import annotations

import contextlib
import math
import pathlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.rtmp.amf0 import (
    UNDEFINED,
    AmfDate,
    EcmaArray,
    TypedObject,
    XmlDocument,
    decode_amf0,
    decode_amf0_all,
    encode_amf0,
    encode_amf0_all,
)
from streamit.rtmp.amf3 import Amf3Array

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "rtmp"


def s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


CASES: list[tuple[bytes, Any]] = [
    (b"\x00" + struct.pack(">d", 1.5), 1.5),
    (b"\x01\x01", True),
    (b"\x01\x00", False),
    (b"\x02" + s("héllo"), "héllo"),
    (
        b"\x03" + s("a") + b"\x00" + struct.pack(">d", 2.0) + s("b") + b"\x05" + b"\x00\x00\x09",
        {"a": 2.0, "b": None},
    ),
    (b"\x05", None),
    (b"\x06", UNDEFINED),
    (b"\x08\x00\x00\x00\x01" + s("k") + b"\x02" + s("v") + b"\x00\x00\x09", EcmaArray(k="v")),
    (b"\x0a\x00\x00\x00\x02\x05\x01\x01", [None, True]),
    (b"\x0b" + struct.pack(">dh", 1.7e12, -60), AmfDate(1.7e12, -60)),
    (b"\x0c\x00\x00\x00\x03abc", "abc"),
    (b"\x0f\x00\x00\x00\x04<a/>", XmlDocument("<a/>")),
    (b"\x10" + s("Cls") + s("x") + b"\x01\x01" + b"\x00\x00\x09", TypedObject("Cls", {"x": True})),
    (b"\x11\x04\x7f", 127),
    (b"\x11\x06\x07abc", "abc"),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_decodes_every_marker(data: bytes, expected: Any) -> None:
    value, end = decode_amf0(data)
    assert end == len(data)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_every_prefix_is_truncated(data: bytes, expected: Any) -> None:
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_amf0(data[:cut])


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_trailing_bytes_are_left_alone(data: bytes, expected: Any) -> None:
    value, end = decode_amf0(data + b"\x05\xff\xff")
    assert value == expected
    assert end == len(data)


def test_reference_returns_the_same_object() -> None:
    obj = b"\x03" + s("n") + b"\x00" + struct.pack(">d", 1.0) + b"\x00\x00\x09"
    data = b"\x0a\x00\x00\x00\x02" + obj + b"\x07\x00\x01"
    # Index 0 is the strict array itself, index 1 the object inside it (AMF0 §2.9).
    value, _ = decode_amf0(data)
    assert value[0] == {"n": 1.0}
    assert value[1] is value[0]


def test_reference_out_of_range() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_amf0(b"\x0a\x00\x00\x00\x01\x07\x00\x05")


def test_reference_table_spans_values_of_one_message() -> None:
    data = b"\x03" + s("a") + b"\x05\x00\x00\x09" + b"\x07\x00\x00"
    first, second = decode_amf0_all(data)
    assert second is first


def test_object_end_outside_object_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_amf0(b"\x09")
    with pytest.raises(RemoteProtocolError):
        decode_amf0(b"\x0a\x00\x00\x00\x01\x09")
    with pytest.raises(RemoteProtocolError):
        decode_amf0(b"\x03" + s("a") + b"\x09")


def test_unsupported_markers_are_refused() -> None:
    for marker in (0x04, 0x0D, 0x0E, 0x12, 0xFF):
        with pytest.raises(RemoteProtocolError):
            decode_amf0(bytes((marker,)))


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    data = b"\x0a\x00\x00\x00\x01" * 10_000 + b"\x05"
    with pytest.raises(RemoteProtocolError):
        decode_amf0(data)


def test_huge_strict_array_count_is_refused_quickly() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_amf0(b"\x0a\xff\xff\xff\xff\x05")


def test_long_strings_round_trip_as_long_string() -> None:
    text = "x" * 70_000
    data = encode_amf0(text)
    assert data[0] == 0x0C
    assert decode_amf0(data) == (text, len(data))


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_amf0(b"\x02\x00\x02\xff\xfe")[0] == "\ufffd\ufffd"


def test_real_ffmpeg_connect_command() -> None:
    capture = (FIXTURES / "ffmpeg_publish.bin").read_bytes()
    # The connect command is the first message after C0+C1+C2: a 12-byte fmt-0 chunk header, then the body.
    start = 1 + 1536 + 1536
    length = int.from_bytes(capture[start + 4 : start + 7], "big")
    body = capture[start + 12 : start + 12 + min(length, 128)]
    name, end = decode_amf0(body)
    assert name == "connect"
    transaction, _ = decode_amf0(body, end)
    assert transaction == 1.0


def test_encode_all_concatenates() -> None:
    assert encode_amf0_all("a", 1) == encode_amf0("a") + encode_amf0(1)


def test_encoder_refuses_what_amf0_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError):
        encode_amf0(object())
    with pytest.raises(LocalProtocolError):
        encode_amf0({1: "not a string key"})
    with pytest.raises(LocalProtocolError):
        encode_amf0("\udcff")


def test_bytes_are_written_through_the_amf3_switch() -> None:
    data = encode_amf0(b"\x01\x02")
    assert data == b"\x11\x0c\x05\x01\x02"
    assert decode_amf0(data) == (b"\x01\x02", len(data))


def test_amf3_array_through_the_switch() -> None:
    data = b"\x11\x09\x03\x03k\x04\x01\x01\x02"
    assert decode_amf0(data)[0] == Amf3Array({"k": 1}, [False])


texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
scalars = (
    st.none()
    | st.just(UNDEFINED)
    | st.booleans()
    | st.floats(allow_nan=False)
    | texts
    | texts.map(XmlDocument)
    | st.builds(AmfDate, st.floats(allow_nan=False), st.integers(-32768, 32767))
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(texts, children, max_size=4)
        | st.dictionaries(texts, children, max_size=4).map(EcmaArray)
        | st.builds(TypedObject, texts.filter(bool), st.dictionaries(texts, children, max_size=4))
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = encode_amf0(value)
    decoded, end = decode_amf0(data)
    assert end == len(data)
    assert decoded == value
    assert type(decoded) is type(value)


@settings(deadline=None)
@given(st.floats(allow_nan=True))
def test_numbers_round_trip_bit_exact(number: float) -> None:
    decoded, _ = decode_amf0(encode_amf0(number))
    assert math.isnan(decoded) if math.isnan(number) else decoded == number


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_amf0_all(data)
