"""H.264 access units from AVCC (4-byte length prefixes) to Annex-B byte streams for MPEG-TS.

ISO/IEC 13818-1 §2.14 carries H.264 in TS as an Annex-B byte stream, each access unit starting with an
access unit delimiter (ITU-T H.264 §7.4.1.2.3), and a decoder joining mid-stream needs the parameter sets
in-band before every IDR picture.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from streamit.errors import RemoteProtocolError
from streamit.media.h264 import ACCESS_UNIT_DELIMITER as AUD_NAL
from streamit.media.h264 import START_CODE, NalUnitType

ACCESS_UNIT_DELIMITER = START_CODE + AUD_NAL
"""AUD with primary_pic_type 7 (any slice type) behind a start code (ITU-T H.264 §7.3.2.4)."""

NAL_IDR_SLICE = int(NalUnitType.IDR_SLICE)
NAL_SPS = int(NalUnitType.SPS)
NAL_AUD = int(NalUnitType.AUD)

_unpack_length = struct.Struct(">I").unpack_from


def parameter_sets_annexb(sps: Iterable[bytes], pps: Iterable[bytes]) -> bytes:
    """SPS then PPS NAL units, each behind a start code, ready to insert before an IDR picture."""
    return b"".join(START_CODE + nal for nal in (*sps, *pps))


def access_unit_annexb(data: bytes, keyframe: bool, parameter_sets: bytes) -> list[bytes | memoryview]:
    """The pieces of one Annex-B access unit built from the AVCC access unit ``data``.

    The result starts with an AUD; AUDs already in ``data`` are dropped.  Before an IDR picture (or any
    access unit flagged ``keyframe``) ``parameter_sets`` is inserted, unless the access unit carries its
    own SPS, which then wins so that in-band parameter changes are not undone.  Returns an empty list when
    ``data`` holds no NAL unit.  Raises :class:`RemoteProtocolError` when a length prefix overruns ``data``.
    """
    split = access_unit_split(data, keyframe, parameter_sets)
    if split is None:
        return []
    pieces, start, end = split
    pieces.append(memoryview(data)[start:end])
    return pieces


def access_unit_split(
    data: bytes, keyframe: bool, parameter_sets: bytes
) -> tuple[list[bytes | memoryview], int, int] | None:
    """:func:`access_unit_annexb` without its last NAL unit, which is given as its bounds in ``data``.

    The last NAL unit (the picture's last slice: most of the access unit) can then be packetised straight
    from ``data`` without being copied into a joined access unit first.  The pieces end with that NAL
    unit's start code.  ``None`` when ``data`` holds no NAL unit.
    """
    end = len(data)
    pieces: list[bytes | memoryview] = [ACCESS_UNIT_DELIMITER]
    has_idr = False
    has_sps = False
    offset = 0
    last_start = -1
    last_end = 0
    view: memoryview | None = None
    while offset < end:
        if offset + 4 > end:
            raise RemoteProtocolError(f"truncated AVCC length prefix at offset {offset} of {end}")
        (size,) = _unpack_length(data, offset)
        offset += 4
        nal_end = offset + size
        if nal_end > end:
            raise RemoteProtocolError(f"AVCC NAL unit of {size} bytes overruns the access unit")
        if size:
            nal_type = data[offset] & 0x1F
            if nal_type == NAL_IDR_SLICE:
                has_idr = True
            elif nal_type == NAL_SPS:
                has_sps = True
            if nal_type != NAL_AUD:
                if last_start >= 0:
                    if view is None:
                        view = memoryview(data)
                    pieces.append(view[last_start:last_end])
                pieces.append(START_CODE)
                last_start = offset
                last_end = nal_end
        offset = nal_end
    if last_start < 0:
        return None
    if (has_idr or keyframe) and not has_sps and parameter_sets:
        pieces.insert(1, parameter_sets)
    return pieces, last_start, last_end
