"""FLV and Enhanced-RTMP tag bodies ↔ configs and Frames; FLV file reading/writing.  Sans-I/O."""

from streamit.flv.demuxer import FlvDemuxer
from streamit.flv.file import FlvFileReader, FlvFileWriter, FlvHeader, FlvTag, FlvTagType
from streamit.flv.muxer import (
    audio_config_body,
    audio_frame_body,
    video_config_body,
    video_end_of_sequence_body,
    video_frame_body,
)
from streamit.flv.timestamps import TimestampUnwrapper

__all__ = [
    "FlvDemuxer",
    "FlvFileReader",
    "FlvFileWriter",
    "FlvHeader",
    "FlvTag",
    "FlvTagType",
    "TimestampUnwrapper",
    "audio_config_body",
    "audio_frame_body",
    "video_config_body",
    "video_end_of_sequence_body",
    "video_frame_body",
]
