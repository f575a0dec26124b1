"""AMF0 values: a complete decoder (all markers, references, the AMF3 switch) and an encoder.

Python mapping (AMF0 §2):

=====================  ===========================================
AMF0                   Python
=====================  ===========================================
number                 ``float``
boolean                ``bool``
string, long string    ``str``
object                 ``dict[str, Any]``
null                   ``None``
undefined              :data:`UNDEFINED`
reference              the referenced (same) Python object
ECMA array             :class:`EcmaArray` (a ``dict`` subclass)
strict array           ``list``
date                   :class:`AmfDate`
XML document           :class:`XmlDocument` (a ``str`` subclass)
typed object           :class:`TypedObject`
avmplus-object         the AMF3 value (:mod:`streamit.rtmp.amf3`)
=====================  ===========================================
"""

from __future__ import annotations

import struct
from typing import Any, Final

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.rtmp.amf3 import (
    MAX_DEPTH,
    UNDEFINED,
    Amf3Decoder,
    AmfDate,
    TypedObject,
    Undefined,
    XmlDocument,
    encode_amf3,
)

__all__ = [
    "UNDEFINED",
    "AmfDate",
    "EcmaArray",
    "TypedObject",
    "Undefined",
    "XmlDocument",
    "decode_amf0",
    "decode_amf0_all",
    "encode_amf0",
    "encode_amf0_all",
]

NUMBER_MARKER: Final = 0x00
BOOLEAN_MARKER: Final = 0x01
STRING_MARKER: Final = 0x02
OBJECT_MARKER: Final = 0x03
MOVIECLIP_MARKER: Final = 0x04
NULL_MARKER: Final = 0x05
UNDEFINED_MARKER: Final = 0x06
REFERENCE_MARKER: Final = 0x07
ECMA_ARRAY_MARKER: Final = 0x08
OBJECT_END_MARKER: Final = 0x09
STRICT_ARRAY_MARKER: Final = 0x0A
DATE_MARKER: Final = 0x0B
LONG_STRING_MARKER: Final = 0x0C
UNSUPPORTED_MARKER: Final = 0x0D
RECORDSET_MARKER: Final = 0x0E
XML_DOCUMENT_MARKER: Final = 0x0F
TYPED_OBJECT_MARKER: Final = 0x10
AVMPLUS_OBJECT_MARKER: Final = 0x11

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")
_NUMBER_PREFIX = bytes((NUMBER_MARKER,))
_OBJECT_END = b"\x00\x00\x09"


class EcmaArray(dict[str, Any]):
    """An AMF0 ECMA array (associative array), kept distinct from an anonymous object for round trips."""

    __slots__ = ()


class _ObjectEnd:
    """The object-end marker met where a value was expected (only legal as an object terminator)."""


_OBJECT_END_VALUE: Final = _ObjectEnd()


class _Amf0Decoder:
    __slots__ = ("_data", "_references", "offset")

    def __init__(self, data: bytes | memoryview, offset: int) -> None:
        self._data = data
        self.offset = offset
        self._references: list[Any] = []

    def _take(self, length: int) -> memoryview | bytes:
        end = self.offset + length
        if end > len(self._data):
            raise RemoteProtocolError("AMF0: truncated value")
        chunk = self._data[self.offset : end]
        self.offset = end
        return chunk

    def _u16(self) -> int:
        value: int = _U16.unpack(self._take(2))[0]
        return value

    def _u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def _utf8(self, length: int) -> str:
        return bytes(self._take(length)).decode("utf-8", errors="replace")

    def _properties(self, target: dict[str, Any], depth: int) -> None:
        # AMF0 §2.5: property names are UTF-8 (u16 length); the list ends with an empty name + object-end.
        while True:
            name = self._utf8(self._u16())
            value = self._value(depth + 1)
            if value is _OBJECT_END_VALUE:
                if name:
                    raise RemoteProtocolError("AMF0: object-end marker after a property name")
                return
            target[name] = value

    def value(self) -> Any:
        result = self._value(0)
        if result is _OBJECT_END_VALUE:
            raise RemoteProtocolError("AMF0: object-end marker outside an object")
        return result

    def _value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise RemoteProtocolError("AMF0: values nested too deeply")
        if self.offset >= len(self._data):
            raise RemoteProtocolError("AMF0: truncated value")
        marker = self._data[self.offset]
        self.offset += 1
        if marker == STRING_MARKER:
            return self._utf8(self._u16())
        if marker == NUMBER_MARKER:
            return _DOUBLE.unpack(self._take(8))[0]
        if marker == OBJECT_MARKER:
            obj: dict[str, Any] = {}
            self._references.append(obj)
            self._properties(obj, depth)
            return obj
        if marker == NULL_MARKER:
            return None
        if marker == BOOLEAN_MARKER:
            return self._take(1)[0] != 0
        if marker == ECMA_ARRAY_MARKER:
            # AMF0 §2.10: the count is advisory only; the properties end with object-end like an object.
            self._u32()
            array = EcmaArray()
            self._references.append(array)
            self._properties(array, depth)
            return array
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == OBJECT_END_MARKER:
            return _OBJECT_END_VALUE
        if marker == STRICT_ARRAY_MARKER:
            count = self._u32()
            if count > len(self._data) - self.offset:
                raise RemoteProtocolError("AMF0: strict array longer than the message")
            items: list[Any] = []
            self._references.append(items)
            for _ in range(count):
                item = self._value(depth + 1)
                if item is _OBJECT_END_VALUE:
                    raise RemoteProtocolError("AMF0: object-end marker inside a strict array")
                items.append(item)
            return items
        if marker == REFERENCE_MARKER:
            index = self._u16()
            if index >= len(self._references):
                raise RemoteProtocolError("AMF0: reference out of range")
            return self._references[index]
        if marker == DATE_MARKER:
            milliseconds, timezone = _DATE.unpack(self._take(10))
            return AmfDate(milliseconds, timezone)
        if marker == LONG_STRING_MARKER:
            return self._utf8(self._u32())
        if marker == XML_DOCUMENT_MARKER:
            return XmlDocument(self._utf8(self._u32()))
        if marker == TYPED_OBJECT_MARKER:
            class_name = self._utf8(self._u16())
            typed = TypedObject(class_name, {})
            self._references.append(typed)
            self._properties(typed.values, depth)
            return typed
        if marker == AVMPLUS_OBJECT_MARKER:
            # AMF0 §3.1: switch to AMF3 for exactly one value, with fresh AMF3 reference tables.
            amf3 = Amf3Decoder(self._data, self.offset)
            result = amf3.decode()
            self.offset = amf3.offset
            return result
        raise RemoteProtocolError(f"AMF0: unsupported marker 0x{marker:02x}")


def decode_amf0(data: bytes | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode one AMF0 value at ``offset``; return it and the offset just after it.

    Raises :class:`~streamit.errors.RemoteProtocolError` on malformed or truncated input.
    """
    decoder = _Amf0Decoder(data, offset)
    value = decoder.value()
    return value, decoder.offset


def decode_amf0_all(data: bytes | memoryview, offset: int = 0) -> list[Any]:
    """Decode consecutive AMF0 values from ``offset`` to the end of ``data`` (one reference table)."""
    decoder = _Amf0Decoder(data, offset)
    values = []
    while decoder.offset < len(data):
        values.append(decoder.value())
    return values


def _encode_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError("AMF0: string is not encodable as UTF-8") from exc


def _encode_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise LocalProtocolError("AMF0: property names must be strings")
    raw = _encode_utf8(name)
    if len(raw) > 0xFFFF:
        raise LocalProtocolError("AMF0: property name longer than 65535 bytes")
    return _U16.pack(len(raw)) + raw


def _encode_properties(values: dict[str, Any], out: list[bytes]) -> None:
    for name, item in values.items():
        out.append(_encode_name(name))
        _encode_value(item, out)
    out.append(_OBJECT_END)


def _encode_value(value: Any, out: list[bytes]) -> None:
    if isinstance(value, XmlDocument):
        raw = _encode_utf8(str(value))
        out.append(b"\x0f" + _U32.pack(len(raw)) + raw)
    elif isinstance(value, str):
        raw = _encode_utf8(value)
        if len(raw) <= 0xFFFF:
            out.append(b"\x02" + _U16.pack(len(raw)) + raw)
        else:
            out.append(b"\x0c" + _U32.pack(len(raw)) + raw)
    elif value is None:
        out.append(b"\x05")
    elif isinstance(value, bool):
        out.append(b"\x01\x01" if value else b"\x01\x00")
    elif isinstance(value, int | float):
        out.append(_NUMBER_PREFIX + _DOUBLE.pack(float(value)))
    elif value is UNDEFINED:
        out.append(b"\x06")
    elif isinstance(value, EcmaArray):
        out.append(b"\x08" + _U32.pack(len(value)))
        _encode_properties(value, out)
    elif isinstance(value, dict):
        out.append(b"\x03")
        _encode_properties(value, out)
    elif isinstance(value, list | tuple):
        out.append(b"\x0a" + _U32.pack(len(value)))
        for item in value:
            _encode_value(item, out)
    elif isinstance(value, AmfDate):
        out.append(b"\x0b" + _DATE.pack(value.milliseconds, value.timezone))
    elif isinstance(value, TypedObject):
        out.append(b"\x10" + _encode_name(value.class_name))
        _encode_properties(value.values, out)
    elif isinstance(value, bytes | bytearray):
        # AMF0 has no byte-array type; AMF3 does, reached through the avmplus switch (AMF0 §3.1).
        out.append(b"\x11" + encode_amf3(bytes(value)))
    else:
        raise LocalProtocolError(f"AMF0: cannot encode {type(value).__name__}")


def encode_amf0(value: Any) -> bytes:
    """Encode one value as AMF0 (no references are emitted)."""
    out: list[bytes] = []
    _encode_value(value, out)
    return b"".join(out)


def encode_amf0_all(*values: Any) -> bytes:
    """Encode several values back to back, as in a command or data message body."""
    out: list[bytes] = []
    for value in values:
        _encode_value(value, out)
    return b"".join(out)
