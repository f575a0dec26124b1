"""RTMP message types and message bodies: protocol control, user control, commands, data, aggregates.

Encoders build the payloads we send; decoders turn peer payloads into values and raise
:class:`~streamit.errors.RemoteProtocolError` when they are malformed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any, Final

from streamit.errors import RemoteProtocolError
from streamit.rtmp.amf0 import decode_amf0_all, encode_amf0_all

_U32 = struct.Struct(">I")
_U32_U8 = struct.Struct(">IB")
_U16 = struct.Struct(">H")
_U16_U32 = struct.Struct(">HI")
_U16_U32_U32 = struct.Struct(">HII")
_TAG_HEADER = struct.Struct(">II")


class MessageType(enum.IntEnum):
    """RTMP message type ids (RTMP 1.0 §5.4, §7.1)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(enum.IntEnum):
    """User Control event types (RTMP 1.0 §7.1.7)."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(enum.IntEnum):
    """Limit types of Set Peer Bandwidth (RTMP 1.0 §5.4.5)."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


CONTROL_CHUNK_STREAM: Final = 2
"""RTMP 1.0 §5.4: protocol control messages use chunk stream 2 and message stream 0."""
COMMAND_CHUNK_STREAM: Final = 3
STATUS_CHUNK_STREAM: Final = 5

AMF_TYPES: Final = frozenset(
    (MessageType.DATA_AMF0, MessageType.DATA_AMF3, MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3)
)


def encode_set_chunk_size(size: int) -> bytes:
    """Set Chunk Size body (RTMP 1.0 §5.4.1)."""
    return _U32.pack(size & 0x7FFFFFFF)


def encode_abort(chunk_stream_id: int) -> bytes:
    """Abort Message body (RTMP 1.0 §5.4.2)."""
    return _U32.pack(chunk_stream_id)


def encode_acknowledgement(sequence_number: int) -> bytes:
    """Acknowledgement body: bytes received so far, modulo 2^32 (RTMP 1.0 §5.4.3)."""
    return _U32.pack(sequence_number & 0xFFFFFFFF)


def encode_window_ack_size(size: int) -> bytes:
    """Window Acknowledgement Size body (RTMP 1.0 §5.4.4)."""
    return _U32.pack(size)


def encode_set_peer_bandwidth(size: int, limit: PeerBandwidthLimit) -> bytes:
    """Set Peer Bandwidth body (RTMP 1.0 §5.4.5)."""
    return _U32_U8.pack(size, limit)


def encode_user_control(event: UserControlEvent, value: int, extra: int | None = None) -> bytes:
    """User Control body: event type then one 32-bit value (two for Set Buffer Length) (RTMP 1.0 §7.1.7)."""
    if extra is None:
        return _U16_U32.pack(event, value & 0xFFFFFFFF)
    return _U16_U32_U32.pack(event, value & 0xFFFFFFFF, extra & 0xFFFFFFFF)


def decode_uint32(payload: bytes, what: str) -> int:
    """The leading 32-bit big-endian value of a control message body."""
    if len(payload) < 4:
        raise RemoteProtocolError(f"{what} message shorter than 4 bytes")
    value: int = _U32.unpack_from(payload)[0]
    return value


def decode_user_control(payload: bytes) -> tuple[int, int]:
    """The event type and first value of a User Control body."""
    if len(payload) < 6:
        raise RemoteProtocolError("User Control message shorter than 6 bytes")
    event_type, value = _U16_U32.unpack_from(payload)
    return event_type, value


def decode_amf_values(type_id: int, payload: bytes) -> list[Any]:
    """The AMF values of a command or data message.

    Types 15 and 17 start with one format byte (0 for AMF0) before AMF0 values, which may switch to AMF3
    through the avmplus marker (AMF0 §3.1).
    """
    offset = 0
    if type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3) and payload[:1] == b"\x00":
        offset = 1
    return decode_amf0_all(payload, offset)


@dataclass(frozen=True, slots=True)
class Command:
    """A decoded command message (RTMP 1.0 §7.1.1): name, transaction id, command object, arguments."""

    name: str
    transaction_id: float
    command_object: Any
    arguments: tuple[Any, ...]


def decode_command(type_id: int, payload: bytes) -> Command:
    """Decode a command message body; the name must be a string and the transaction id a number."""
    values = decode_amf_values(type_id, payload)
    if len(values) < 2 or not isinstance(values[0], str):
        raise RemoteProtocolError("command message without a name and transaction id")
    transaction_id = values[1]
    if isinstance(transaction_id, bool) or not isinstance(transaction_id, int | float):
        raise RemoteProtocolError(f"command {values[0]!r}: transaction id is not a number")
    command_object = values[2] if len(values) > 2 else None
    return Command(values[0], float(transaction_id), command_object, tuple(values[3:]))


def encode_command(name: str, transaction_id: float, command_object: Any, *arguments: Any) -> bytes:
    """An AMF0 command message body."""
    return encode_amf0_all(name, transaction_id, command_object, *arguments)


@dataclass(frozen=True, slots=True)
class SubMessage:
    """One message carried inside an aggregate message."""

    type_id: int
    timestamp: int
    payload: bytes


def split_aggregate(payload: bytes, timestamp: int) -> list[SubMessage]:
    """Split an aggregate message (type 22, RTMP 1.0 §7.1.6) into its sub-messages.

    Each sub-message is an FLV-tag-like record: type (1), size (3), timestamp (3 + 1 extension byte),
    stream id (3), body, then a 4-byte back-pointer that we skip.  Timestamps are rebased so that the first
    sub-message gets the aggregate's own timestamp.
    """
    messages: list[SubMessage] = []
    total = len(payload)
    offset = 0
    first: int | None = None
    while offset < total:
        if offset + 11 > total:
            raise RemoteProtocolError("aggregate message: truncated sub-message header")
        type_size, stamp = _TAG_HEADER.unpack_from(payload, offset)
        type_id = type_size >> 24
        size = type_size & 0xFFFFFF
        # The fourth timestamp byte holds the high 8 bits (FLV tag TimestampExtended).
        sub_timestamp = (stamp >> 8) | ((stamp & 0xFF) << 24)
        body_start = offset + 11
        body_end = body_start + size
        if body_end > total:
            raise RemoteProtocolError("aggregate message: sub-message runs past the end")
        if first is None:
            first = sub_timestamp
        rebased = (sub_timestamp - first + timestamp) & 0xFFFFFFFF
        messages.append(SubMessage(type_id, rebased, payload[body_start:body_end]))
        offset = body_end + 4
    return messages
