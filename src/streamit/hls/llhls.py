"""Rendering of Low-Latency HLS media playlists (RFC 8216bis: draft-pantos-hls-rfc8216bis).

Pure functions of an :class:`LlHlsPlaylist` snapshot: no clock is read (program date-times are part of
the state) and nothing is stored.  What is written:

* ``EXT-X-VERSION:9`` (§4.4.1.2: EXT-X-SKIP needs version 9; EXT-X-PART and friends need less);
* ``EXT-X-SERVER-CONTROL`` with ``CAN-BLOCK-RELOAD=YES``, ``PART-HOLD-BACK`` = 3 × part target
  (§4.4.3.8: at least twice, three times recommended) and ``CAN-SKIP-UNTIL`` = 6 × target duration (the
  minimum, §4.4.3.8);
* ``EXT-X-PART-INF:PART-TARGET``, ``EXT-X-MAP`` for the initialization segment, EXT-X-PROGRAM-DATE-TIME
  on every segment;
* ``EXT-X-PART`` lines for the segments that end within three target durations of the playlist's end
  (§6.2.2: older parts should be removed) and for the open segment, then ``EXT-X-PRELOAD-HINT`` naming the
  next part;
* with ``skip=True``, a Playlist Delta Update (§6.2.5.1): segments that end at least ``CAN-SKIP-UNTIL``
  seconds before the end of the playlist are replaced by ``EXT-X-SKIP:SKIPPED-SEGMENTS``.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from streamit.errors import LocalProtocolError
from streamit.hls.playlist import format_date_time, format_duration

LLHLS_VERSION = 9
PART_HOLD_BACK_PARTS = 3
"""PART-HOLD-BACK in part target durations (RFC 8216bis §4.4.3.8 recommends at least three)."""
SKIP_UNTIL_TARGETS = 6
"""CAN-SKIP-UNTIL in target durations (RFC 8216bis §4.4.3.8: at least six)."""
PART_LINES_TARGETS = 3
"""Parts are listed for segments ending within this many target durations of the end (§6.2.2)."""
PART_DURATION_DECIMALS = 5


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One partial segment as the playlist lists it."""

    msn: int
    index: int
    uri: str
    duration: Fraction
    independent: bool

    def __hash__(self) -> int:
        # Entries key the renderer's caches: Fraction.__hash__ costs more than the rest of a lookup, and the
        # URI alone would make every stream's part of the same name collide.
        duration = self.duration
        return hash((self.uri, duration.numerator, duration.denominator))


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One complete media segment as the playlist lists it, with its parts (oldest first)."""

    msn: int
    uri: str
    duration: Fraction
    program_date_time: datetime
    parts: tuple[PartEntry, ...]
    init_uri: str
    discontinuity: bool = False

    def __hash__(self) -> int:
        # As PartEntry's: cheap, and the wall clock tells apart the same URI of different streams.
        return hash((self.uri, self.program_date_time))


@dataclass(frozen=True, slots=True)
class OpenSegment:
    """The segment being produced: its parts so far and the part the preload hint announces."""

    msn: int
    program_date_time: datetime
    parts: tuple[PartEntry, ...]
    next_part_uri: str
    init_uri: str
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class LlHlsPlaylist:
    """Everything a live LL-HLS media playlist states.

    ``segments`` are the complete segments of the window, oldest first; ``open_segment`` the one in
    progress (``None`` once the stream ended).
    """

    segments: Sequence[SegmentEntry]
    open_segment: OpenSegment | None
    target_duration: int
    part_target: Fraction
    discontinuity_sequence: int = 0
    ended: bool = False

    @property
    def skip_until(self) -> int:
        """CAN-SKIP-UNTIL in seconds."""
        return SKIP_UNTIL_TARGETS * self.target_duration

    @property
    def part_hold_back(self) -> Fraction:
        """PART-HOLD-BACK in seconds."""
        return PART_HOLD_BACK_PARTS * self.part_target


def format_decimal(seconds: Fraction, decimals: int = PART_DURATION_DECIMALS) -> str:
    """``seconds`` rounded to ``decimals`` places, without trailing zeros (``0.33``, ``1``, ``0.33333``).

    Rounding is monotonic, so a duration at most the part target is still at most it once both are written.
    """
    scale = 10**decimals
    units = round(seconds * scale)
    whole, fraction = divmod(units, scale)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0")


def target_duration_for_segments(target: Fraction, longest: Fraction) -> int:
    """EXT-X-TARGETDURATION: the configured target or the longest segment, rounded up, at least 1."""
    return max(1, math.ceil(max(target, longest)))


# A part is listed in every playlist rendered while it is near the live end (about ten times): its line is
# formatted once.  Bounded, and keyed by the immutable entry, so streams never see each other's lines.
@functools.lru_cache(maxsize=4096)
def _part_line(part: PartEntry) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={format_decimal(part.duration)},URI="{part.uri}"{independent}'


@functools.lru_cache(maxsize=4096)
def _date_time_line(moment: datetime) -> str:
    return f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(moment)}"


# Sized for the windows of a few hundred streams: an entry keeps its segment's part entries alive.
@functools.lru_cache(maxsize=1024)
def _segment_lines(segment: SegmentEntry) -> tuple[str, str]:
    return f"#EXTINF:{format_duration(segment.duration)},", segment.uri


@functools.lru_cache(maxsize=256)
def _control_lines(target: int, part_target: Fraction) -> tuple[str, ...]:
    skip_until = SKIP_UNTIL_TARGETS * target
    return (
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
        f"CAN-SKIP-UNTIL={format_decimal(Fraction(skip_until))},"
        f"PART-HOLD-BACK={format_decimal(PART_HOLD_BACK_PARTS * part_target)}",
        f"#EXT-X-PART-INF:PART-TARGET={format_decimal(part_target)}",
    )


@dataclass(frozen=True, slots=True)
class _Window:
    """What the complete segments of a playlist add up to (they change once per segment, not per part)."""

    ends: list[Fraction]  # each segment's end, from the start of the first
    total: Fraction
    longest_part: Fraction | None
    longest_segment: int  # seconds, rounded as EXT-X-TARGETDURATION compares them


@functools.lru_cache(maxsize=256)
def _window(segments: tuple[SegmentEntry, ...]) -> _Window:
    ends: list[Fraction] = []
    elapsed = Fraction(0)
    longest_part: Fraction | None = None
    longest_segment = 0
    for segment in segments:
        elapsed += segment.duration
        ends.append(elapsed)
        longest_segment = max(longest_segment, (round(segment.duration * 1000) + 500) // 1000)
        for part in segment.parts:
            if longest_part is None or part.duration > longest_part:
                longest_part = part.duration
    return _Window(ends, elapsed, longest_part, longest_segment)


def _sum(durations: Sequence[Fraction]) -> Fraction:
    """The exact sum, on a common denominator (one Fraction instead of one per addition)."""
    if not durations:
        return Fraction(0)
    common = math.lcm(*(duration.denominator for duration in durations))
    return Fraction(sum(d.numerator * (common // d.denominator) for d in durations), common)


def render_llhls_playlist(playlist: LlHlsPlaylist, *, skip: bool = False) -> str:
    """The media playlist text; with ``skip`` a delta update (``_HLS_skip=YES``) when anything can be skipped.

    Raises :class:`LocalProtocolError` for states that would break the LL-HLS rules: nothing to list, a part
    longer than the part target, or a segment longer than the target duration.
    """
    segments = playlist.segments
    if not isinstance(segments, tuple):
        segments = tuple(segments)
    open_segment = playlist.open_segment
    if not segments and (open_segment is None or not open_segment.parts):
        raise LocalProtocolError("an LL-HLS playlist needs a segment or a part")
    head = segments[0] if segments else open_segment
    assert head is not None  # checked just above
    part_target = playlist.part_target
    target = playlist.target_duration
    open_parts = open_segment.parts if open_segment is not None else ()
    window = _window(segments)
    open_durations = [part.duration for part in open_parts]
    limit_numerator, limit_denominator = part_target.numerator, part_target.denominator
    if (window.longest_part is not None and window.longest_part > part_target) or any(
        d.numerator * limit_denominator > limit_numerator * d.denominator for d in open_durations
    ):
        raise LocalProtocolError("a part is longer than the part target duration")
    if segments and window.longest_segment > target:
        raise LocalProtocolError("a segment is longer than the target duration")

    # Segment end times relative to the end of the playlist decide which parts are listed and which
    # segments a delta update may skip; the ends increase, so both are a bisection.
    ends = window.ends
    total = window.total + _sum(open_durations) if open_durations else window.total
    skipped = bisect.bisect_right(ends, total - playlist.skip_until) if skip else 0
    parts_listed_from = bisect.bisect_right(ends, total - PART_LINES_TARGETS * target)

    first_msn, first_init = head.msn, head.init_uri
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{LLHLS_VERSION}"]
    lines.extend(_control_lines(target, part_target))
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first_msn}")
    if playlist.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{playlist.discontinuity_sequence}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current_init = ""
    if skipped:
        # The skipped segments' tags go with them; the map of the first listed segment must be stated
        # before it (§6.2.5.1), which the loop below does as the init changes from "".
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    else:
        lines.append(f'#EXT-X-MAP:URI="{first_init}"')
        current_init = first_init
    for position in range(skipped, len(segments)):
        segment = segments[position]
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_uri != current_init:
            lines.append(f'#EXT-X-MAP:URI="{segment.init_uri}"')
            current_init = segment.init_uri
        lines.append(_date_time_line(segment.program_date_time))
        if position >= parts_listed_from:
            lines.extend(_part_line(part) for part in segment.parts)
        lines.extend(_segment_lines(segment))
    if open_segment is not None:
        # The open segment's tags wait for its first part: a tag must be followed by what it applies to.
        if open_parts:
            if open_segment.discontinuity and segments:
                lines.append("#EXT-X-DISCONTINUITY")
            if open_segment.init_uri != current_init:
                lines.append(f'#EXT-X-MAP:URI="{open_segment.init_uri}"')
            lines.append(_date_time_line(open_segment.program_date_time))
            lines.extend(_part_line(part) for part in open_parts)
        if not playlist.ended:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{open_segment.next_part_uri}"')
    if playlist.ended:
        lines.append("#EXT-X-ENDLIST")
    lines.append("")
    return "\n".join(lines)
