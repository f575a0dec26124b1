"""Events the HLS packager emits for the segment store to carry out, in order."""

from __future__ import annotations

from dataclasses import dataclass

from streamit.hls.segmenter import Segment


@dataclass(frozen=True, slots=True)
class SegmentAppended:
    """Bytes of the segment ``name`` that is still being built, in order; more follow.

    The segment is complete only with its :class:`SegmentReady`: a store may write these bytes to a
    temporary file as they come, but must not publish the segment before then (RFC 8216 §6.2.2).
    """

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SegmentReady:
    """A segment is complete; store its bytes before the playlist that names it is published.

    ``segment.data`` holds the segment's bytes after those already given in :class:`SegmentAppended`
    events of the same name: the whole segment is their data in order, then ``segment.data``.
    """

    segment: Segment


@dataclass(frozen=True, slots=True)
class SegmentExpired:
    """A segment left the playlist window some segments ago; its bytes can be deleted."""

    name: str


@dataclass(frozen=True, slots=True)
class PlaylistUpdated:
    """The media playlist changed; ``text`` is the whole new playlist."""

    text: str


PackagerEvent = SegmentAppended | SegmentReady | SegmentExpired | PlaylistUpdated
