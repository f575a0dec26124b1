from __future__ import annotations

from fractions import Fraction

from streamit.hls.segmenter import (
    CLOCK,
    JUMP_TOLERANCE,
    Decision,
    Placement,
    Segmenter,
    SegmenterState,
    segment_name,
)
from streamit.media.frame import TrackKind

V, A = TrackKind.VIDEO, TrackKind.AUDIO
MS = CLOCK // 1000


def feed(segmenter: Segmenter, kind: TrackKind, ms: int, keyframe: bool = False) -> Decision:
    decision = segmenter.decide(kind, ms * MS, keyframe)
    segmenter.accept(kind, ms * MS, decision)
    return decision


def av_segmenter(target: Fraction = Fraction(2)) -> Segmenter:
    segmenter = Segmenter(target)
    segmenter.add_track(V, 40 * MS)
    segmenter.add_track(A, 23 * MS)
    return segmenter


def test_segment_names() -> None:
    assert segment_name(42) == "seg-000042.ts"
    assert segment_name(1_234_567) == "seg-1234567.ts"


def test_nothing_before_tracks_are_declared() -> None:
    segmenter = Segmenter(Fraction(2))
    assert feed(segmenter, V, 0, True).placement is Placement.DROP
    assert segmenter.cut_track is None


def test_everything_before_the_first_keyframe_is_dropped() -> None:
    segmenter = av_segmenter()
    assert feed(segmenter, V, 0).placement is Placement.DROP
    assert feed(segmenter, A, 10).placement is Placement.DROP
    start = feed(segmenter, V, 40, True)
    assert start == Decision(Placement.START, None, False)
    assert feed(segmenter, A, 50).placement is Placement.APPEND
    assert segmenter.state is SegmenterState.OPEN


def test_cut_at_the_first_keyframe_after_the_target() -> None:
    segmenter = av_segmenter()
    feed(segmenter, V, 0, True)
    assert feed(segmenter, V, 1000, True).placement is Placement.APPEND  # keyframe, but too early
    for ms in range(1040, 2000, 40):
        assert feed(segmenter, V, ms).placement is Placement.APPEND
    assert feed(segmenter, V, 2000).placement is Placement.APPEND  # long enough, but no keyframe
    assert feed(segmenter, A, 2010).placement is Placement.APPEND
    cut = feed(segmenter, V, 2040, True)
    assert cut == Decision(Placement.START, Fraction(2040, 1000), False)


def test_audio_only_cuts_on_audio_frames() -> None:
    segmenter = Segmenter(Fraction(1))
    segmenter.add_track(A, 2048)
    placements = [feed(segmenter, A, ms, False) for ms in range(0, 2100, 23)]
    starts = [i * 23 for i, d in enumerate(placements) if d.placement is Placement.START]
    assert starts == [0, 1012, 2024]
    assert segmenter.finish() == Fraction(2093 + 23 - 2024, 1000)


def test_finish_estimates_the_last_frame_duration() -> None:
    segmenter = av_segmenter()
    assert segmenter.finish() is None
    feed(segmenter, V, 0, True)
    assert segmenter.finish() == Fraction(40, 1000)  # nominal, from the track
    feed(segmenter, V, 100, True)
    feed(segmenter, V, 133)
    assert segmenter.finish() == Fraction(166 - 100, 1000)  # the last step seen
    assert segmenter.state is SegmenterState.WAITING


def test_forward_jump_closes_the_segment_and_marks_a_discontinuity() -> None:
    segmenter = av_segmenter()
    feed(segmenter, V, 0, True)
    feed(segmenter, V, 40)
    jump = feed(segmenter, V, 40 + 40 + JUMP_TOLERANCE // MS + 1)
    assert jump == Decision(Placement.DROP, Fraction(80, 1000), True)
    assert feed(segmenter, A, 5000).placement is Placement.DROP
    assert feed(segmenter, V, 5000, True) == Decision(Placement.START, None, True)
    assert feed(segmenter, V, 5040).placement is Placement.APPEND


def test_backward_jump_on_a_keyframe_starts_a_discontinuous_segment_at_once() -> None:
    segmenter = av_segmenter()
    for ms in range(10_000, 10_400, 40):
        feed(segmenter, V, ms, ms == 10_000)
    decision = feed(segmenter, V, 0, True)
    assert decision == Decision(Placement.START, Fraction(400, 1000), True)


def test_gaps_within_the_tolerance_are_no_discontinuity() -> None:
    segmenter = av_segmenter()
    feed(segmenter, V, 0, True)
    assert feed(segmenter, V, 40 + 999).placement is Placement.APPEND
    assert feed(segmenter, V, 1039 - 20).placement is Placement.APPEND  # small step back
    assert feed(segmenter, V, 1019 + 40 + 1000).placement is Placement.APPEND  # 1039 ms was no frame step
    assert feed(segmenter, A, 90_000).placement is Placement.APPEND  # only the cutting track is checked


def test_video_appearing_in_an_audio_only_segment_cuts_at_its_first_keyframe() -> None:
    segmenter = Segmenter(Fraction(2))
    segmenter.add_track(A, 2048)
    feed(segmenter, A, 0)
    feed(segmenter, A, 23)
    segmenter.add_track(V, None)
    assert feed(segmenter, V, 30).placement is Placement.DROP
    assert feed(segmenter, A, 46).placement is Placement.APPEND
    assert feed(segmenter, V, 70, True) == Decision(Placement.START, Fraction(70, 1000), False)
    assert feed(segmenter, A, 69).placement is Placement.APPEND


def test_marked_discontinuity_and_cleared_tracks() -> None:
    segmenter = av_segmenter()
    feed(segmenter, V, 0, True)
    segmenter.finish()
    segmenter.mark_discontinuity()
    segmenter.clear_tracks()
    assert feed(segmenter, V, 0, True).placement is Placement.DROP
    segmenter.add_track(V, None)
    assert feed(segmenter, V, 0, True) == Decision(Placement.START, None, True)
    for ms in range(40, 2000, 40):
        feed(segmenter, V, ms)
    assert feed(segmenter, V, 2000, True) == Decision(Placement.START, Fraction(2), False)


def test_decide_changes_nothing() -> None:
    segmenter = av_segmenter()
    feed(segmenter, V, 0, True)
    for _ in range(3):
        assert segmenter.decide(V, 5000 * MS, True) == Decision(Placement.START, Fraction(40, 1000), True)
    assert segmenter.state is SegmenterState.OPEN
