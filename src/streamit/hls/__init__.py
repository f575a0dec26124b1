"""Sans-I/O HLS packaging: keyframe-aligned MPEG-TS segments and RFC 8216 media playlists."""

from streamit.hls.events import PackagerEvent, PlaylistUpdated, SegmentExpired, SegmentReady
from streamit.hls.packager import HlsPackager
from streamit.hls.playlist import render_media_playlist
from streamit.hls.segmenter import Segment

__all__ = [
    "HlsPackager",
    "PackagerEvent",
    "PlaylistUpdated",
    "Segment",
    "SegmentExpired",
    "SegmentReady",
    "render_media_playlist",
]
