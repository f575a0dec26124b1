"""Configs and :class:`~streamit.media.frame.Frame` objects → FLV/RTMP tag bodies (the inverse of
:class:`~streamit.flv.FlvDemuxer`), for recording to FLV files and relaying over RTMP."""

from __future__ import annotations

from streamit.errors import LocalProtocolError
from streamit.media.frame import MILLISECONDS, AudioConfig, Frame, TrackKind, VideoConfig

# VIDEODATA first byte: FrameType << 4 | CodecID 7 (AVC), FLV spec v10.1 §E.4.3.1.
_AVC_KEYFRAME = 0x17
_AVC_INTER = 0x27
# AUDIODATA first byte for AAC: SoundFormat 10, SoundRate 3 (44 kHz), SoundSize 1 (16-bit), SoundType 1
# (stereo); §E.4.2.1 says AAC always uses these values, the real ones are in the AudioSpecificConfig.
_AAC_SOUND_BYTE = 0xAF


def video_config_body(config: VideoConfig) -> bytes:
    """The AVC sequence header tag body (AVCPacketType 0) carrying ``config.record``."""
    return b"".join((bytes((_AVC_KEYFRAME, 0, 0, 0, 0)), config.record))


def video_frame_body(frame: Frame) -> bytes:
    """The AVC NALU tag body (AVCPacketType 1) for an H.264 frame in millisecond time base."""
    if frame.track is not TrackKind.VIDEO:
        raise LocalProtocolError("video_frame_body needs a video frame")
    offset = frame.pts - frame.dts
    if frame.time_base != MILLISECONDS:
        offset = frame.rescale_pts(MILLISECONDS) - frame.rescale_dts(MILLISECONDS)
    if not -(1 << 23) <= offset < 1 << 23:
        raise LocalProtocolError(f"composition time offset {offset} ms does not fit SI24")
    return b"".join(
        (
            bytes((_AVC_KEYFRAME if frame.keyframe else _AVC_INTER, 1)),
            (offset & 0xFFFFFF).to_bytes(3, "big"),
            frame.data,
        )
    )


def video_end_of_sequence_body() -> bytes:
    """The AVC end-of-sequence tag body (AVCPacketType 2) that closes a recording."""
    return bytes((_AVC_KEYFRAME, 2, 0, 0, 0))


def audio_config_body(config: AudioConfig) -> bytes:
    """The AAC sequence header tag body (AACPacketType 0) carrying the AudioSpecificConfig."""
    return b"".join((bytes((_AAC_SOUND_BYTE, 0)), config.record))


def audio_frame_body(frame: Frame) -> bytes:
    """The AAC raw tag body (AACPacketType 1) for one AAC frame."""
    if frame.track is not TrackKind.AUDIO:
        raise LocalProtocolError("audio_frame_body needs an audio frame")
    return b"".join((bytes((_AAC_SOUND_BYTE, 1)), frame.data))
