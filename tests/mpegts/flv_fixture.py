"""Test-only FLV reader: turns an ffmpeg-made FLV fixture into codec configs and :class:`Frame` objects."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from streamit.media.frame import MILLISECONDS, AudioConfig, Frame, TrackKind, VideoConfig

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mpegts"
AV_FLV = FIXTURES / "testsrc-320x240-h264-aac.flv"
AV_WIDTH = 320
AV_HEIGHT = 240
AV_FPS = Fraction(25)

_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class FlvMedia:
    video: VideoConfig
    audio: AudioConfig
    frames: list[Frame]

    @property
    def video_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.track is TrackKind.VIDEO]

    @property
    def audio_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.track is TrackKind.AUDIO]


def video_config_from_record(record: bytes, width: int, height: int, fps: Fraction | None) -> VideoConfig:
    """A VideoConfig from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1)."""
    assert record[0] == 1 and record[4] & 0x03 == 3, "fixture must use 4-byte NAL lengths"
    offset = 6
    sps = []
    for _ in range(record[5] & 0x1F):
        (size,) = struct.unpack_from(">H", record, offset)
        sps.append(record[offset + 2 : offset + 2 + size])
        offset += 2 + size
    pps = []
    count = record[offset]
    offset += 1
    for _ in range(count):
        (size,) = struct.unpack_from(">H", record, offset)
        pps.append(record[offset + 2 : offset + 2 + size])
        offset += 2 + size
    return VideoConfig(
        codec="h264",
        record=record,
        sps=tuple(sps),
        pps=tuple(pps),
        width=width,
        height=height,
        profile=record[1],
        level=record[3],
        fps=fps,
    )


def audio_config_from_asc(asc: bytes) -> AudioConfig:
    """An AudioConfig from a two-byte AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1)."""
    object_type = asc[0] >> 3
    sampling_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7)
    channel_config = (asc[1] >> 3) & 0x0F
    return AudioConfig(
        codec="aac",
        record=asc,
        object_type=object_type,
        sample_rate=_SAMPLE_RATES[sampling_index],
        channels=channel_config,
        sampling_index=sampling_index,
        channel_config=channel_config,
    )


def read_flv(path: Path = AV_FLV, width: int = AV_WIDTH, height: int = AV_HEIGHT) -> FlvMedia:
    """Read an FLV of AVC + AAC tags (Adobe FLV 10.1 §E.4)."""
    data = path.read_bytes()
    assert data[:3] == b"FLV"
    offset = struct.unpack_from(">I", data, 5)[0] + 4
    video: VideoConfig | None = None
    audio: AudioConfig | None = None
    frames: list[Frame] = []
    while offset + 11 <= len(data):
        tag_type = data[offset]
        size = int.from_bytes(data[offset + 1 : offset + 4], "big")
        timestamp = int.from_bytes(data[offset + 4 : offset + 7], "big") | (data[offset + 7] << 24)
        body = data[offset + 11 : offset + 11 + size]
        offset += 11 + size + 4
        if tag_type == 9 and body[0] & 0x0F == 7:
            composition = int.from_bytes(body[2:5], "big", signed=True)
            if body[1] == 0:
                video = video_config_from_record(body[5:], width, height, AV_FPS)
            elif body[1] == 1:
                keyframe = body[0] >> 4 == 1
                frames.append(
                    Frame(
                        TrackKind.VIDEO, timestamp + composition, timestamp, MILLISECONDS, keyframe, body[5:]
                    )
                )
        elif tag_type == 8 and body[0] >> 4 == 10:
            if body[1] == 0:
                audio = audio_config_from_asc(body[2:])
            else:
                frames.append(Frame(TrackKind.AUDIO, timestamp, timestamp, MILLISECONDS, True, body[2:]))
    assert video is not None and audio is not None
    return FlvMedia(video, audio, frames)
