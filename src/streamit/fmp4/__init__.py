"""ISO-BMFF / CMAF: initialization segments and ``moof``+``mdat`` fragments for H.264 and AAC.  Sans-I/O."""

from streamit.fmp4.boxes import box, full_box
from streamit.fmp4.fragment import Sample, TrackRun, media_fragment
from streamit.fmp4.init import (
    AUDIO_TRACK_ID,
    VIDEO_TIMESCALE,
    VIDEO_TRACK_ID,
    TrackInfo,
    init_segment,
    track_info,
)
from streamit.fmp4.reader import (
    Box,
    BoxReader,
    Fragment,
    InitInfo,
    InitTrack,
    ParsedRun,
    fragments,
    parse_boxes,
    parse_fragment,
    parse_init,
)
from streamit.fmp4.samples import SampleQueue

__all__ = [
    "AUDIO_TRACK_ID",
    "VIDEO_TIMESCALE",
    "VIDEO_TRACK_ID",
    "Box",
    "BoxReader",
    "Fragment",
    "InitInfo",
    "InitTrack",
    "ParsedRun",
    "Sample",
    "SampleQueue",
    "TrackInfo",
    "TrackRun",
    "box",
    "fragments",
    "full_box",
    "init_segment",
    "media_fragment",
    "parse_boxes",
    "parse_fragment",
    "parse_init",
    "track_info",
]
