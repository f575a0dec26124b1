"""SampleQueue: exact conversion to the track timescale and durations from the next frame."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.fmp4 import Sample, SampleQueue
from streamit.media.frame import MILLISECONDS, Frame, TrackKind
from tests.fmp4.flv_media import MONO_44K_FLV, demux_file


def video(dts: int, pts: int | None = None, keyframe: bool = False) -> Frame:
    return Frame(TrackKind.VIDEO, dts if pts is None else pts, dts, MILLISECONDS, keyframe, b"x")


def test_the_newest_frame_is_held_back_until_its_successor() -> None:
    queue = SampleQueue(90_000, 3000)
    assert queue.push(video(0, 80, True), True) == 0
    assert queue.take(10**9) == [] and queue.pending_decode_time == 0
    queue.push(video(40, 160), False)
    assert queue.take(10**9) == [Sample(0, 3600, 7200, True, b"x")]
    assert queue.pending_decode_time == 3600 and queue.last_step == 3600


def test_take_stops_at_the_cut() -> None:
    queue = SampleQueue(90_000, 3000)
    for ms in (0, 40, 80, 120):
        queue.push(video(ms), ms == 0)
    assert [s.decode_time for s in queue.take(3600)] == [0]
    assert [s.decode_time for s in queue.take(3601)] == [3600]
    assert [s.decode_time for s in queue.take(10**9)] == [7200]


def test_flush_guesses_the_last_duration() -> None:
    queue = SampleQueue(90_000, 3000)
    queue.push(video(0), True)
    assert queue.flush() == [Sample(0, 3000, 0, True, b"x")]  # nominal: no step seen yet
    for ms in (1000, 1033, 1067):
        queue.push(video(ms), False)
    assert [s.duration for s in queue.flush()] == [2970, 3060, 3060]  # last step repeated
    assert queue.flush() == [] and queue.pending_decode_time is None


def test_conversion_is_exact_and_drift_free_at_44100_hz() -> None:
    # Millisecond timestamps at 44.1 kHz are not whole ticks; each is rounded down on its own, so the
    # durations sum to the last converted timestamp exactly.
    media = demux_file(MONO_44K_FLV)
    frames = media.of(TrackKind.AUDIO)
    queue = SampleQueue(44_100, 1024)
    for frame in frames:
        queue.push(frame, True)
    samples = queue.flush()
    assert [s.decode_time for s in samples] == [f.dts * 441 // 10 for f in frames]
    for earlier, later in itertools.pairwise(samples):
        assert earlier.decode_time + earlier.duration == later.decode_time
    assert all(s.data == f.data for s, f in zip(samples, frames, strict=True))


def test_other_time_bases() -> None:
    queue = SampleQueue(90_000, 3000)
    frame = Frame(TrackKind.VIDEO, 1001 * 3, 1001, Fraction(1, 30_000), True, b"x")
    queue.push(frame, True)
    assert queue.pending_decode_time == 3003
    assert queue.flush()[0].composition_offset == 6006


def test_dts_going_backwards_is_refused_and_changes_nothing() -> None:
    queue = SampleQueue(90_000, 3000)
    queue.push(video(100), True)
    with pytest.raises(RemoteProtocolError):
        queue.push(video(99), False)
    with pytest.raises(RemoteProtocolError):
        queue.push(video(-5), False)
    assert queue.pending_decode_time == 9000 and queue.take(10**9) == []


def test_invalid_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        SampleQueue(0, 1)
