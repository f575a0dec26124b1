"""H.264 bitstream structures: AVCDecoderConfigurationRecord, sequence parameter sets, NAL framing.

FLV/RTMP and MP4 carry H.264 in *AVCC* form (each NAL unit prefixed by its big-endian length);
MPEG-TS and raw ``.h264`` files use *Annex B* form (each NAL unit preceded by a start code).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.media.bitstream import BitReader, remove_emulation_prevention


class NalUnitType(enum.IntEnum):
    """The ``nal_unit_type`` values Streamit acts on (ITU-T H.264 Table 7-1)."""

    NON_IDR_SLICE = 1
    IDR_SLICE = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    END_OF_SEQUENCE = 10
    END_OF_STREAM = 11
    FILLER = 12


START_CODE = b"\x00\x00\x00\x01"
"""The 4-byte Annex B start code (ITU-T H.264 §B.1.1 ``zero_byte`` + ``start_code_prefix_one_3bytes``)."""

ACCESS_UNIT_DELIMITER = b"\x09\xf0"
"""An AUD NAL unit with ``primary_pic_type`` 7 (any slice type), as MPEG-TS wants first in each AU."""

# ITU-T H.264 §7.3.2.1.1: these profiles carry chroma format, bit depths and scaling matrices in the SPS.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class AvcDecoderConfig:
    """A parsed AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1)."""

    profile_indication: int
    profile_compatibility: int
    level_indication: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class SequenceParameterSet:
    """The fields of an SPS (ITU-T H.264 §7.3.2.1.1) that packagers and the API need.

    ``width``/``height`` are the displayed size, after frame cropping. ``fps`` is
    ``time_scale / (2 * num_units_in_tick)`` from the VUI timing info (§E.2.1), or ``None``.
    """

    profile_idc: int
    constraint_flags: int
    level_idc: int
    sps_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    width: int
    height: int
    fps: Fraction | None


def parse_avc_decoder_config(record: bytes) -> AvcDecoderConfig:
    """Parse an AVCDecoderConfigurationRecord; bytes after the PPS list (high-profile extensions) are
    ignored. Raises :class:`RemoteProtocolError` when the record is malformed."""
    if len(record) < 7:
        raise RemoteProtocolError(f"AVCDecoderConfigurationRecord is truncated ({len(record)} bytes)")
    version, profile, compatibility, level, length_byte, sps_count_byte = record[:6]
    if version != 1:
        raise RemoteProtocolError(f"AVCDecoderConfigurationRecord version {version} is not 1")
    offset = 6
    sps, offset = _parameter_sets(record, offset, sps_count_byte & 0x1F, "SPS")
    if offset >= len(record):
        raise RemoteProtocolError(
            "AVCDecoderConfigurationRecord is truncated before numOfPictureParameterSets"
        )
    pps, offset = _parameter_sets(record, offset + 1, record[offset], "PPS")
    return AvcDecoderConfig(
        profile_indication=profile,
        profile_compatibility=compatibility,
        level_indication=level,
        nal_length_size=(length_byte & 0x03) + 1,
        sps=sps,
        pps=pps,
    )


def _parameter_sets(record: bytes, offset: int, count: int, what: str) -> tuple[tuple[bytes, ...], int]:
    sets: list[bytes] = []
    for _ in range(count):
        if offset + 2 > len(record):
            raise RemoteProtocolError(f"AVCDecoderConfigurationRecord is truncated in the {what} list")
        (length,) = _U16.unpack_from(record, offset)
        offset += 2
        end = offset + length
        if length == 0 or end > len(record):
            raise RemoteProtocolError(f"AVCDecoderConfigurationRecord has a bad {what} length {length}")
        sets.append(bytes(record[offset:end]))
        offset = end
    return tuple(sets), offset


def build_avc_decoder_config(sps: bytes, pps: Iterable[bytes], nal_length_size: int = 4) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) for one SPS and the given PPSs."""
    pps_list = list(pps)
    if len(sps) < 4 or not pps_list or len(pps_list) > 255 or nal_length_size not in (1, 2, 4):
        raise LocalProtocolError(
            "need an SPS of at least 4 bytes, 1-255 PPSs and a NAL length size of 1, 2 or 4"
        )
    parts = [
        bytes((1, sps[1], sps[2], sps[3], 0xFC | (nal_length_size - 1), 0xE1)),
        _U16.pack(len(sps)),
        sps,
        bytes((len(pps_list),)),
    ]
    for pps_nal in pps_list:
        parts += (_U16.pack(len(pps_nal)), pps_nal)
    return b"".join(parts)


def parse_sps(nal: bytes) -> SequenceParameterSet:
    """Parse a sequence parameter set NAL unit (header byte included, emulation prevention present).

    Raises :class:`RemoteProtocolError` when the bytes are not a valid SPS.
    """
    if not nal or nal[0] & 0x1F != NalUnitType.SPS or nal[0] & 0x80:
        raise RemoteProtocolError("not an SPS NAL unit")
    bits = BitReader(remove_emulation_prevention(bytes(nal[1:])), "SPS")
    profile_idc = bits.read(8)
    constraint_flags = bits.read(8)
    level_idc = bits.read(8)
    sps_id = _ue_at_most(bits, 31, "seq_parameter_set_id")
    chroma_format_idc = 1
    separate_colour_plane = False
    bit_depth_luma = bit_depth_chroma = 8
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = _ue_at_most(bits, 3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_plane = bits.flag()
        bit_depth_luma = 8 + _ue_at_most(bits, 6, "bit_depth_luma_minus8")
        bit_depth_chroma = 8 + _ue_at_most(bits, 6, "bit_depth_chroma_minus8")
        bits.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.flag():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.flag():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    _ue_at_most(bits, 12, "log2_max_frame_num_minus4")
    poc_type = _ue_at_most(bits, 2, "pic_order_cnt_type")
    if poc_type == 0:
        _ue_at_most(bits, 12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        bits.skip(1)  # delta_pic_order_always_zero_flag
        bits.read_se()  # offset_for_non_ref_pic
        bits.read_se()  # offset_for_top_to_bottom_field
        for _ in range(_ue_at_most(bits, 255, "num_ref_frames_in_pic_order_cnt_cycle")):
            bits.read_se()
    bits.read_ue()  # max_num_ref_frames
    bits.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = _ue_at_most(bits, 4095, "pic_width_in_mbs_minus1") + 1
    height_map_units = _ue_at_most(bits, 4095, "pic_height_in_map_units_minus1") + 1
    frame_mbs_only = bits.flag()
    if not frame_mbs_only:
        bits.skip(1)  # mb_adaptive_frame_field_flag
    bits.skip(1)  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if bits.flag():  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = (bits.read_ue() for _ in range(4))
    fps = _vui_fps(bits) if bits.flag() else None

    # §7.4.2.1.1: crop offsets are in chroma sample units (CropUnitX/CropUnitY, equations 7-19..7-22).
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    field_factor = 1 if frame_mbs_only else 2
    if chroma_array_type == 0:
        crop_unit_x, crop_unit_y = 1, field_factor
    else:
        crop_unit_x = 1 if chroma_array_type == 3 else 2
        crop_unit_y = (2 if chroma_array_type == 1 else 1) * field_factor
    width = width_mbs * 16 - crop_unit_x * (crop_left + crop_right)
    height = field_factor * height_map_units * 16 - crop_unit_y * (crop_top + crop_bottom)
    if width <= 0 or height <= 0:
        raise RemoteProtocolError(f"SPS frame cropping leaves no picture ({width}x{height})")
    return SequenceParameterSet(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        sps_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        frame_mbs_only=frame_mbs_only,
        width=width,
        height=height,
        fps=fps,
    )


def _ue_at_most(bits: BitReader, limit: int, name: str) -> int:
    value = bits.read_ue()
    if value > limit:
        raise RemoteProtocolError(f"SPS {name} {value} is out of range (max {limit})")
    return value


def _skip_scaling_list(bits: BitReader, size: int) -> None:
    # ITU-T H.264 §7.3.2.1.1.1: delta-coded until nextScale becomes 0 (the rest repeat lastScale).
    last_scale = 8
    for _ in range(size):
        next_scale = (last_scale + bits.read_se()) % 256
        if next_scale == 0:
            return
        last_scale = next_scale


def _vui_fps(bits: BitReader) -> Fraction | None:
    # ITU-T H.264 §E.1.1, up to timing_info; later VUI fields do not affect what we report.
    # aspect_ratio_info_present_flag, then aspect_ratio_idc 255 (Extended_SAR) adds sar_width/height.
    if bits.flag() and bits.read(8) == 255:
        bits.skip(32)
    if bits.flag():  # overscan_info_present_flag
        bits.skip(1)
    if bits.flag():  # video_signal_type_present_flag
        bits.skip(4)  # video_format, video_full_range_flag
        if bits.flag():  # colour_description_present_flag
            bits.skip(24)
    if bits.flag():  # chroma_loc_info_present_flag
        bits.read_ue()
        bits.read_ue()
    if not bits.flag():  # timing_info_present_flag
        return None
    num_units_in_tick = bits.read(32)
    time_scale = bits.read(32)
    if num_units_in_tick == 0 or time_scale == 0:
        return None
    # §E.2.1: one frame is two field ticks, so fps = time_scale / (2 * num_units_in_tick).
    return Fraction(time_scale, 2 * num_units_in_tick)


def iter_nal_units(data: bytes | memoryview, length_size: int = 4) -> Iterator[memoryview]:
    """The NAL units of an AVCC access unit, as zero-copy views into ``data``.

    Zero-length entries are skipped. Raises :class:`RemoteProtocolError` when a length prefix runs past
    the end of ``data``.
    """
    view = memoryview(data)
    total = len(view)
    offset = 0
    while offset < total:
        header_end = offset + length_size
        if header_end > total:
            raise RemoteProtocolError("AVCC data ends inside a NAL length prefix")
        length = int.from_bytes(view[offset:header_end], "big")
        end = header_end + length
        if end > total:
            raise RemoteProtocolError(f"AVCC NAL unit of {length} bytes runs past the end of the frame")
        if length:
            yield view[header_end:end]
        offset = end


def nal_unit_types(data: bytes | memoryview, length_size: int = 4) -> list[int]:
    """The ``nal_unit_type`` of each NAL unit of an AVCC access unit, in order."""
    return [nal[0] & 0x1F for nal in iter_nal_units(data, length_size)]


def contains_nal_type(data: bytes | memoryview, nal_type: int, length_size: int = 4) -> bool:
    """Whether the AVCC access unit has a NAL unit of ``nal_type`` (e.g. :attr:`NalUnitType.IDR_SLICE`)."""
    return any(nal[0] & 0x1F == nal_type for nal in iter_nal_units(data, length_size))


def is_idr(data: bytes | memoryview, length_size: int = 4) -> bool:
    """Whether the AVCC access unit contains an IDR slice."""
    return contains_nal_type(data, NalUnitType.IDR_SLICE, length_size)


def to_four_byte_lengths(data: bytes, length_size: int) -> bytes:
    """Re-frame AVCC ``data`` whose prefixes are ``length_size`` bytes with 4-byte prefixes."""
    return b"".join(_four_byte_framed(data, length_size))


def _four_byte_framed(data: bytes, length_size: int) -> Iterator[bytes | memoryview]:
    for nal in iter_nal_units(data, length_size):
        yield _U32.pack(len(nal))
        yield nal


def avcc_to_annexb(
    data: bytes | memoryview,
    length_size: int = 4,
    *,
    prefix: Iterable[bytes] = (),
) -> bytes:
    """Convert an AVCC access unit to Annex B, with 4-byte start codes.

    ``prefix`` NAL units (for example :data:`ACCESS_UNIT_DELIMITER`, the SPS and the PPS before a
    keyframe) are emitted first. The output is built with a single join.
    """
    parts: list[bytes | memoryview] = []
    for nal in prefix:
        parts += (START_CODE, nal)
    for nal_view in iter_nal_units(data, length_size):
        parts += (START_CODE, nal_view)
    return b"".join(parts)


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start codes."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    if start < 0:
        return nals
    start += 3
    while True:
        next_code = data.find(b"\x00\x00\x01", start)
        nal = data[start:] if next_code < 0 else data[start:next_code]
        # trailing_zero_8bits / the zero_byte of a 4-byte start code belong to no NAL (§B.2).
        nal = nal.rstrip(b"\x00")
        if nal:
            nals.append(nal)
        if next_code < 0:
            return nals
        start = next_code + 3
