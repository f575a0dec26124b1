"""LL-HLS media playlist rendering (RFC 8216bis), checked with the m3u8 package and line by line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import m3u8
import pytest

from streamit.errors import LocalProtocolError
from streamit.hls.llhls import (
    LlHlsPlaylist,
    OpenSegment,
    PartEntry,
    SegmentEntry,
    format_decimal,
    render_llhls_playlist,
    target_duration_for_segments,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PART = Fraction(1, 3)


def parts(msn: int, count: int) -> tuple[PartEntry, ...]:
    return tuple(PartEntry(msn, i, f"p{msn}.{i}.m4s", PART, i % 3 == 0) for i in range(count))


def segment(msn: int, init: str = "init.mp4", discontinuity: bool = False) -> SegmentEntry:
    return SegmentEntry(
        msn,
        f"s{msn}.m4s",
        Fraction(2),
        START + timedelta(seconds=2 * msn),
        parts(msn, 6),
        init,
        discontinuity,
    )


def playlist(count: int, open_parts: int = 2, first: int = 0, ended: bool = False) -> LlHlsPlaylist:
    msn = first + count
    return LlHlsPlaylist(
        segments=[segment(first + i) for i in range(count)],
        open_segment=OpenSegment(
            msn,
            START + timedelta(seconds=2 * msn),
            parts(msn, open_parts),
            f"p{msn}.{open_parts}.m4s",
            "init.mp4",
        ),
        target_duration=2,
        part_target=Fraction(33, 100) + Fraction(1, 100),
        ended=ended,
    )


def test_format_decimal() -> None:
    assert format_decimal(Fraction(33, 100)) == "0.33"
    assert format_decimal(Fraction(1, 3)) == "0.33333"
    assert format_decimal(Fraction(2)) == "2"
    assert format_decimal(Fraction(12)) == "12"
    assert format_decimal(Fraction(3, 200000)) == "0.00002"  # rounded to the nearest (ties to even)
    assert target_duration_for_segments(Fraction(2), Fraction(21, 10)) == 3
    assert target_duration_for_segments(Fraction(2), Fraction(1)) == 2


def test_header_and_server_control() -> None:
    text = render_llhls_playlist(playlist(3))
    lines = text.splitlines()
    assert lines[:9] == [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,PART-HOLD-BACK=1.02",
        "#EXT-X-PART-INF:PART-TARGET=0.34",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
        "#EXT-X-PROGRAM-DATE-TIME:2024-05-01T12:00:00.000Z",
    ]
    parsed = m3u8.loads(text)
    assert parsed.version == 9 and parsed.target_duration == 2 and parsed.media_sequence == 0
    assert parsed.server_control.can_block_reload == "YES"
    assert parsed.server_control.can_skip_until == 12
    assert parsed.server_control.part_hold_back >= 3 * parsed.part_inf.part_target
    assert parsed.server_control.can_skip_until >= 6 * parsed.target_duration
    assert parsed.segment_map[0].uri == "init.mp4"


def test_parts_and_preload_hint_follow_the_ll_hls_rules() -> None:
    parsed = m3u8.loads(render_llhls_playlist(playlist(3)))
    part_target = parsed.part_inf.part_target
    listed = [part for seg in parsed.segments for part in seg.parts]
    assert [p.uri for p in listed] == [f"p{m}.{i}.m4s" for m in range(3) for i in range(6)] + [
        "p3.0.m4s",
        "p3.1.m4s",
    ]
    assert all(p.duration <= part_target for p in listed)
    assert [p.independent == "YES" for p in listed] == [i % 3 == 0 for m in range(3) for i in range(6)] + [
        True,
        False,
    ]
    # The preload hint names the next part of the open segment.
    assert (parsed.preload_hint.hint_type, parsed.preload_hint.uri) == ("PART", "p3.2.m4s")
    complete = [seg for seg in parsed.segments if seg.uri]
    assert [seg.uri for seg in complete] == ["s0.m4s", "s1.m4s", "s2.m4s"]
    assert all(seg.duration == 2 and seg.program_date_time is not None for seg in complete)


def test_old_segments_lose_their_part_lines() -> None:
    text = render_llhls_playlist(playlist(8))
    # The playlist ends 16 s + 2 parts in; parts are kept for segments ending within 6 s of that.
    assert "p4.0.m4s" not in text and 'URI="p5.0.m4s"' in text
    assert "s0.m4s" in text


def test_delta_update_skips_segments_older_than_can_skip_until() -> None:
    full = playlist(10)  # ends at 20 s + 2/3 s; the skip boundary is 12 s before that
    text = render_llhls_playlist(full, skip=True)
    parsed = m3u8.loads(text)
    assert parsed.skip.skipped_segments == 4  # segments 0-3 end at or before 8.67 s
    assert parsed.media_sequence == 0
    assert next(seg.uri for seg in parsed.segments if seg.uri) == "s4.m4s"
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=4" in text and "s3.m4s" not in text
    # The first listed segment after the skip states its map.
    assert text.index("#EXT-X-SKIP") < text.index('#EXT-X-MAP:URI="init.mp4"') < text.index("s4.m4s")
    # Nothing to skip: a full playlist, without EXT-X-SKIP.
    assert render_llhls_playlist(playlist(3), skip=True) == render_llhls_playlist(playlist(3))


def test_ended_playlist_has_no_preload_hint() -> None:
    ended = LlHlsPlaylist([segment(0), segment(1)], None, 2, Fraction(34, 100), ended=True)
    text = render_llhls_playlist(ended)
    assert text.endswith("s1.m4s\n#EXT-X-ENDLIST\n") and "PRELOAD-HINT" not in text
    assert m3u8.loads(text).is_endlist


def test_init_changes_and_discontinuities() -> None:
    state = LlHlsPlaylist(
        [segment(0), segment(1, "init-1.mp4", discontinuity=True)],
        OpenSegment(2, START, parts(2, 1), "p2.1.m4s", "init-1.mp4"),
        2,
        Fraction(34, 100),
        discontinuity_sequence=3,
    )
    text = render_llhls_playlist(state)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:3" in text
    lines = text.splitlines()
    position = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[position + 1] == '#EXT-X-MAP:URI="init-1.mp4"'
    assert text.count("#EXT-X-MAP") == 2
    parsed = m3u8.loads(text)
    assert [m.uri for m in parsed.segment_map] == ["init.mp4", "init-1.mp4"]


def test_only_parts_yet() -> None:
    state = LlHlsPlaylist(
        [], OpenSegment(0, START, parts(0, 1), "p0.1.m4s", "init.mp4"), 2, Fraction(34, 100)
    )
    parsed = m3u8.loads(render_llhls_playlist(state))
    assert parsed.media_sequence == 0 and parsed.preload_hint.uri == "p0.1.m4s"


@pytest.mark.parametrize(
    "state",
    [
        LlHlsPlaylist([], None, 2, Fraction(1, 3)),
        LlHlsPlaylist([], OpenSegment(0, START, (), "p0.0.m4s", "init.mp4"), 2, Fraction(1, 3)),
        LlHlsPlaylist([segment(0)], None, 2, Fraction(1, 4)),  # parts of 1/3 s > 1/4 s
        LlHlsPlaylist([segment(0)], None, 1, Fraction(1, 2)),  # 2 s segment > target 1
        LlHlsPlaylist(  # an open part longer than the part target
            [segment(0)],
            OpenSegment(
                1, START, (PartEntry(1, 0, "p1.0.m4s", Fraction(1, 2), True),), "p1.1.m4s", "init.mp4"
            ),
            2,
            Fraction(1, 3),
        ),
    ],
)
def test_states_that_break_the_rules_are_refused(state: LlHlsPlaylist) -> None:
    with pytest.raises(LocalProtocolError):
        render_llhls_playlist(state)


def test_same_names_with_other_timing_render_their_own_lines() -> None:
    # The renderer caches lines by entry: streams share names (seg-000001.m4s, part-000001-0.m4s, ...).
    first = playlist(3)
    assert render_llhls_playlist(first) == render_llhls_playlist(
        LlHlsPlaylist(tuple(first.segments), first.open_segment, 2, first.part_target)
    )
    shorter = [
        SegmentEntry(
            s.msn,
            s.uri,
            Fraction(3, 2),
            s.program_date_time,
            tuple(PartEntry(p.msn, p.index, p.uri, Fraction(1, 4), p.independent) for p in s.parts),
            s.init_uri,
        )
        for s in first.segments
    ]
    text = render_llhls_playlist(LlHlsPlaylist(shorter, first.open_segment, 2, first.part_target))
    parsed = m3u8.loads(text)
    assert [s.duration for s in parsed.segments][:3] == [1.5, 1.5, 1.5]
    assert "#EXT-X-PART:DURATION=0.25," in text and "DURATION=0.33333" in text  # the open segment's parts
