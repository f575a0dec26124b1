"""ISO base media file format box writer (ISO/IEC 14496-12 §4.2).

A box is a 32-bit size (header included), a four-character type, then its payload; a *full box* adds a
version byte and 24 bits of flags (§4.2.2).  Payloads are built by the caller with :mod:`struct`; this
module only frames them.
"""

from __future__ import annotations

import struct

from streamit.errors import LocalProtocolError

BOX_HEADER_SIZE = 8
"""Size and type: the header of every box this package writes (no 64-bit ``largesize``)."""

MAX_BOX_SIZE = 0xFFFF_FFFF
"""The largest size a 32-bit box header can state."""

_pack_header = struct.Struct(">I4s").pack
_pack_full_header = struct.Struct(">I4sI").pack


def _fourcc(kind: bytes) -> bytes:
    if len(kind) != 4:
        raise LocalProtocolError(f"a box type has four characters, not {kind!r}")
    return kind


def box(kind: bytes, *payload: bytes) -> bytes:
    """A box of type ``kind`` whose payload is the concatenation of ``payload``."""
    body = b"".join(payload)
    size = BOX_HEADER_SIZE + len(body)
    if size > MAX_BOX_SIZE:
        raise LocalProtocolError(f"a {kind!r} box of {size} bytes does not fit a 32-bit size")
    return _pack_header(size, _fourcc(kind)) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    """A full box: ``version`` (8 bits) and ``flags`` (24 bits) before the payload (§4.2.2)."""
    if not 0 <= version <= 0xFF or not 0 <= flags <= 0xFF_FFFF:
        raise LocalProtocolError(f"full box version {version} / flags {flags:#x} out of range")
    body = b"".join(payload)
    size = BOX_HEADER_SIZE + 4 + len(body)
    if size > MAX_BOX_SIZE:
        raise LocalProtocolError(f"a {kind!r} box of {size} bytes does not fit a 32-bit size")
    return _pack_full_header(size, _fourcc(kind), (version << 24) | flags) + body
