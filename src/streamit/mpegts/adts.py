"""ADTS headers that make raw AAC frames self-describing in MPEG-TS (ISO/IEC 13818-7 §6.2, 14496-3 §1.A.2)."""

from __future__ import annotations

from streamit.errors import RemoteProtocolError, UnsupportedCodec

ADTS_HEADER_SIZE = 7
"""Header size without CRC (protection_absent = 1)."""

MAX_ADTS_FRAME = (1 << 13) - 1
"""aac_frame_length is a 13-bit field that includes the header."""

AOT_AAC_LC = 2
AOT_SBR = 5
AOT_PS = 29

SAMPLING_FREQUENCIES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
"""Sample rate of each sampling_frequency_index (ISO/IEC 14496-3 §1.6.3.4)."""


class AdtsHeader:
    """Builds the 7-byte ADTS header for frames of one AAC configuration.

    Everything but ``aac_frame_length`` is fixed per configuration, so it is computed once.
    """

    __slots__ = ("_fixed",)

    def __init__(self, object_type: int, sampling_index: int, channel_config: int) -> None:
        # HE-AAC (v2) goes out as its AAC-LC core with implicit SBR/PS signalling (ISO/IEC 14496-3
        # §4.6.18.2.6); ``sampling_index`` is then the core's.
        if object_type in (AOT_SBR, AOT_PS):
            object_type = AOT_AAC_LC
        # ADTS profile is object_type - 1 in two bits: only Main/LC/SSR/LTP fit (ISO/IEC 14496-3 §1.A.2.2).
        if not 1 <= object_type <= 4:
            raise UnsupportedCodec(f"AAC object type {object_type} cannot be carried in ADTS")
        # Index 15 means an explicit frequency, which ADTS cannot express; 13 and 14 are reserved.
        if not 0 <= sampling_index < len(SAMPLING_FREQUENCIES):
            raise UnsupportedCodec(f"AAC sampling frequency index {sampling_index} cannot be carried in ADTS")
        if not 0 <= channel_config <= 7:
            raise UnsupportedCodec(f"AAC channel configuration {channel_config} is invalid")
        self._fixed = (
            (0xFFF << 44)  # syncword
            | (0 << 43)  # ID: MPEG-4
            | (1 << 40)  # protection_absent: no CRC
            | ((object_type - 1) << 38)
            | (sampling_index << 34)
            | (channel_config << 30)
            | (0x7FF << 2)  # adts_buffer_fullness: variable bit rate
        )

    def header(self, payload_size: int) -> bytes:
        """The header for a raw AAC frame of ``payload_size`` bytes."""
        frame_length = payload_size + ADTS_HEADER_SIZE
        if frame_length > MAX_ADTS_FRAME:
            raise RemoteProtocolError(f"AAC frame of {payload_size} bytes is too large for ADTS")
        return (self._fixed | (frame_length << 13)).to_bytes(ADTS_HEADER_SIZE, "big")
