"""Neutral media model shared by ingest and packagers.  Pure code: no I/O, no clocks."""

from streamit.media.frame import AudioConfig, CodecConfig, Frame, TrackKind, VideoConfig
from streamit.media.stream import Stream, StreamItem, StreamReader

__all__ = [
    "AudioConfig",
    "CodecConfig",
    "Frame",
    "Stream",
    "StreamItem",
    "StreamReader",
    "TrackKind",
    "VideoConfig",
]
