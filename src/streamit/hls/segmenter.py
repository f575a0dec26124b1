"""Where to cut a live stream into HLS media segments.

Rules:

* A stream with video cuts only at a video keyframe, once the open segment has lasted the target
  duration; every segment starts with that keyframe, and frames before the first keyframe are dropped
  (audio included).  An audio-only stream cuts on any audio frame.
* A segment lasts from its first frame's DTS to the next segment's first DTS; the last one, closed by
  :meth:`Segmenter.finish`, until its last frame's DTS plus one frame duration (the last DTS step of at
  most 1 s seen on that track, else the nominal frame duration of the track).
* A DTS of the cutting track more than ``JUMP_TOLERANCE`` (1 s) away from the expected next DTS (last DTS
  plus one frame), in either direction, is a timestamp discontinuity: the open segment is closed there and
  the next segment, which again must start with a keyframe, is marked discontinuous (RFC 8216 §4.3.2.3).

Time is counted in integer 90 kHz ticks; durations are exact :class:`~fractions.Fraction` seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from streamit.media.frame import TrackKind

CLOCK = 90_000
"""Ticks per second of the segmenter's clock (the MPEG-TS 90 kHz clock)."""

JUMP_TOLERANCE = CLOCK
"""How far (1 s) a DTS may stray from the expected one before it counts as a discontinuity."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One finished media segment.

    ``data`` is the whole MPEG-TS segment in :class:`~streamit.hls.events.SegmentReady`, and empty in the
    packager's window (which keeps metadata only).
    """

    sequence: int
    name: str  # e.g. "seg-000042.ts"
    duration: Fraction  # seconds
    program_date_time: datetime  # UTC wall clock of the segment's first frame
    discontinuity: bool
    data: bytes


def segment_name(sequence: int) -> str:
    """The file name of the segment with media sequence number ``sequence``."""
    return f"seg-{sequence:06d}.ts"


class SegmenterState(enum.Enum):
    """Whether a segment is open."""

    WAITING = "waiting"  # no open segment: waiting for a frame that can start one
    OPEN = "open"


class Placement(enum.Enum):
    """What happens to a frame."""

    DROP = "drop"
    APPEND = "append"  # into the open segment
    START = "start"  # first frame of a new segment


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a frame goes, and whether the open segment closes before it.

    ``closed_duration`` is the duration of the open segment if it ends before this frame;
    ``discontinuity`` says whether the next segment to start follows a timestamp discontinuity.
    """

    placement: Placement
    closed_duration: Fraction | None
    discontinuity: bool


_VIDEO = TrackKind.VIDEO
_AUDIO = TrackKind.AUDIO


def _index(kind: TrackKind) -> int:
    return 0 if kind is _VIDEO else 1


_DROP = Decision(Placement.DROP, None, False)
_APPEND = Decision(Placement.APPEND, None, False)
APPEND = _APPEND
"""The decision for a frame that joins the open segment, always this object: callers may test identity."""


class Segmenter:
    """Decides segment boundaries from frame timing; holds no media bytes.

    Two steps per frame, so that a caller whose muxing fails changes nothing: :meth:`decide` (pure), then
    :meth:`accept` once the frame was handled.
    """

    def __init__(self, target_duration: Fraction) -> None:
        self._target = int(target_duration * CLOCK)
        # Per-track state in two-slot lists indexed by _index(kind) (video 0, audio 1): no Enum hashing
        # on the per-frame path.
        self._declared = [False, False]
        self._nominal = [0, 0]
        self._last_dts: list[int | None] = [None, None]
        self._step = [0, 0]
        self._cut: TrackKind | None = None
        self._open = False
        self._start = 0
        self._segment_track = TrackKind.VIDEO
        self._pending_discontinuity = False

    def add_track(self, kind: TrackKind, nominal_frame_duration: int | None) -> None:
        """Declare a track (its codec configuration arrived); its nominal frame duration in ticks."""
        index = _index(kind)
        self._declared[index] = True
        self._nominal[index] = nominal_frame_duration or 0
        self._cut = _VIDEO if self._declared[0] else _AUDIO

    def clear_tracks(self) -> None:
        """Forget all tracks (publisher gone); frames are dropped until tracks are declared again."""
        self._declared = [False, False]
        self._nominal = [0, 0]
        self._cut = None

    @property
    def state(self) -> SegmenterState:
        """Whether a segment is open."""
        return SegmenterState.OPEN if self._open else SegmenterState.WAITING

    @property
    def cut_track(self) -> TrackKind | None:
        """The track whose frames start segments: video when there is video, else audio."""
        return self._cut

    def _open_duration(self) -> Fraction:
        index = _index(self._segment_track)
        last = self._last_dts[index]
        end = (self._start if last is None else last) + (self._step[index] or self._nominal[index])
        return Fraction(max(end - self._start, 0), CLOCK)

    def decide(self, kind: TrackKind, dts: int, keyframe: bool) -> Decision:
        """Where the frame of track ``kind`` at ``dts`` (ticks) goes.  Changes nothing."""
        cut = self._cut
        if cut is None or not self._declared[0 if kind is _VIDEO else 1]:
            return _DROP
        if not self._open:
            placement = Placement.START if kind is cut and (keyframe or kind is _AUDIO) else Placement.DROP
            return Decision(placement, None, self._pending_discontinuity)
        segment_track = self._segment_track
        if kind is cut:
            can_start = keyframe or kind is _AUDIO
            if kind is segment_track:
                index = 0 if kind is _VIDEO else 1
                last = self._last_dts[index]
                assert last is not None  # set by the frame that started the open segment
                expected = last + (self._step[index] or self._nominal[index])
                if abs(dts - expected) > JUMP_TOLERANCE:
                    placement = Placement.START if can_start else Placement.DROP
                    return Decision(placement, self._open_duration(), True)
            if can_start and (dts - self._start >= self._target or segment_track is not cut):
                return Decision(Placement.START, Fraction(max(dts - self._start, 0), CLOCK), False)
        if kind is _VIDEO and segment_track is not _VIDEO:
            return _DROP  # video appeared mid audio-only segment: wait for its keyframe
        return _APPEND

    def accept(self, kind: TrackKind, dts: int, decision: Decision) -> None:
        """Record that the frame was handled as ``decision`` said."""
        if decision is not _APPEND:
            if decision.closed_duration is not None:
                self._open = False
                self._pending_discontinuity = decision.discontinuity
            placement = decision.placement
            if placement is Placement.DROP:
                return
            if placement is Placement.START:
                if decision.discontinuity:
                    self._last_dts = [None, None]
                    self._step = [0, 0]
                self._open = True
                self._start = dts
                self._segment_track = kind
                self._pending_discontinuity = False
        index = 0 if kind is _VIDEO else 1
        last = self._last_dts[index]
        # A gap longer than the jump tolerance is no frame duration; keep the previous estimate.
        if last is not None and 0 < dts - last <= JUMP_TOLERANCE:
            self._step[index] = dts - last
        self._last_dts[index] = dts

    def finish(self) -> Fraction | None:
        """Close the open segment (end of stream); its duration, or ``None`` if none was open."""
        if not self._open:
            return None
        self._open = False
        return self._open_duration()

    def mark_discontinuity(self) -> None:
        """The next segment follows a discontinuity (republish); timing history is forgotten."""
        self._pending_discontinuity = True
        self._last_dts = [None, None]
        self._step = [0, 0]
