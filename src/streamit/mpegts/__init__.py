"""Sans-I/O MPEG-2 transport stream muxing (ISO/IEC 13818-1): PAT/PMT, PES, PCR, continuity counters."""

from streamit.mpegts.muxer import (
    AUDIO_PID,
    PMT_PID,
    TS_PACKET_SIZE,
    VIDEO_PID,
    TsMuxer,
)

__all__ = ["AUDIO_PID", "PMT_PID", "TS_PACKET_SIZE", "VIDEO_PID", "TsMuxer"]
