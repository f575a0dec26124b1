"""Frame: a frozen value object (equality, hashing, dataclasses.replace) despite its cheap constructor."""

from __future__ import annotations

import dataclasses

import pytest

from streamit.media.frame import MILLISECONDS, Frame, TrackKind


def test_frames_compare_hash_and_replace_by_their_fields() -> None:
    frame = Frame(TrackKind.VIDEO, 40, 0, MILLISECONDS, True, b"\x00\x00\x00\x01\x65")
    same = Frame(track=TrackKind.VIDEO, pts=40, dts=0, time_base=MILLISECONDS, keyframe=True, data=frame.data)
    assert frame == same
    assert hash(frame) == hash(same)
    later = dataclasses.replace(frame, pts=80, dts=40)
    assert (later.pts, later.dts, later.data) == (80, 40, frame.data)
    assert later != frame
    assert [field.name for field in dataclasses.fields(Frame)] == [
        "track",
        "pts",
        "dts",
        "time_base",
        "keyframe",
        "data",
    ]
    assert "pts=40" in repr(frame)


def test_frames_are_frozen() -> None:
    frame = Frame(TrackKind.AUDIO, 0, 0, MILLISECONDS, True, b"\x21")
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.pts = 1  # type: ignore[misc]
