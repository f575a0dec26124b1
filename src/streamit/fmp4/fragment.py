"""CMAF media fragments: ``moof`` + ``mdat`` for one or more tracks (ISO/IEC 14496-12 §8.8).

Each track fragment is ``traf`` = ``tfhd`` (default-base-is-moof, so data offsets count from the ``moof``'s
first byte, §8.8.7.1), ``tfdt`` version 1 (64-bit baseMediaDecodeTime, §8.8.12) and one ``trun`` version 1
(signed composition time offsets, §8.8.8) stating every sample's duration, size and — for video — flags
and composition offset.  The samples of all tracks follow in one ``mdat``, track after track.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from streamit.errors import LocalProtocolError
from streamit.fmp4.boxes import BOX_HEADER_SIZE, box, full_box
from streamit.fmp4.init import SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC

TFHD_DEFAULT_BASE_IS_MOOF = 0x02_0000

TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_COMPOSITION_TIME_OFFSET = 0x000800

VIDEO_TRUN_FLAGS = (
    TRUN_DATA_OFFSET
    | TRUN_SAMPLE_DURATION
    | TRUN_SAMPLE_SIZE
    | TRUN_SAMPLE_FLAGS
    | TRUN_SAMPLE_COMPOSITION_TIME_OFFSET
)
"""Video samples state everything: sync and non-sync pictures alternate, and B-frames need offsets."""
AUDIO_TRUN_FLAGS = TRUN_DATA_OFFSET | TRUN_SAMPLE_DURATION | TRUN_SAMPLE_SIZE
"""Audio samples are all sync samples: their flags come from ``trex``'s default."""

_pack_video_entry = struct.Struct(">IIIi").pack
_pack_audio_entry = struct.Struct(">II").pack
_U32_MAX = 0xFFFF_FFFF
_S32_MIN, _S32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a track, timed in the track's timescale.

    ``composition_offset`` is PTS − DTS (negative offsets are allowed by ``trun`` version 1).
    """

    decode_time: int
    duration: int
    composition_offset: int
    sync: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class TrackRun:
    """The samples of one track in a fragment, in decode order and contiguous in time."""

    track_id: int
    samples: Sequence[Sample]
    video: bool

    @property
    def base_media_decode_time(self) -> int:
        """The first sample's decode time (``tfdt``)."""
        return self.samples[0].decode_time


def _check(run: TrackRun) -> None:
    if not run.samples:
        raise LocalProtocolError(f"track {run.track_id} has no sample in this fragment")
    expected = run.samples[0].decode_time
    if expected < 0:
        raise LocalProtocolError("a fragment cannot start at a negative decode time")
    for sample in run.samples:
        if sample.decode_time != expected:
            raise LocalProtocolError("the samples of a track run must be contiguous in decode time")
        if not 0 <= sample.duration <= _U32_MAX or len(sample.data) > _U32_MAX:
            raise LocalProtocolError("a sample duration or size does not fit 32 bits")
        if not _S32_MIN <= sample.composition_offset <= _S32_MAX:
            raise LocalProtocolError("a composition offset does not fit 32 bits")
        expected += sample.duration


def _trun(run: TrackRun, data_offset: int) -> bytes:
    samples = run.samples
    if run.video:
        entries = b"".join(
            _pack_video_entry(
                s.duration,
                len(s.data),
                SAMPLE_FLAGS_SYNC if s.sync else SAMPLE_FLAGS_NON_SYNC,
                s.composition_offset,
            )
            for s in samples
        )
        flags = VIDEO_TRUN_FLAGS
    else:
        entries = b"".join(_pack_audio_entry(s.duration, len(s.data)) for s in samples)
        flags = AUDIO_TRUN_FLAGS
    return full_box(b"trun", 1, flags, struct.pack(">Ii", len(samples), data_offset), entries)


def _traf(run: TrackRun, data_offset: int) -> bytes:
    return box(
        b"traf",
        full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", run.track_id)),
        full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_media_decode_time)),
        _trun(run, data_offset),
    )


def media_fragment(sequence_number: int, runs: Sequence[TrackRun]) -> bytes:
    """``moof`` + ``mdat`` carrying ``runs`` (at least one, each with at least one sample).

    ``sequence_number`` (``mfhd``, §8.8.5) must increase from fragment to fragment of the stream.
    """
    if not runs:
        raise LocalProtocolError("a media fragment needs at least one track run")
    if not 0 <= sequence_number <= _U32_MAX:
        raise LocalProtocolError("the fragment sequence number does not fit 32 bits")
    for run in runs:
        _check(run)
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence_number))
    # The moof's size does not depend on the data offsets it states (fixed-width fields), so it is built
    # once with zero offsets to learn its size, then again with the real offsets.
    moof_size = len(box(b"moof", mfhd, *(_traf(run, 0) for run in runs)))
    offset = moof_size + BOX_HEADER_SIZE
    trafs: list[bytes] = []
    for run in runs:
        trafs.append(_traf(run, offset))
        offset += sum(len(sample.data) for sample in run.samples)
    if offset > _S32_MAX:
        raise LocalProtocolError("a media fragment larger than 2 GiB cannot state its data offsets")
    payload = [sample.data for run in runs for sample in run.samples]
    return box(b"moof", mfhd, *trafs) + box(b"mdat", *payload)
