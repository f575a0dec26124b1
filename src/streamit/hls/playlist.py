"""Rendering of HLS media playlists (RFC 8216)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction

from streamit.errors import LocalProtocolError
from streamit.hls.segmenter import Segment

PLAYLIST_VERSION = 3
"""RFC 8216 §7: decimal EXTINF values need protocol version 3; nothing newer is used."""


def format_duration(seconds: Fraction) -> str:
    """An EXTINF duration with three decimals (RFC 8216 §4.3.2.1), rounded to the nearest millisecond."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}.{millis % 1000:03d}"


def rounded_duration(seconds: Fraction) -> int:
    """The EXTINF value as written, rounded half up to an integer: what must not exceed the target."""
    return math.floor(Fraction(round(seconds * 1000), 1000) + Fraction(1, 2))


def format_date_time(moment: datetime) -> str:
    """An ISO 8601 UTC timestamp with milliseconds and a ``Z`` (RFC 8216 §4.3.2.6).

    A naive ``moment`` is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def target_duration_for(durations: Sequence[Fraction] | Fraction) -> int:
    """EXT-X-TARGETDURATION for segments up to the given duration(s): the ceiling, at least 1.

    RFC 8216 §4.3.3.1 requires every EXTINF rounded to the nearest integer to be at most the target; the
    ceiling of the exact duration bounds the rounded three-decimal value too.
    """
    longest = durations if isinstance(durations, Fraction) else max(durations, default=Fraction(0))
    return max(1, math.ceil(longest))


def render_media_playlist(
    segments: Sequence[Segment],
    *,
    target_duration: int,
    discontinuity_sequence: int = 0,
    ended: bool = False,
) -> str:
    """A live (sliding-window) media playlist listing ``segments``.

    EXT-X-MEDIA-SEQUENCE is the first segment's sequence number; EXT-X-DISCONTINUITY-SEQUENCE is written
    when non-zero (RFC 8216 §4.3.3.3); ``ended`` appends EXT-X-ENDLIST.  Every segment starts with a
    keyframe, hence EXT-X-INDEPENDENT-SEGMENTS (§4.3.5.1).
    """
    if not segments:
        raise LocalProtocolError("a media playlist needs at least one segment")
    # Each duration in whole milliseconds, computed once: it gives both the EXTINF text and, rounded half
    # up, the value checked against the target (the same arithmetic as format_duration/rounded_duration).
    all_millis = [round(segment.duration * 1000) for segment in segments]
    if any((millis + 500) // 1000 > target_duration for millis in all_millis):
        raise LocalProtocolError("a segment is longer than the target duration")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{PLAYLIST_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    for segment, millis in zip(segments, all_millis, strict=True):
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(segment.program_date_time)}")
        lines.append(f"#EXTINF:{millis // 1000}.{millis % 1000:03d},")
        lines.append(segment.name)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    lines.append("")
    return "\n".join(lines)
