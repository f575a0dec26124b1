"""The FLV file format (FLV spec v10.1 Annex E.2-E.3): incremental reader and writer.

A file is a 9-byte header, then ``PreviousTagSize0`` (always 0), then tags each followed by their
``PreviousTagSize`` (11 + DataSize).  Tag bodies are what :class:`~streamit.flv.FlvDemuxer` consumes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from streamit.errors import LocalProtocolError, RemoteProtocolError, UnsupportedCodec

FLV_SIGNATURE = b"FLV"
HEADER_SIZE = 9
TAG_HEADER_SIZE = 11
PREVIOUS_TAG_SIZE_SIZE = 4
MAX_TAG_DATA_SIZE = (1 << 24) - 1

_FLAG_AUDIO = 0x04
_FLAG_VIDEO = 0x01
_FILTER_BIT = 0x20

_HEADER = struct.Struct(">3sBBI")
_U32 = struct.Struct(">I")
# TagType, DataSize (24), Timestamp (24), TimestampExtended, StreamID (24): packed as B, I>>8 pairs.
_TAG_HEADER = struct.Struct(">BHBHBBBH")


class FlvTagType(enum.IntEnum):
    """FLV ``TagType`` values (§E.4.1)."""

    AUDIO = 8
    VIDEO = 9
    SCRIPT_DATA = 18


@dataclass(frozen=True, slots=True)
class FlvHeader:
    """The FLV file header (§E.2)."""

    version: int
    has_audio: bool
    has_video: bool
    data_offset: int


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One FLV tag: ``timestamp`` in milliseconds (32 bits, TimestampExtended included) and its body."""

    tag_type: FlvTagType
    timestamp: int
    payload: bytes


class _ReadState(enum.Enum):
    HEADER = enum.auto()
    HEADER_PADDING = enum.auto()
    TAGS = enum.auto()


class FlvFileReader:
    """Sans-I/O FLV file parser: :meth:`feed` bytes as they arrive, iterate to take the complete tags.

    Raises :class:`RemoteProtocolError` on a bad signature, an invalid tag type, encrypted tags or a
    ``PreviousTagSize`` that does not match the previous tag.
    """

    def __init__(self) -> None:
        self.header: FlvHeader | None = None
        self._buffer = bytearray()
        self._offset = 0
        self._state = _ReadState.HEADER
        self._padding = 0
        self._previous_size = 0

    def feed(self, data: bytes) -> None:
        """Append the next bytes of the file."""
        self._buffer += data

    def __iter__(self) -> Iterator[FlvTag]:
        while (tag := self.next_tag()) is not None:
            yield tag

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by a complete header or tag."""
        return len(self._buffer) - self._offset

    def next_tag(self) -> FlvTag | None:
        """The next complete tag, or ``None`` if more bytes are needed."""
        if self._state is _ReadState.HEADER and not self._read_header():
            return None
        if self._state is _ReadState.HEADER_PADDING and not self._skip_padding():
            return None
        return self._read_tag()

    def close(self) -> None:
        """Declare the end of the file; raises :class:`RemoteProtocolError` if it ended mid-structure."""
        if self._state is not _ReadState.TAGS:
            raise RemoteProtocolError("FLV file ends inside its header")
        if self.buffered:
            raise RemoteProtocolError(f"FLV file ends with {self.buffered} bytes of an incomplete tag")

    def _consume(self, count: int) -> None:
        self._offset += count
        # Compact lazily so that feeding a large file in small pieces stays linear.
        if self._offset > 65536 and self._offset * 2 > len(self._buffer):
            del self._buffer[: self._offset]
            self._offset = 0

    def _read_header(self) -> bool:
        if self.buffered < HEADER_SIZE + PREVIOUS_TAG_SIZE_SIZE:
            # Fail fast on a wrong signature instead of waiting for 13 bytes.
            seen = bytes(self._buffer[self._offset : self._offset + 3])
            if not FLV_SIGNATURE.startswith(seen):
                raise RemoteProtocolError("not an FLV file (bad signature)")
            return False
        signature, version, flags, data_offset = _HEADER.unpack_from(self._buffer, self._offset)
        if signature != FLV_SIGNATURE:
            raise RemoteProtocolError("not an FLV file (bad signature)")
        if data_offset < HEADER_SIZE:
            raise RemoteProtocolError(f"FLV header DataOffset {data_offset} is smaller than the header")
        self.header = FlvHeader(
            version=version,
            has_audio=bool(flags & _FLAG_AUDIO),
            has_video=bool(flags & _FLAG_VIDEO),
            data_offset=data_offset,
        )
        self._consume(HEADER_SIZE)
        self._padding = data_offset - HEADER_SIZE
        self._state = _ReadState.HEADER_PADDING
        return True

    def _skip_padding(self) -> bool:
        # §E.2: DataOffset allows a larger header in future versions; its extra bytes are skipped.
        if self.buffered < self._padding + PREVIOUS_TAG_SIZE_SIZE:
            return False
        self._consume(self._padding)
        (previous,) = _U32.unpack_from(self._buffer, self._offset)
        if previous != 0:
            raise RemoteProtocolError(f"FLV PreviousTagSize0 is {previous}, not 0")
        self._consume(PREVIOUS_TAG_SIZE_SIZE)
        self._state = _ReadState.TAGS
        return True

    def _read_tag(self) -> FlvTag | None:
        if self.buffered < TAG_HEADER_SIZE:
            return None
        offset = self._offset
        type_byte, size_high, size_low, ts_low_high, ts_low, ts_ext, _stream_high, _stream_low = (
            _TAG_HEADER.unpack_from(self._buffer, offset)
        )
        data_size = (size_high << 8) | size_low
        if type_byte & _FILTER_BIT:
            raise UnsupportedCodec("encrypted (filtered) FLV tags are not supported")
        try:
            tag_type = FlvTagType(type_byte & 0x1F)
        except ValueError:
            raise RemoteProtocolError(f"FLV tag has invalid TagType {type_byte & 0x1F}") from None
        end = offset + TAG_HEADER_SIZE + data_size
        if len(self._buffer) < end + PREVIOUS_TAG_SIZE_SIZE:
            return None
        (previous,) = _U32.unpack_from(self._buffer, end)
        if previous != TAG_HEADER_SIZE + data_size:
            raise RemoteProtocolError(
                f"FLV PreviousTagSize {previous} does not match the tag size {TAG_HEADER_SIZE + data_size}"
            )
        timestamp = (ts_ext << 24) | (ts_low_high << 8) | ts_low
        payload = bytes(self._buffer[offset + TAG_HEADER_SIZE : end])
        self._consume(TAG_HEADER_SIZE + data_size + PREVIOUS_TAG_SIZE_SIZE)
        return FlvTag(tag_type, timestamp, payload)


class FlvFileWriter:
    """Serialises an FLV file: :meth:`header` once, then :meth:`tag` per tag. Stateless."""

    def header(self, has_audio: bool, has_video: bool) -> bytes:
        """The 9-byte file header followed by ``PreviousTagSize0``."""
        flags = (_FLAG_AUDIO if has_audio else 0) | (_FLAG_VIDEO if has_video else 0)
        return _HEADER.pack(FLV_SIGNATURE, 1, flags, HEADER_SIZE) + b"\x00\x00\x00\x00"

    def tag(self, tag_type: int, timestamp: int, payload: bytes) -> bytes:
        """One tag plus its ``PreviousTagSize``.

        ``timestamp`` is in milliseconds; FLV keeps 32 bits of it, so unbounded timestamps wrap.
        """
        try:
            FlvTagType(tag_type)
        except ValueError:
            raise LocalProtocolError(f"FLV TagType {tag_type} is not audio, video or script data") from None
        if timestamp < 0:
            raise LocalProtocolError(f"FLV timestamps cannot be negative ({timestamp})")
        size = len(payload)
        if size > MAX_TAG_DATA_SIZE:
            raise LocalProtocolError(f"FLV tag body of {size} bytes exceeds the 24-bit DataSize")
        timestamp &= 0xFFFFFFFF
        header = _TAG_HEADER.pack(
            tag_type,
            size >> 8,
            size & 0xFF,
            (timestamp >> 8) & 0xFFFF,
            timestamp & 0xFF,
            timestamp >> 24,
            0,
            0,
        )
        return b"".join((header, payload, _U32.pack(TAG_HEADER_SIZE + size)))
