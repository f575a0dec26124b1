"""AMF3 values: decoding (with the string, object and traits reference tables) and a reference-free encoder.

RTMP carries AMF3 inside AMF0 (the ``avmplus-object`` switch marker, AMF0 §3.1) in command messages of type
17 and data messages of type 15.  Python mapping:

=================  =====================================================
AMF3               Python
=================  =====================================================
undefined          :data:`UNDEFINED`
null               ``None``
false / true       ``bool``
integer (U29)      ``int`` (signed 29-bit)
double             ``float``
string             ``str``
XMLDocument, XML   :class:`XmlDocument`
date               :class:`AmfDate`
array              ``list`` (dense only) or :class:`Amf3Array` (with associative part)
object             ``dict`` (anonymous) or :class:`TypedObject` (with a class name)
ByteArray          ``bytes``
=================  =====================================================

The value classes here are shared with :mod:`streamit.rtmp.amf0`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Final

from streamit.errors import LocalProtocolError, RemoteProtocolError

MAX_DEPTH: Final = 64
"""Deepest nesting of containers we decode; deeper input is refused instead of exhausting the stack."""

_DOUBLE = struct.Struct(">d")

UNDEFINED_MARKER: Final = 0x00
NULL_MARKER: Final = 0x01
FALSE_MARKER: Final = 0x02
TRUE_MARKER: Final = 0x03
INTEGER_MARKER: Final = 0x04
DOUBLE_MARKER: Final = 0x05
STRING_MARKER: Final = 0x06
XML_DOC_MARKER: Final = 0x07
DATE_MARKER: Final = 0x08
ARRAY_MARKER: Final = 0x09
OBJECT_MARKER: Final = 0x0A
XML_MARKER: Final = 0x0B
BYTE_ARRAY_MARKER: Final = 0x0C

_INT29_MIN: Final = -(1 << 28)
_INT29_MAX: Final = (1 << 28) - 1


class Undefined:
    """The AMF ``undefined`` value (distinct from ``null``/``None``).  Use the :data:`UNDEFINED` singleton."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined()


class XmlDocument(str):
    """An XML document value (AMF0 ``xml-document``, AMF3 ``XMLDocument``/``XML``): a ``str`` subclass."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AmfDate:
    """A date: milliseconds since the Unix epoch (UTC).  ``timezone`` is AMF0's reserved field (minutes)."""

    milliseconds: float
    timezone: int = 0


@dataclass(frozen=True, slots=True)
class TypedObject:
    """An object with a class name (AMF0 ``typed-object``, AMF3 object with non-empty class name)."""

    class_name: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Amf3Array:
    """An AMF3 array with an associative part; arrays with only a dense part decode to ``list``."""

    assoc: dict[str, Any]
    dense: list[Any]


@dataclass(frozen=True, slots=True)
class _Traits:
    class_name: str
    dynamic: bool
    members: tuple[str, ...]


class Amf3Decoder:
    """Decodes AMF3 values from ``data``, keeping the reference tables of one AMF3 context (AMF3 §2.2)."""

    __slots__ = ("_data", "_objects", "_strings", "_traits", "offset")

    def __init__(self, data: bytes | memoryview, offset: int = 0) -> None:
        self._data = data
        self.offset = offset
        self._strings: list[str] = []
        self._objects: list[Any] = []
        self._traits: list[_Traits] = []

    def decode(self) -> Any:
        """Decode the value at :attr:`offset` and advance past it."""
        return self._value(0)

    def _byte(self) -> int:
        if self.offset >= len(self._data):
            raise RemoteProtocolError("AMF3: truncated value")
        value = self._data[self.offset]
        self.offset += 1
        return value

    def _take(self, length: int) -> bytes:
        end = self.offset + length
        if end > len(self._data):
            raise RemoteProtocolError("AMF3: truncated value")
        chunk = bytes(self._data[self.offset : end])
        self.offset = end
        return chunk

    def _u29(self) -> int:
        # AMF3 §1.3.1: up to three 7-bit groups with a continuation bit, then one full 8-bit group.
        result = 0
        for _ in range(3):
            byte = self._byte()
            if byte < 0x80:
                return (result << 7) | byte
            result = (result << 7) | (byte & 0x7F)
        return (result << 8) | self._byte()

    def _string(self) -> str:
        header = self._u29()
        if not header & 1:
            index = header >> 1
            if index >= len(self._strings):
                raise RemoteProtocolError("AMF3: string reference out of range")
            return self._strings[index]
        text = self._take(header >> 1).decode("utf-8", errors="replace")
        # AMF3 §1.3.2: the empty string is never sent by reference.
        if text:
            self._strings.append(text)
        return text

    def _object_reference(self, header: int) -> Any:
        index = header >> 1
        if index >= len(self._objects):
            raise RemoteProtocolError("AMF3: object reference out of range")
        return self._objects[index]

    def _value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise RemoteProtocolError("AMF3: values nested too deeply")
        marker = self._byte()
        if marker == STRING_MARKER:
            return self._string()
        if marker == INTEGER_MARKER:
            value = self._u29()
            return value - (1 << 29) if value & (1 << 28) else value
        if marker == DOUBLE_MARKER:
            return _DOUBLE.unpack(self._take(8))[0]
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == NULL_MARKER:
            return None
        if marker == FALSE_MARKER:
            return False
        if marker == TRUE_MARKER:
            return True
        if marker == OBJECT_MARKER:
            return self._object(depth)
        if marker == ARRAY_MARKER:
            return self._array(depth)
        if marker in (XML_DOC_MARKER, XML_MARKER, BYTE_ARRAY_MARKER, DATE_MARKER):
            return self._by_length(marker)
        raise RemoteProtocolError(f"AMF3: unsupported marker 0x{marker:02x}")

    def _by_length(self, marker: int) -> Any:
        header = self._u29()
        if not header & 1:
            return self._object_reference(header)
        value: Any
        if marker == DATE_MARKER:
            value = AmfDate(_DOUBLE.unpack(self._take(8))[0])
        elif marker == BYTE_ARRAY_MARKER:
            value = self._take(header >> 1)
        else:
            value = XmlDocument(self._take(header >> 1).decode("utf-8", errors="replace"))
        self._objects.append(value)
        return value

    def _array(self, depth: int) -> Any:
        header = self._u29()
        if not header & 1:
            return self._object_reference(header)
        count = header >> 1
        if count > len(self._data) - self.offset:
            raise RemoteProtocolError("AMF3: array longer than the message")
        dense: list[Any] = []
        slot = len(self._objects)
        self._objects.append(dense)
        assoc: dict[str, Any] = {}
        while key := self._string():
            assoc[key] = self._value(depth + 1)
        for _ in range(count):
            dense.append(self._value(depth + 1))
        if assoc:
            mixed = Amf3Array(assoc, dense)
            self._objects[slot] = mixed
            return mixed
        return dense

    def _object(self, depth: int) -> Any:
        header = self._u29()
        if not header & 1:
            return self._object_reference(header)
        if not header & 2:
            index = header >> 2
            if index >= len(self._traits):
                raise RemoteProtocolError("AMF3: traits reference out of range")
            traits = self._traits[index]
        else:
            if header & 4:
                raise RemoteProtocolError("AMF3: externalizable objects are not supported")
            class_name = self._string()
            count = header >> 4
            if count > len(self._data) - self.offset:
                raise RemoteProtocolError("AMF3: more sealed members than bytes")
            members = tuple(self._string() for _ in range(count))
            traits = _Traits(class_name, bool(header & 8), members)
            self._traits.append(traits)
        values: dict[str, Any] = {}
        result: Any = TypedObject(traits.class_name, values) if traits.class_name else values
        self._objects.append(result)
        for name in traits.members:
            values[name] = self._value(depth + 1)
        if traits.dynamic:
            while key := self._string():
                values[key] = self._value(depth + 1)
        return result


def decode_amf3(data: bytes | memoryview, offset: int = 0) -> tuple[Any, int]:
    """Decode one AMF3 value (fresh reference tables) at ``offset``; return it and the offset after it."""
    decoder = Amf3Decoder(data, offset)
    value = decoder.decode()
    return value, decoder.offset


def _encode_u29(value: int) -> bytes:
    if value < 0 or value >= 1 << 29:
        raise LocalProtocolError(f"AMF3: {value} does not fit in U29")
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes((0x80 | (value >> 7), value & 0x7F))
    if value < 0x200000:
        return bytes((0x80 | (value >> 14), 0x80 | ((value >> 7) & 0x7F), value & 0x7F))
    return bytes(
        (0x80 | (value >> 22), 0x80 | ((value >> 15) & 0x7F), 0x80 | ((value >> 8) & 0x7F), value & 0xFF)
    )


def _encode_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError("AMF3: string is not encodable as UTF-8") from exc


def _encode_string_body(text: str) -> bytes:
    raw = _encode_utf8(text)
    return _encode_u29((len(raw) << 1) | 1) + raw


def _encode_value(value: Any, out: list[bytes]) -> None:
    if value is None:
        out.append(b"\x01")
    elif value is UNDEFINED:
        out.append(b"\x00")
    elif value is True:
        out.append(b"\x03")
    elif value is False:
        out.append(b"\x02")
    elif isinstance(value, int) and _INT29_MIN <= value <= _INT29_MAX:
        out.append(b"\x04" + _encode_u29(value & 0x1FFFFFFF))
    elif isinstance(value, int | float):
        out.append(b"\x05" + _DOUBLE.pack(float(value)))
    elif isinstance(value, XmlDocument):
        out.append(b"\x0b" + _encode_string_body(str(value)))
    elif isinstance(value, str):
        out.append(b"\x06" + _encode_string_body(value))
    elif isinstance(value, AmfDate):
        out.append(b"\x08\x01" + _DOUBLE.pack(value.milliseconds))
    elif isinstance(value, bytes | bytearray):
        out.append(b"\x0c" + _encode_u29((len(value) << 1) | 1) + bytes(value))
    elif isinstance(value, list | tuple):
        _encode_array({}, value, out)
    elif isinstance(value, Amf3Array):
        _encode_array(value.assoc, value.dense, out)
    elif isinstance(value, TypedObject):
        _encode_object(value.class_name, value.values, out)
    elif isinstance(value, dict):
        _encode_object("", value, out)
    else:
        raise LocalProtocolError(f"AMF3: cannot encode {type(value).__name__}")


def _encode_array(assoc: dict[str, Any], dense: list[Any] | tuple[Any, ...], out: list[bytes]) -> None:
    out.append(b"\x09" + _encode_u29((len(dense) << 1) | 1))
    for key, item in assoc.items():
        if not key:
            raise LocalProtocolError("AMF3: associative array keys must not be empty")
        out.append(_encode_string_body(key))
        _encode_value(item, out)
    out.append(b"\x01")
    for item in dense:
        _encode_value(item, out)


def _encode_object(class_name: str, values: dict[str, Any], out: list[bytes]) -> None:
    # A dynamic object without sealed members (traits header 0b1011): every member is sent as key/value.
    out.append(b"\x0a\x0b" + _encode_string_body(class_name))
    for key, item in values.items():
        if not isinstance(key, str) or not key:
            raise LocalProtocolError("AMF3: object keys must be non-empty strings")
        out.append(_encode_string_body(key))
        _encode_value(item, out)
    out.append(b"\x01")


def encode_amf3(value: Any) -> bytes:
    """Encode ``value`` as AMF3 (no references are emitted; objects are written as dynamic)."""
    out: list[bytes] = []
    _encode_value(value, out)
    return b"".join(out)
