"""AMF3: every type from hand-written bytes, the three reference tables, round trips, hostile input."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.rtmp.amf3 import (
    UNDEFINED,
    Amf3Array,
    AmfDate,
    TypedObject,
    XmlDocument,
    decode_amf3,
    encode_amf3,
)

CASES: list[tuple[bytes, Any]] = [
    (b"\x00", UNDEFINED),
    (b"\x01", None),
    (b"\x02", False),
    (b"\x03", True),
    (b"\x04\x00", 0),
    (b"\x04\x7f", 127),
    (b"\x04\x81\x00", 128),
    (b"\x04\xbf\xff\xff\xff", (1 << 28) - 1),
    (b"\x04\xc0\x80\x80\x00", -(1 << 28)),
    (b"\x04\xff\xff\xff\xff", -1),
    (b"\x05" + struct.pack(">d", -2.25), -2.25),
    (b"\x06\x01", ""),
    (b"\x06\x0bhello", "hello"),
    (b"\x07\x09<a/>", XmlDocument("<a/>")),
    (b"\x0b\x09<b/>", XmlDocument("<b/>")),
    (b"\x08\x01" + struct.pack(">d", 1e12), AmfDate(1e12)),
    (b"\x09\x05\x01\x04\x01\x06\x03x", [1, "x"]),
    (b"\x09\x03\x03k\x03\x01\x02", Amf3Array({"k": True}, [False])),
    (b"\x0c\x07abc", b"abc"),
    # Anonymous dynamic object with no sealed members: traits header 0b1011.
    (b"\x0a\x0b\x01\x03a\x04\x05\x01", {"a": 5}),
    # Sealed typed object "P" with members x, y, not dynamic: header (2 << 4) | 0b0011.
    (b"\x0a\x23\x03P\x03x\x03y\x04\x01\x04\x02", TypedObject("P", {"x": 1, "y": 2})),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_decodes_every_type(data: bytes, expected: Any) -> None:
    value, end = decode_amf3(data)
    assert end == len(data)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_every_prefix_is_truncated(data: bytes, expected: Any) -> None:
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_amf3(data[:cut])


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_trailing_bytes_are_left_alone(data: bytes, expected: Any) -> None:
    value, end = decode_amf3(data + b"\x01\x01")
    assert value == expected
    assert end == len(data)


def test_string_references() -> None:
    # ["ab", "ab" by reference (index 0)]; the empty string is never entered in the table.
    value, _ = decode_amf3(b"\x09\x07\x01\x06\x05ab\x06\x01\x06\x00")
    assert value == ["ab", "", "ab"]


def test_object_references_and_traits_references() -> None:
    first = b"\x0a\x13\x03P\x03x\x04\x01"  # sealed "P" with member x (traits index 0)
    second = b"\x0a\x01\x04\x02"  # traits reference 0: header (0 << 2) | 0b01
    again = b"\x0a\x02"  # object reference 1: the first object (index 0 is the array)
    value, _end = decode_amf3(b"\x09\x07\x01" + first + second + again)
    assert value == [TypedObject("P", {"x": 1}), TypedObject("P", {"x": 2}), TypedObject("P", {"x": 1})]
    assert value[2] is value[0]


def test_self_referencing_array() -> None:
    value, _ = decode_amf3(b"\x09\x03\x01\x09\x00")
    assert value[0] is value


@pytest.mark.parametrize(
    "data",
    [
        b"\x06\x02",  # string reference 1 with an empty table
        b"\x09\x02",  # object reference
        b"\x0a\x05",  # traits reference
        b"\x0a\x07\x01",  # externalizable
        b"\x0d\x01",  # vector (unsupported)
        b"\x11",  # dictionary (unsupported)
        b"\x09\xff\xff\xff\xff\x01",  # dense count far beyond the input
        b"\x0a\xff\xff\xff\xf3\x01",  # sealed member count far beyond the input
    ],
)
def test_malformed_input_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_amf3(data)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_amf3(b"\x09\x03\x01" * 10_000 + b"\x01")


def test_encoder_refuses_what_amf3_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError):
        encode_amf3(object())
    with pytest.raises(LocalProtocolError):
        encode_amf3({"": 1})


def test_large_integers_become_doubles() -> None:
    assert encode_amf3(1 << 28)[0] == 0x05
    assert encode_amf3((1 << 28) - 1)[0] == 0x04


texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
keys = texts.filter(bool)
scalars = (
    st.none()
    | st.just(UNDEFINED)
    | st.booleans()
    | st.integers(-(1 << 28), (1 << 28) - 1)
    | st.floats(allow_nan=False)
    | texts
    | texts.map(XmlDocument)
    | st.binary(max_size=20)
    | st.floats(allow_nan=False).map(AmfDate)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.builds(
            Amf3Array, st.dictionaries(keys, children, min_size=1, max_size=3), st.lists(children, max_size=3)
        )
        | st.builds(TypedObject, keys, st.dictionaries(keys, children, max_size=4))
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(values)
def test_round_trip(value: Any) -> None:
    data = encode_amf3(value)
    decoded, end = decode_amf3(data)
    assert end == len(data)
    assert decoded == value
    assert type(decoded) is type(value)


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_amf3(data)
