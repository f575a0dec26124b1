"""The neutral media :class:`Frame` and codec configurations passed from ingest to packagers.

Timestamps are integers in units of ``time_base`` (a :class:`~fractions.Fraction` of a second), never
float seconds, so that no rounding error accumulates over a long broadcast.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

MILLISECONDS = Fraction(1, 1000)
"""The time base of RTMP/FLV timestamps."""

MPEG_TS_CLOCK = Fraction(1, 90_000)
"""The 90 kHz time base of MPEG-TS PTS/DTS (ISO/IEC 13818-1 §2.4.3.7)."""


class TrackKind(enum.Enum):
    """What a track carries."""

    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class Frame:
    """One access unit of one track.

    ``data`` layout by codec:

    * H.264: the access unit in AVCC form — NAL units each prefixed by a 4-byte big-endian length
      (the FLV/RTMP layout, normalised to 4-byte lengths by the demuxer).
    * AAC: one raw AAC frame (no ADTS header).

    ``pts``/``dts`` are in units of ``time_base`` and already unwrapped to unbounded integers.
    """

    track: TrackKind
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool
    data: bytes

    def __init__(
        self, track: TrackKind, pts: int, dts: int, time_base: Fraction, keyframe: bool, data: bytes
    ) -> None:
        # One frame per access unit: the slots are written through their descriptors, which costs about
        # 40% less than the object.__setattr__ call per field of a generated frozen __init__.
        _set_track(self, track)
        _set_pts(self, pts)
        _set_dts(self, dts)
        _set_time_base(self, time_base)
        _set_keyframe(self, keyframe)
        _set_data(self, data)

    def rescale_pts(self, time_base: Fraction) -> int:
        """``pts`` expressed in ``time_base`` units (rounded down)."""
        return rescale(self.pts, self.time_base, time_base)

    def rescale_dts(self, time_base: Fraction) -> int:
        """``dts`` expressed in ``time_base`` units (rounded down)."""
        return rescale(self.dts, self.time_base, time_base)


_set_track, _set_pts, _set_dts, _set_time_base, _set_keyframe, _set_data = (
    Frame.__dict__[name].__set__ for name in ("track", "pts", "dts", "time_base", "keyframe", "data")
)


def rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """Convert ``value`` from time base ``src`` to time base ``dst`` with integer arithmetic."""
    num = value * src.numerator * dst.denominator
    den = src.denominator * dst.numerator
    return num // den


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """H.264 decoder configuration, from the AVC sequence header (AVCDecoderConfigurationRecord).

    ``fps`` is taken from the SPS VUI timing info when present, else ``None``.
    """

    codec: str  # "h264"
    record: bytes  # the AVCDecoderConfigurationRecord as received
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    width: int
    height: int
    profile: int  # profile_idc
    level: int  # level_idc
    fps: Fraction | None

    @property
    def codec_string(self) -> str:
        """RFC 6381 codecs string, e.g. ``avc1.64001f``."""
        sps = self.sps[0] if self.sps else b"\x67\x42\x00\x1e"
        return "avc1." + sps[1:4].hex()


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """AAC decoder configuration, from the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1)."""

    codec: str  # "aac"
    record: bytes  # the AudioSpecificConfig as received
    object_type: int  # 2 = AAC-LC
    sample_rate: int
    channels: int
    sampling_index: int  # index into the ADTS sampling-frequency table
    channel_config: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 codecs string, e.g. ``mp4a.40.2``."""
        return f"mp4a.40.{self.object_type}"


CodecConfig = VideoConfig | AudioConfig
