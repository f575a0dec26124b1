"""The RTMP chunk stream (RTMP 1.0 §5.3): a reader that reassembles messages and a writer that chunks them.

The reader applies Set Chunk Size (type 1) and Abort Message (type 2) itself, because they change how the
very next chunk is parsed; every other complete message is returned to the caller.  Timestamps are 32-bit
millisecond values (arithmetic modulo 2^32, RTMP 1.0 §5.1.1); unwrapping is the FLV layer's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from streamit.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError

DEFAULT_CHUNK_SIZE: Final = 128
"""RTMP 1.0 §5.4.1: the chunk size until a Set Chunk Size message says otherwise."""
DEFAULT_MAX_MESSAGE_SIZE: Final = 8 * 1024 * 1024
MAX_CHUNK_SIZE: Final = 0x7FFFFFFF
EXTENDED_TIMESTAMP: Final = 0xFFFFFF
MIN_CHUNK_STREAM_ID: Final = 2
MAX_CHUNK_STREAM_ID: Final = 65599
TIMESTAMP_MASK: Final = 0xFFFFFFFF

SET_CHUNK_SIZE: Final = 1
ABORT_MESSAGE: Final = 2

_U32 = struct.Struct(">I")
_U32_LE = struct.Struct("<I")
_U32_U32 = struct.Struct(">II")

_SMALL_PIECE: Final = 256
"""Pieces of a partial message shorter than this are gathered into one bytearray."""

# The 1-byte basic header of a type-3 chunk of each chunk stream id below 64 (RTMP 1.0 §5.3.1.1).
_CONTINUATION_HEADERS = tuple(bytes((0xC0 | csid,)) for csid in range(64))


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled RTMP message."""

    chunk_stream_id: int
    type_id: int
    stream_id: int
    timestamp: int
    """Milliseconds, modulo 2^32."""
    payload: bytes


RawMessage = tuple[int, int, int, int, bytes]
"""A :class:`Message` as a plain tuple: chunk stream id, type id, stream id, timestamp, payload."""


class _InboundChunkStream:
    """What the previous chunk headers of one chunk stream established (RTMP 1.0 §5.3.1.2)."""

    __slots__ = (
        "chunk_left",
        "csid",
        "delta",
        "extended",
        "length",
        "parts",
        "received",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self, csid: int) -> None:
        self.csid = csid
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.parts: list[bytes | bytearray] = []
        """The received pieces of the message in progress."""
        self.received = 0
        self.chunk_left = 0
        """Bytes of the current chunk's data still to come, while a buffer ended inside it."""

    def keep(self, piece: bytes) -> None:
        """Add a piece to the message in progress.

        Small pieces (a tiny chunk size, or a peer trickling bytes) are gathered in one bytearray, so that
        what a partial message holds stays close to its size rather than an object per piece.
        """
        parts = self.parts
        if len(piece) >= _SMALL_PIECE:
            parts.append(piece)
        elif parts and type(parts[-1]) is bytearray:
            parts[-1] += piece
        else:
            parts.append(bytearray(piece))


class ChunkReader:
    """Parses chunks from the start of a buffer and returns the messages they complete."""

    __slots__ = ("_chunk_size", "_open", "_streams", "max_message_size")

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _InboundChunkStream] = {}
        self._open: _InboundChunkStream | None = None
        """The chunk stream whose chunk data the last buffer ended in."""

    @property
    def chunk_size(self) -> int:
        """The peer's current chunk size."""
        return self._chunk_size

    def read(self, data: bytes | bytearray | memoryview) -> tuple[list[Message], int]:
        """Parse the chunks at the start of ``data``.

        Returns the completed messages (Set Chunk Size and Abort excluded: they are applied here) and the
        number of bytes consumed; the caller keeps the rest (an incomplete chunk header, at most 18 bytes)
        for the next call.  The data of a chunk that ``data`` ends inside is consumed and kept here.
        Raises :class:`~streamit.errors.RemoteProtocolError` (or :class:`~streamit.errors.MessageTooLarge`).
        """
        messages: list[Message] = []
        consumed = self.read_into(data, messages)
        return messages, consumed

    def read_into(self, data: bytes | bytearray | memoryview, messages: list[Message]) -> int:
        """Like :meth:`read`, appending to ``messages``, which keeps what completed before an error."""
        raw: list[RawMessage] = []
        try:
            return self.read_raw(data, raw)
        finally:
            messages.extend([Message(*fields) for fields in raw])

    def read_raw(self, data: bytes | bytearray | memoryview, messages: list[RawMessage]) -> int:
        """Like :meth:`read_into`, with each message as a plain :data:`RawMessage` tuple.

        The cheap form for the connection, which turns most messages straight into events.  Other buffers
        than bytes are copied into bytes first: slices of bytes are copies the reader may keep, and as the
        reader takes the data of unfinished chunks, such a buffer holds little more than what just arrived.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        end = len(data)
        if not end:
            return 0
        pos = 0
        unpack_u32 = _U32.unpack_from
        streams = self._streams
        chunk_size = self._chunk_size
        stream = self._open
        if stream is not None:
            # The previous buffer ended inside this chunk stream's chunk data: ours starts with the rest.
            left = stream.chunk_left
            if end < left:
                stream.keep(data)
                stream.received += end
                stream.chunk_left = left - end
                return end
            self._open = None
            stream.chunk_left = 0
            if left < _SMALL_PIECE:
                stream.keep(data[:left])
            else:
                stream.parts.append(data[:left])
            pos = left
            received = stream.received + left
            if received < stream.length:
                stream.received = received
            else:
                payload = b"".join(stream.parts)
                stream.parts = []
                stream.received = 0
                type_id = stream.type_id
                if type_id > ABORT_MESSAGE or not type_id:
                    messages.append((stream.csid, type_id, stream.stream_id, stream.timestamp, payload))
                else:
                    self._apply_control(type_id, payload)
                    chunk_size = self._chunk_size
        while pos < end:
            first = data[pos]
            csid = first & 0x3F
            p = pos + 1
            if csid < 2:
                # RTMP 1.0 §5.3.1.1: ids 0 and 1 announce the 2- and 3-byte basic header forms.
                if csid:
                    if p + 1 >= end:
                        break
                    csid = 64 + data[p] + (data[p + 1] << 8)
                    p += 2
                else:
                    if p >= end:
                        break
                    csid = 64 + data[p]
                    p += 1
            stream = streams.get(csid)
            if first >= 0xC0:
                # Type 3: no message header; continues a message or starts one like the previous one.
                if stream is None:
                    raise RemoteProtocolError(f"chunk stream {csid}: fmt 3 chunk without a previous header")
                extended = stream.extended
                if extended:
                    # Senders of the Flash lineage (ffmpeg, librtmp) repeat the extended timestamp on every
                    # type-3 chunk of a message whose header used one (RTMP 1.0 §5.3.1.3).
                    if p + 4 > end:
                        break
                    field = unpack_u32(data, p)[0]
                    p += 4
                else:
                    field = stream.delta
                received = stream.received
                if not received:
                    # RTMP 1.0 §5.3.1.2.4: a type-3 chunk starting a new message reuses the previous delta
                    # (after a type-0 header, that "delta" is the type-0 timestamp itself).
                    stream.timestamp = (stream.timestamp + field) & TIMESTAMP_MASK
                    stream.delta = field
                length = stream.length
            else:
                fmt = first >> 6
                if fmt == 1:
                    if p + 7 > end:
                        break
                    # One unpack of the basic header byte and the 7 header bytes: delta, length, type.
                    field, length = _U32_U32.unpack_from(data, p - 1)
                    field &= 0xFFFFFF
                    type_id = length & 0xFF
                    length >>= 8
                    p += 7
                elif fmt == 2:
                    if p + 3 > end:
                        break
                    field = unpack_u32(data, p - 1)[0] & 0xFFFFFF
                    p += 3
                else:
                    if p + 11 > end:
                        break
                    # Read 4 bytes starting one byte early and mask, to take a 24-bit field with one unpack.
                    field = unpack_u32(data, p - 1)[0] & 0xFFFFFF
                    length = unpack_u32(data, p + 2)[0] & 0xFFFFFF
                    type_id = data[p + 6]
                    stream_id = _U32_LE.unpack_from(data, p + 7)[0]
                    p += 11
                if stream is None:
                    if fmt:
                        raise RemoteProtocolError(
                            f"chunk stream {csid}: fmt {fmt} chunk without a previous header"
                        )
                    stream = streams[csid] = _InboundChunkStream(csid)
                elif stream.received:
                    raise RemoteProtocolError(f"chunk stream {csid}: new message header inside a message")
                extended = field == EXTENDED_TIMESTAMP
                if extended:
                    if p + 4 > end:
                        break
                    field = unpack_u32(data, p)[0]
                    p += 4
                if fmt == 2:
                    length = stream.length
                else:
                    if length > self.max_message_size:
                        raise MessageTooLarge(
                            f"message of {length} bytes exceeds the {self.max_message_size} cap"
                        )
                    stream.length = length
                    stream.type_id = type_id
                if fmt:
                    stream.timestamp = (stream.timestamp + field) & TIMESTAMP_MASK
                else:
                    stream.timestamp = field
                    stream.stream_id = stream_id
                stream.delta = field
                stream.extended = extended
                received = 0
            remaining = length - received
            stop = p + (remaining if remaining < chunk_size else chunk_size)
            if stop > end:
                # The buffer ends inside this chunk's data: keep what is here, the rest starts the next one.
                if end - p < _SMALL_PIECE:
                    stream.keep(data[p:end])
                else:
                    stream.parts.append(data[p:end])
                stream.received = received + end - p
                stream.chunk_left = stop - end
                self._open = stream
                return end
            if remaining <= chunk_size:
                pos = stop
                payload = data[p:stop]
                if received:
                    stream.parts.append(payload)
                    payload = b"".join(stream.parts)
                    stream.parts = []
                    stream.received = 0
            else:
                # The continuation chunks normally follow back to back, each behind the 1-byte type-3
                # basic header of this chunk stream (plus the repeated extended timestamp): their headers
                # are checked with one strided slice, and the chunks taken as views of the buffer.
                count = (remaining - 1) // chunk_size
                step = chunk_size + (5 if extended else 1)
                last = p + count * step
                whole = last + remaining - count * chunk_size
                if whole > end or csid > 63 or data[stop:last:step] != _CONTINUATION_HEADERS[csid] * count:
                    # The message goes on in a later buffer (or another chunk stream's chunk comes between):
                    # take the whole chunks that are here.
                    full = (end - stop) // step
                    if full >= count:
                        full = count - 1
                    if (
                        full
                        and csid < 64
                        and data[stop : stop + full * step : step] == _CONTINUATION_HEADERS[csid] * full
                    ):
                        pos = stop + full * step
                        view = memoryview(data)
                        stream.keep(b"".join([view[s : s + chunk_size] for s in range(p, pos, step)]))
                        view.release()
                        stream.received = received + (full + 1) * chunk_size
                    else:
                        pos = stop
                        stream.keep(data[p:stop])
                        stream.received = received + chunk_size
                    continue
                pos = whole
                # Views, so that the join is the payload's only copy of these chunks.
                view = memoryview(data)
                pieces: list[bytes | bytearray | memoryview] = [
                    view[start : start + chunk_size] for start in range(p, last, step)
                ]
                pieces.append(view[last:whole])
                if received:
                    pieces[:0] = stream.parts
                    stream.parts = []
                    stream.received = 0
                payload = b"".join(pieces)
                del pieces
                view.release()
            type_id = stream.type_id
            if type_id > ABORT_MESSAGE or not type_id:
                messages.append((csid, type_id, stream.stream_id, stream.timestamp, payload))
            else:
                self._apply_control(type_id, payload)
                chunk_size = self._chunk_size
        return pos

    def _apply_control(self, type_id: int, payload: bytes) -> None:
        if type_id == SET_CHUNK_SIZE:
            if len(payload) < 4:
                raise RemoteProtocolError("Set Chunk Size message shorter than 4 bytes")
            # RTMP 1.0 §5.4.1: bit 31 must be zero; sizes run 1..0x7FFFFFFF.
            size = _U32.unpack_from(payload)[0]
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise RemoteProtocolError(f"invalid chunk size {size}")
            self._chunk_size = size
        elif type_id == ABORT_MESSAGE:
            if len(payload) < 4:
                raise RemoteProtocolError("Abort Message shorter than 4 bytes")
            aborted = self._streams.get(_U32.unpack_from(payload)[0])
            if aborted is not None:
                aborted.parts = []
                aborted.received = 0


class _OutboundChunkStream:
    __slots__ = ("delta", "extended", "length", "stream_id", "timestamp", "type_id")

    def __init__(self, stream_id: int, length: int, type_id: int, timestamp: int, extended: bool) -> None:
        self.stream_id = stream_id
        self.length = length
        self.type_id = type_id
        self.timestamp = timestamp
        self.delta = timestamp
        self.extended = extended


def encode_basic_header(fmt: int, chunk_stream_id: int) -> bytes:
    """The 1-, 2- or 3-byte basic header for ``fmt`` and ``chunk_stream_id`` (RTMP 1.0 §5.3.1.1)."""
    if chunk_stream_id < 64:
        if chunk_stream_id < MIN_CHUNK_STREAM_ID:
            raise LocalProtocolError(f"chunk stream id {chunk_stream_id} is reserved")
        return bytes((fmt << 6 | chunk_stream_id,))
    rest = chunk_stream_id - 64
    if rest < 256:
        return bytes((fmt << 6, rest))
    if chunk_stream_id > MAX_CHUNK_STREAM_ID:
        raise LocalProtocolError(f"chunk stream id {chunk_stream_id} is out of range")
    return bytes((fmt << 6 | 1, rest & 0xFF, rest >> 8))


class ChunkWriter:
    """Splits outgoing messages into chunks, compressing headers against the chunk stream's last message."""

    __slots__ = ("_chunk_size", "_streams")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _OutboundChunkStream] = {}
        self.chunk_size = chunk_size

    @property
    def chunk_size(self) -> int:
        """Our chunk size; change it only together with sending Set Chunk Size to the peer."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, size: int) -> None:
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise LocalProtocolError(f"invalid chunk size {size}")
        self._chunk_size = size

    def write(
        self, chunk_stream_id: int, type_id: int, stream_id: int, timestamp: int, payload: bytes
    ) -> bytes:
        """The chunks carrying one message."""
        length = len(payload)
        if length > 0xFFFFFF:
            raise LocalProtocolError(f"message of {length} bytes does not fit a chunk header")
        if not 0 <= type_id <= 0xFF or not 0 <= stream_id <= 0xFFFFFFFF:
            raise LocalProtocolError("type id or message stream id out of range")
        timestamp &= TIMESTAMP_MASK
        state = self._streams.get(chunk_stream_id)
        if state is None or state.stream_id != stream_id or timestamp < state.timestamp:
            extended = timestamp >= EXTENDED_TIMESTAMP
            field = EXTENDED_TIMESTAMP if extended else timestamp
            header = (
                encode_basic_header(0, chunk_stream_id)
                + field.to_bytes(3, "big")
                + _U32.pack(length << 8 | type_id)
                + _U32_LE.pack(stream_id)
            )
            if extended:
                header += _U32.pack(timestamp)
            state = self._streams[chunk_stream_id] = _OutboundChunkStream(
                stream_id, length, type_id, timestamp, extended
            )
        else:
            delta = timestamp - state.timestamp
            if state.length == length and state.type_id == type_id:
                if delta == state.delta:
                    fmt = 3
                    extended = state.extended
                    header = encode_basic_header(3, chunk_stream_id)
                    if extended:
                        header += _U32.pack(delta)
                else:
                    fmt = 2
            else:
                fmt = 1
            if fmt != 3:
                extended = delta >= EXTENDED_TIMESTAMP
                field = EXTENDED_TIMESTAMP if extended else delta
                header = encode_basic_header(fmt, chunk_stream_id) + _U32.pack(field)[1:]
                if fmt == 1:
                    header += _U32.pack(length << 8 | type_id)
                if extended:
                    header += _U32.pack(delta)
            state.length = length
            state.type_id = type_id
            state.timestamp = timestamp
            state.delta = delta
            state.extended = extended
        size = self._chunk_size
        if length <= size:
            return header + payload
        continuation = encode_basic_header(3, chunk_stream_id)
        if extended:
            continuation += _U32.pack(state.delta)
        view = memoryview(payload)
        parts: list[bytes | memoryview] = [header, view[:size]]
        for start in range(size, length, size):
            parts.append(continuation)
            parts.append(view[start : start + size])
        return b"".join(parts)
