"""Reading the ISO-BMFF boxes this package writes: box framing, init segments and media fragments.

Two layers:

* :class:`BoxReader` is incremental: bytes in (any split), complete top-level boxes out — what an edge
  needs to pass a part on box by box.
* :func:`parse_boxes`, :func:`parse_init` and :func:`parse_fragment` are whole-buffer parsers.

Everything is bounded (box sizes against the buffer and a cap, nesting depth, entry counts against the
bytes that must hold them) and malformed input raises :class:`~streamit.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streamit.errors import MessageTooLarge, RemoteProtocolError
from streamit.fmp4.fragment import (
    TFHD_DEFAULT_BASE_IS_MOOF,
    TRUN_DATA_OFFSET,
    TRUN_FIRST_SAMPLE_FLAGS,
    TRUN_SAMPLE_COMPOSITION_TIME_OFFSET,
    TRUN_SAMPLE_DURATION,
    TRUN_SAMPLE_FLAGS,
    TRUN_SAMPLE_SIZE,
    Sample,
)

DEFAULT_MAX_BOX_SIZE = 64 << 20
"""Largest top-level box :class:`BoxReader` accepts (64 MiB): far above a 2 s segment at 20 Mbit/s."""

MAX_DEPTH = 8
"""Deepest nesting followed (``moov/trak/mdia/minf/stbl/stsd/avc1/avcC`` is 8)."""

_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf"})

_TFHD_BASE_DATA_OFFSET = 0x000001
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
_TFHD_DEFAULT_DURATION = 0x000008
_TFHD_DEFAULT_SIZE = 0x000010
_TFHD_DEFAULT_FLAGS = 0x000020
_SAMPLE_IS_NON_SYNC = 0x0001_0000

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Box:
    """One box: its four-character type and payload (header excluded); ``children`` for containers."""

    kind: bytes
    payload: bytes
    children: tuple[Box, ...] = field(default=())

    def find(self, kind: bytes) -> Box:
        """The first child of type ``kind``; :class:`RemoteProtocolError` if there is none."""
        for child in self.children:
            if child.kind == kind:
                return child
        raise RemoteProtocolError(f"{self.kind!r} box has no {kind!r} box")

    def find_all(self, kind: bytes) -> list[Box]:
        """Every child of type ``kind``."""
        return [child for child in self.children if child.kind == kind]


def _header(data: bytes | bytearray, offset: int, end: int) -> tuple[bytes, int, int] | None:
    """(type, header size, box size) of the box at ``offset``, or ``None`` if the header is incomplete."""
    if end - offset < 8:
        return None
    size, kind = struct.unpack_from(">I4s", data, offset)
    header = 8
    if size == 1:
        if end - offset < 16:
            return None
        (size,) = _U64.unpack_from(data, offset + 8)
        header = 16
    elif size == 0:
        raise RemoteProtocolError(f"{kind!r} box extends to the end of the file; not allowed in a stream")
    if size < header:
        raise RemoteProtocolError(f"{kind!r} box states size {size}, less than its header")
    return bytes(kind), header, size


def _parse(data: bytes, depth: int) -> tuple[Box, ...]:
    return tuple(found for found, _ in _parse_spans(data, depth))


def _parse_spans(data: bytes, depth: int) -> list[tuple[Box, int]]:
    """The boxes filling ``data``, each with its start offset."""
    boxes: list[tuple[Box, int]] = []
    offset = 0
    end = len(data)
    while offset < end:
        parsed = _header(data, offset, end)
        if parsed is None:
            raise RemoteProtocolError(f"{end - offset} trailing bytes cannot hold a box header")
        kind, header, size = parsed
        if size > end - offset:
            raise RemoteProtocolError(f"{kind!r} box of {size} bytes runs past its container")
        payload = data[offset + header : offset + size]
        children: tuple[Box, ...] = ()
        if kind in _CONTAINERS:
            if depth >= MAX_DEPTH:
                raise RemoteProtocolError("boxes are nested too deeply")
            children = _parse(payload, depth + 1)
        boxes.append((Box(kind, payload, children), offset))
        offset += size
    return boxes


def parse_boxes(data: bytes) -> tuple[Box, ...]:
    """Every top-level box of ``data``, containers parsed recursively; the boxes must fill ``data``."""
    return _parse(bytes(data), 0)


class BoxReader:
    """Incremental top-level box splitter: :meth:`feed` bytes, iterate complete :class:`Box` objects.

    Container boxes come back parsed (``children``).  A box larger than ``max_box_size`` raises
    :class:`~streamit.errors.MessageTooLarge` as soon as its header is seen, so memory stays bounded.
    """

    def __init__(self, max_box_size: int = DEFAULT_MAX_BOX_SIZE) -> None:
        self._buffer = bytearray()
        self._max = max_box_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned box."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def __iter__(self) -> Iterator[Box]:
        while (found := self.next_box()) is not None:
            yield found

    def next_box(self) -> Box | None:
        """The next complete top-level box, or ``None`` until more bytes arrive."""
        buffer = self._buffer
        parsed = _header(buffer, 0, len(buffer))
        if parsed is None:
            return None
        kind, header, size = parsed
        if size > self._max:
            raise MessageTooLarge(f"{kind!r} box of {size} bytes exceeds the {self._max}-byte cap")
        if len(buffer) < size:
            return None
        payload = bytes(buffer[header:size])
        del buffer[:size]
        children = _parse(payload, 1) if kind in _CONTAINERS else ()
        return Box(kind, payload, children)


# --- field readers ------------------------------------------------------------------------------------


def _full(found: Box, minimum: int) -> tuple[int, int, bytes]:
    """(version, flags, body) of a full box whose body must hold at least ``minimum`` bytes."""
    payload = found.payload
    if len(payload) < 4 + minimum:
        raise RemoteProtocolError(f"{found.kind!r} box is truncated ({len(payload)} bytes)")
    (word,) = _U32.unpack_from(payload, 0)
    return word >> 24, word & 0xFF_FFFF, payload[4:]


@dataclass(frozen=True, slots=True)
class InitTrack:
    """One track of an initialization segment."""

    track_id: int
    handler: bytes  # b"vide" / b"soun"
    timescale: int
    sample_entry: bytes  # b"avc1" / b"mp4a" / …
    codec_config: bytes  # avcC record, or the AudioSpecificConfig from esds
    width: int
    height: int
    default_sample_flags: int


@dataclass(frozen=True, slots=True)
class InitInfo:
    """What an initialization segment declares."""

    major_brand: bytes
    compatible_brands: tuple[bytes, ...]
    tracks: Mapping[int, InitTrack]


def _descriptor(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, body offset, body end) of the MPEG-4 descriptor at ``offset`` (ISO/IEC 14496-1 §8.3.3)."""
    if offset >= len(data):
        raise RemoteProtocolError("esds ends before a descriptor")
    tag = data[offset]
    offset += 1
    size = 0
    for _ in range(4):
        if offset >= len(data):
            raise RemoteProtocolError("esds ends inside a descriptor size")
        byte = data[offset]
        offset += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    else:
        raise RemoteProtocolError("an esds descriptor size has more than four bytes")
    if offset + size > len(data):
        raise RemoteProtocolError("an esds descriptor runs past its box")
    return tag, offset, offset + size


def _audio_specific_config(esds: Box) -> bytes:
    _, _, body = _full(esds, 2)
    tag, start, end = _descriptor(body, 0)
    if tag != 0x03 or end - start < 3:
        raise RemoteProtocolError("esds does not start with an ES_Descriptor")
    es_flags = body[start + 2]
    position = start + 3
    # ES_Descriptor optional fields (ISO/IEC 14496-1 §7.2.6.5): dependsOn_ES_ID, URL, OCR_ES_Id.
    if es_flags & 0x80:
        position += 2
    if es_flags & 0x40:
        if position >= end:
            raise RemoteProtocolError("ES_Descriptor URL is truncated")
        position += 1 + body[position]
    if es_flags & 0x20:
        position += 2
    tag, start, end = _descriptor(body, position)
    if tag != 0x04 or end - start < 13:
        raise RemoteProtocolError("ES_Descriptor has no DecoderConfigDescriptor")
    tag, start, end = _descriptor(body, start + 13)
    if tag != 0x05:
        raise RemoteProtocolError("DecoderConfigDescriptor has no DecoderSpecificInfo")
    return body[start:end]


def _sample_entry(trak: Box) -> tuple[bytes, bytes, int, int]:
    stsd = trak.find(b"mdia").find(b"minf").find(b"stbl").find(b"stsd")
    _, _, body = _full(stsd, 4)
    (count,) = _U32.unpack_from(body, 0)
    if count < 1:
        raise RemoteProtocolError("stsd lists no sample entry")
    entries = _parse(body[4:], 1)
    if not entries:
        raise RemoteProtocolError("stsd holds no sample entry box")
    entry = entries[0]
    payload = entry.payload
    if entry.kind == b"avc1":
        if len(payload) < 78:
            raise RemoteProtocolError("avc1 sample entry is truncated")
        width, height = struct.unpack_from(">HH", payload, 24)
        config = next((child for child in _parse(payload[78:], 2) if child.kind == b"avcC"), None)
        if config is None:
            raise RemoteProtocolError("avc1 sample entry has no avcC box")
        return entry.kind, config.payload, width, height
    if entry.kind == b"mp4a":
        if len(payload) < 28:
            raise RemoteProtocolError("mp4a sample entry is truncated")
        esds = next((child for child in _parse(payload[28:], 2) if child.kind == b"esds"), None)
        if esds is None:
            raise RemoteProtocolError("mp4a sample entry has no esds box")
        return entry.kind, _audio_specific_config(esds), 0, 0
    return entry.kind, b"", 0, 0


def parse_init(data: bytes) -> InitInfo:
    """Parse an initialization segment (``ftyp`` + ``moov``)."""
    boxes = parse_boxes(data)
    if len(boxes) < 2 or boxes[0].kind != b"ftyp" or boxes[1].kind != b"moov":
        raise RemoteProtocolError("an initialization segment starts with ftyp and moov")
    ftyp = boxes[0].payload
    if len(ftyp) < 8 or len(ftyp) % 4:
        raise RemoteProtocolError("ftyp box has an invalid size")
    brands = tuple(ftyp[i : i + 4] for i in range(8, len(ftyp), 4))
    moov = boxes[1]
    defaults: dict[int, int] = {}
    for mvex in moov.find_all(b"mvex"):
        for trex in mvex.find_all(b"trex"):
            _, _, body = _full(trex, 20)
            track_id, _, _, _, flags = struct.unpack_from(">IIIII", body, 0)
            defaults[track_id] = flags
    tracks: dict[int, InitTrack] = {}
    for trak in moov.find_all(b"trak"):
        version, _, body = _full(trak.find(b"tkhd"), 20)
        (track_id,) = _U32.unpack_from(body, 16 if version == 1 else 8)
        mdia = trak.find(b"mdia")
        version, _, body = _full(mdia.find(b"mdhd"), 20)
        (timescale,) = _U32.unpack_from(body, 16 if version == 1 else 8)
        _, _, body = _full(mdia.find(b"hdlr"), 8)
        handler = body[4:8]
        entry, config, width, height = _sample_entry(trak)
        tracks[track_id] = InitTrack(
            track_id, handler, timescale, entry, config, width, height, defaults.get(track_id, 0)
        )
    if not tracks:
        raise RemoteProtocolError("moov declares no track")
    return InitInfo(ftyp[:4], brands, tracks)


# --- media fragments ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedRun:
    """One track's samples in a fragment, with absolute decode times."""

    track_id: int
    base_media_decode_time: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof`` and its samples."""

    sequence_number: int
    runs: tuple[ParsedRun, ...]


def _trun_samples(
    trun: Box,
    moof_start: int,
    data: bytes,
    base_time: int,
    default_duration: int,
    default_size: int,
    default_flags: int,
) -> list[Sample]:
    version, flags, body = _full(trun, 4)
    (count,) = _U32.unpack_from(body, 0)
    position = 4
    data_offset = 0
    if flags & TRUN_DATA_OFFSET:
        if len(body) < position + 4:
            raise RemoteProtocolError("trun is truncated before its data offset")
        (data_offset,) = struct.unpack_from(">i", body, position)
        position += 4
    first_flags: int | None = None
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        if len(body) < position + 4:
            raise RemoteProtocolError("trun is truncated before its first sample flags")
        (first_flags,) = _U32.unpack_from(body, position)
        position += 4
    fields = [
        bit
        for bit in (
            TRUN_SAMPLE_DURATION,
            TRUN_SAMPLE_SIZE,
            TRUN_SAMPLE_FLAGS,
            TRUN_SAMPLE_COMPOSITION_TIME_OFFSET,
        )
        if flags & bit
    ]
    entry_size = 4 * len(fields)
    if count * entry_size > len(body) - position:
        raise RemoteProtocolError(f"trun states {count} samples but holds fewer entries")
    if entry_size == 0 and count > len(data):
        raise RemoteProtocolError(f"trun states {count} samples, more than the fragment can hold")
    offset_format = ">i" if version >= 1 else ">I"
    cursor = moof_start + data_offset
    decode_time = base_time
    samples: list[Sample] = []
    for index in range(count):
        duration, size, sample_flags, composition = default_duration, default_size, default_flags, 0
        if index == 0 and first_flags is not None:
            sample_flags = first_flags
        for bit in fields:
            if bit == TRUN_SAMPLE_COMPOSITION_TIME_OFFSET:
                (composition,) = struct.unpack_from(offset_format, body, position)
            else:
                (value,) = _U32.unpack_from(body, position)
                if bit == TRUN_SAMPLE_DURATION:
                    duration = value
                elif bit == TRUN_SAMPLE_SIZE:
                    size = value
                else:
                    sample_flags = value
            position += 4
        if cursor < 0 or cursor + size > len(data):
            raise RemoteProtocolError("a trun sample lies outside the fragment's bytes")
        sync = not sample_flags & _SAMPLE_IS_NON_SYNC
        samples.append(Sample(decode_time, duration, composition, sync, data[cursor : cursor + size]))
        cursor += size
        decode_time += duration
    return samples


def parse_fragment(data: bytes, sample_flags: Mapping[int, int] | None = None) -> Fragment:
    """Parse one ``moof`` (optionally preceded by ``styp``/``sidx``/``prft``) and the ``mdat`` after it.

    ``sample_flags`` maps track IDs to their ``trex`` default sample flags (from :func:`parse_init`);
    without it, samples whose flags are not stated are sync samples.  Sample bytes are located by the
    ``trun`` data offsets and must lie inside ``data``.
    """
    data = bytes(data)
    spans = _parse_spans(data, 0)
    moof: Box | None = None
    moof_start = 0
    for found, start in spans:
        if found.kind == b"moof":
            if moof is not None:
                raise RemoteProtocolError("parse_fragment takes one moof; split segments with fragments()")
            moof, moof_start = found, start
    if moof is None:
        raise RemoteProtocolError("no moof box in the fragment")
    if not any(found.kind == b"mdat" for found, _ in spans):
        raise RemoteProtocolError("no mdat box in the fragment")
    _, _, body = _full(moof.find(b"mfhd"), 4)
    (sequence_number,) = _U32.unpack_from(body, 0)
    defaults = sample_flags or {}
    runs: list[ParsedRun] = []
    for traf in moof.find_all(b"traf"):
        _, tfhd_flags, body = _full(traf.find(b"tfhd"), 4)
        (track_id,) = _U32.unpack_from(body, 0)
        position = 4
        duration = size = 0
        flags = defaults.get(track_id, 0)
        if tfhd_flags & _TFHD_BASE_DATA_OFFSET:
            raise RemoteProtocolError("tfhd base-data-offset is not supported (CMAF: default-base-is-moof)")
        if not tfhd_flags & TFHD_DEFAULT_BASE_IS_MOOF:
            raise RemoteProtocolError("tfhd lacks default-base-is-moof (required by CMAF)")
        optional = (
            (_TFHD_SAMPLE_DESCRIPTION_INDEX, "index"),
            (_TFHD_DEFAULT_DURATION, "duration"),
            (_TFHD_DEFAULT_SIZE, "size"),
            (_TFHD_DEFAULT_FLAGS, "flags"),
        )
        for bit, name in optional:
            if tfhd_flags & bit:
                if len(body) < position + 4:
                    raise RemoteProtocolError("tfhd is truncated")
                (value,) = _U32.unpack_from(body, position)
                position += 4
                if name == "duration":
                    duration = value
                elif name == "size":
                    size = value
                elif name == "flags":
                    flags = value
        version, _, body = _full(traf.find(b"tfdt"), 4)
        if version == 1:
            if len(body) < 8:
                raise RemoteProtocolError("tfdt version 1 is truncated")
            (base_time,) = _U64.unpack_from(body, 0)
        else:
            (base_time,) = _U32.unpack_from(body, 0)
        samples: list[Sample] = []
        for trun in traf.find_all(b"trun"):
            start = base_time + sum(sample.duration for sample in samples)
            samples.extend(_trun_samples(trun, moof_start, data, start, duration, size, flags))
        runs.append(ParsedRun(track_id, base_time, tuple(samples)))
    return Fragment(sequence_number, tuple(runs))


def fragments(data: bytes) -> Sequence[bytes]:
    """Split a segment (parts concatenated) into its ``moof``+``mdat`` pieces, each ready to parse."""
    data = bytes(data)
    starts = [start for found, start in _parse_spans(data, 0) if found.kind == b"moof"]
    return [data[start:end] for start, end in zip(starts, [*starts[1:], len(data)], strict=True)]
