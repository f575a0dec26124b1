"""Events the HLS packager emits for the segment store to carry out, in order."""

from __future__ import annotations

from dataclasses import dataclass

from streamit.hls.segmenter import Segment


@dataclass(frozen=True, slots=True)
class SegmentReady:
    """A segment is complete; store its bytes before the playlist that names it is published."""

    segment: Segment


@dataclass(frozen=True, slots=True)
class SegmentExpired:
    """A segment left the playlist window some segments ago; its bytes can be deleted."""

    name: str


@dataclass(frozen=True, slots=True)
class PlaylistUpdated:
    """The media playlist changed; ``text`` is the whole new playlist."""

    text: str


PackagerEvent = SegmentReady | SegmentExpired | PlaylistUpdated
