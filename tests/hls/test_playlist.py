from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError
from streamit.hls.playlist import (
    format_date_time,
    format_duration,
    render_media_playlist,
    rounded_duration,
    target_duration_for,
)
from streamit.hls.segmenter import Segment, segment_name

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def segment(sequence: int, duration: Fraction, discontinuity: bool = False) -> Segment:
    return Segment(
        sequence, segment_name(sequence), duration, T0 + timedelta(seconds=2 * sequence), discontinuity, b""
    )


def test_format_duration_rounds_to_milliseconds() -> None:
    assert format_duration(Fraction(2)) == "2.000"
    assert format_duration(Fraction(1, 3)) == "0.333"
    assert format_duration(Fraction(2002, 1000)) == "2.002"
    assert format_duration(Fraction(29999, 10000)) == "3.000"
    assert format_duration(Fraction(0)) == "0.000"


def test_format_date_time_is_utc_with_milliseconds() -> None:
    assert format_date_time(T0) == "2026-03-01T12:00:00.250Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_date_time(datetime(2026, 3, 1, 14, 0, 1, 999_999, tzinfo=plus_two)) == (
        "2026-03-01T12:00:01.999Z"
    )
    assert format_date_time(datetime(2026, 3, 1, 12, 0, 0)) == "2026-03-01T12:00:00.000Z"


def test_target_duration_is_the_ceiling() -> None:
    assert target_duration_for([Fraction(2), Fraction(19, 10)]) == 2
    assert target_duration_for([Fraction(2001, 1000)]) == 3
    assert target_duration_for(Fraction(0)) == 1


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.fractions(min_value=0, max_value=100, max_denominator=90_000))
def test_rounded_extinf_never_exceeds_the_target(duration: Fraction) -> None:
    assert rounded_duration(duration) == math.floor(Fraction(format_duration(duration)) + Fraction(1, 2))
    assert rounded_duration(duration) <= target_duration_for([duration])


def test_rendered_playlist() -> None:
    text = render_media_playlist(
        [segment(7, Fraction(2)), segment(8, Fraction(2002, 1000), True), segment(9, Fraction(3, 2))],
        target_duration=3,
        discontinuity_sequence=2,
    )
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:3\n"
        "#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:14.250Z\n"
        "#EXTINF:2.000,\n"
        "seg-000007.ts\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:16.250Z\n"
        "#EXTINF:2.002,\n"
        "seg-000008.ts\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-03-01T12:00:18.250Z\n"
        "#EXTINF:1.500,\n"
        "seg-000009.ts\n"
    )


def test_m3u8_parses_what_we_render() -> None:
    segments = [segment(40, Fraction(2)), segment(41, Fraction(1999, 1000), True), segment(42, Fraction(2))]
    text = render_media_playlist(segments, target_duration=2, discontinuity_sequence=1, ended=True)
    parsed = m3u8.loads(text)
    assert parsed.version == 3
    assert parsed.target_duration == 2
    assert parsed.media_sequence == 40
    assert parsed.discontinuity_sequence == 1
    assert parsed.is_endlist
    assert parsed.is_independent_segments
    assert [s.uri for s in parsed.segments] == ["seg-000040.ts", "seg-000041.ts", "seg-000042.ts"]
    assert [s.duration for s in parsed.segments] == [2.0, 1.999, 2.0]
    assert [s.discontinuity for s in parsed.segments] == [False, True, False]
    assert [s.current_program_date_time for s in parsed.segments] == [s.program_date_time for s in segments]


def test_live_playlist_has_no_endlist_nor_zero_discontinuity_sequence() -> None:
    text = render_media_playlist([segment(0, Fraction(2))], target_duration=2)
    assert "#EXT-X-ENDLIST" not in text and "DISCONTINUITY" not in text
    assert not m3u8.loads(text).is_endlist


def test_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        render_media_playlist([], target_duration=2)
    with pytest.raises(LocalProtocolError):
        render_media_playlist([segment(0, Fraction(5, 2))], target_duration=2)


@settings(deadline=None)
@given(st.fractions(min_value=0, max_value=20, max_denominator=90_000), st.integers(1, 20))
def test_rendered_extinf_and_target_check_match_the_public_helpers(duration: Fraction, target: int) -> None:
    entry = segment(0, duration)
    if rounded_duration(duration) > target:
        with pytest.raises(LocalProtocolError):
            render_media_playlist([entry], target_duration=target)
        return
    text = render_media_playlist([entry], target_duration=target)
    assert f"#EXTINF:{format_duration(duration)}," in text.splitlines()
