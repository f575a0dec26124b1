"""Message bodies: control encoders, command decoding (AMF0 and AMF3 commands), aggregate splitting."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError
from streamit.rtmp.amf0 import encode_amf0_all
from streamit.rtmp.messages import (
    Command,
    MessageType,
    PeerBandwidthLimit,
    SubMessage,
    UserControlEvent,
    decode_amf_values,
    decode_command,
    decode_uint32,
    decode_user_control,
    encode_acknowledgement,
    encode_command,
    encode_set_chunk_size,
    encode_set_peer_bandwidth,
    encode_user_control,
    encode_window_ack_size,
    split_aggregate,
)


def test_control_message_bodies() -> None:
    assert encode_set_chunk_size(4096) == b"\x00\x00\x10\x00"
    assert encode_acknowledgement(2**32 + 5) == b"\x00\x00\x00\x05"
    assert encode_window_ack_size(2_500_000) == struct.pack(">I", 2_500_000)
    assert encode_set_peer_bandwidth(2_500_000, PeerBandwidthLimit.DYNAMIC) == struct.pack(
        ">IB", 2_500_000, 2
    )
    assert encode_user_control(UserControlEvent.STREAM_BEGIN, 1) == b"\x00\x00\x00\x00\x00\x01"
    assert encode_user_control(UserControlEvent.SET_BUFFER_LENGTH, 1, 3000) == b"\x00\x03" + struct.pack(
        ">II", 1, 3000
    )


def test_control_message_decoders() -> None:
    assert decode_uint32(b"\x00\x00\x01\x00", "x") == 256
    assert decode_user_control(b"\x00\x06\x00\x00\x00\x09") == (6, 9)
    with pytest.raises(RemoteProtocolError):
        decode_uint32(b"\x00", "x")
    with pytest.raises(RemoteProtocolError):
        decode_user_control(b"\x00\x06\x00")


def test_command_round_trip() -> None:
    body = encode_command("publish", 5, None, "key?token=1", "live")
    assert decode_command(MessageType.COMMAND_AMF0, body) == Command(
        "publish", 5.0, None, ("key?token=1", "live")
    )


def test_amf3_command_has_a_leading_format_byte_and_may_switch() -> None:
    # Type 17: 0x00, then AMF0 "connect", 1, then the command object switched to AMF3 (AMF0 §3.1).
    body = b"\x00" + encode_amf0_all("connect", 1) + b"\x11\x0a\x0b\x01\x07app\x06\x09live\x01"
    command = decode_command(MessageType.COMMAND_AMF3, body)
    assert command == Command("connect", 1.0, {"app": "live"}, ())


def test_amf3_data_message() -> None:
    body = b"\x00" + encode_amf0_all("onMetaData", {"width": 320})
    assert decode_amf_values(MessageType.DATA_AMF3, body) == ["onMetaData", {"width": 320.0}]


@pytest.mark.parametrize(
    "body", [b"", encode_amf0_all("x"), encode_amf0_all(1, 2), encode_amf0_all("x", "1")]
)
def test_command_needs_a_name_and_a_numeric_transaction_id(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_command(MessageType.COMMAND_AMF0, body)


def sub_message(type_id: int, timestamp: int, body: bytes) -> bytes:
    header = bytes([type_id]) + len(body).to_bytes(3, "big") + (timestamp & 0xFFFFFF).to_bytes(3, "big")
    header += bytes([timestamp >> 24]) + b"\x00\x00\x00"
    return header + body + struct.pack(">I", 11 + len(body))


def test_aggregate_is_split_and_rebased() -> None:
    payload = (
        sub_message(9, 5000, b"\x17\x01v1")
        + sub_message(8, 5010, b"\xaf\x01a")
        + sub_message(9, 0x1000020, b"v2")
    )
    assert split_aggregate(payload, 100) == [
        SubMessage(9, 100, b"\x17\x01v1"),
        SubMessage(8, 110, b"\xaf\x01a"),
        SubMessage(9, 0x1000020 - 5000 + 100, b"v2"),
    ]


def test_aggregate_rebasing_wraps_modulo_2_32() -> None:
    payload = sub_message(9, 10, b"a") + sub_message(9, 30, b"b")
    assert [m.timestamp for m in split_aggregate(payload, 0xFFFFFFF0)] == [0xFFFFFFF0, 0x4]


@pytest.mark.parametrize("cut", [1, 10, 14])
def test_truncated_aggregate_is_refused(cut: int) -> None:
    with pytest.raises(RemoteProtocolError):
        split_aggregate(sub_message(9, 0, b"abcd")[:cut], 0)


@settings(deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0xFFFFFFFF))
def test_arbitrary_aggregate_parses_or_raises_remote_protocol_error(payload: bytes, timestamp: int) -> None:
    try:
        messages = split_aggregate(payload, timestamp)
    except RemoteProtocolError:
        return
    assert sum(len(m.payload) + 15 for m in messages) >= len(payload)


@settings(deadline=None)
@given(st.sampled_from([15, 17, 18, 20]), st.binary(max_size=200))
def test_arbitrary_command_bytes_parse_or_raise_remote_protocol_error(type_id: int, payload: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_command(type_id, payload)
