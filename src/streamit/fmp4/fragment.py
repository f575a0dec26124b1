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
from streamit.fmp4.boxes import BOX_HEADER_SIZE
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

_MFHD_SIZE = 16
_TFHD_SIZE = 16
_TFDT_SIZE = 20
_TRUN_HEAD_SIZE = 20
_MOOF_HEAD = struct.Struct(">I4sI4sII")
"""``moof``'s header and its ``mfhd`` (version 0, no flags, the sequence number)."""
_TRAF_HEAD = struct.Struct(">I4s" + "I4sII" + "I4sIQ" + "I4sIIi")
"""``traf``'s header, ``tfhd`` (track ID), ``tfdt`` v1 (64-bit base time) and ``trun``'s fields up to its
entries (version and flags, sample count, data offset)."""
_MOOF_HEAD_SIZE = _MOOF_HEAD.size
_TRAF_HEAD_SIZE = _TRAF_HEAD.size
_VIDEO_ENTRY_FORMAT = "IIIi"
"""A video ``trun`` entry: duration, size, flags, composition offset."""
_AUDIO_ENTRY_FORMAT = "II"
"""An audio ``trun`` entry: duration, size."""
_VIDEO_ENTRY_SIZE = struct.calcsize(">" + _VIDEO_ENTRY_FORMAT)
_AUDIO_ENTRY_SIZE = struct.calcsize(">" + _AUDIO_ENTRY_FORMAT)
_pack_moof_head = _MOOF_HEAD.pack_into
_pack_box_head = struct.Struct(">I4s").pack_into
_TRAF_CACHE_SAMPLES = 512
"""Runs of up to this many samples keep their compiled ``traf`` layout (a part holds a few dozen)."""
_traf_layouts: dict[int, struct.Struct] = {}
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


def _traf_layout(count: int, video: bool) -> struct.Struct:
    """The ``traf`` of a run of ``count`` samples as one layout: boxes' heads, then every ``trun`` entry."""
    key = count << 1 | video
    layout = _traf_layouts.get(key)
    if layout is None:
        entry = _VIDEO_ENTRY_FORMAT if video else _AUDIO_ENTRY_FORMAT
        layout = struct.Struct(_TRAF_HEAD.format + entry * count)
        if count <= _TRAF_CACHE_SAMPLES:
            _traf_layouts[key] = layout
    return layout


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """The samples of one track in a fragment as columns, without an object per sample.

    The samples follow each other in decode time from ``decode_time``; ``flags`` holds each sample's
    ``sample_flags`` (§8.8.3.1) and, like ``composition_offsets``, is only written for video.
    """

    track_id: int
    video: bool
    decode_time: int
    durations: Sequence[int]
    composition_offsets: Sequence[int]
    flags: Sequence[int]
    data: Sequence[bytes]


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


def media_fragment(sequence_number: int, runs: Sequence[TrackRun]) -> bytes:
    """``moof`` + ``mdat`` carrying ``runs`` (at least one, each with at least one sample).

    ``sequence_number`` (``mfhd``, §8.8.5) must increase from fragment to fragment of the stream.
    """
    columns: list[SampleColumns] = []
    for run in runs:
        _check(run)
        samples = run.samples
        columns.append(
            SampleColumns(
                run.track_id,
                run.video,
                samples[0].decode_time,
                [sample.duration for sample in samples],
                [sample.composition_offset for sample in samples],
                [SAMPLE_FLAGS_SYNC if sample.sync else SAMPLE_FLAGS_NON_SYNC for sample in samples],
                [sample.data for sample in samples],
            )
        )
    return b"".join(fragment_chunks(sequence_number, columns))


def fragment_chunks(sequence_number: int, runs: Sequence[SampleColumns]) -> list[bytes]:
    """The bytes of :func:`media_fragment` as pieces to write or join: ``moof`` and ``mdat``'s header, then
    the samples' data (the caller's own bytes objects, not copies).

    Runs are at least one, each with at least one sample; their continuity in decode time is the caller's
    to keep (a :class:`~streamit.fmp4.samples.SampleQueue` keeps it).
    """
    if not runs:
        raise LocalProtocolError("a media fragment needs at least one track run")
    if not 0 <= sequence_number <= _U32_MAX:
        raise LocalProtocolError("the fragment sequence number does not fit 32 bits")
    # Every field has a fixed width, so the sizes (and the data offsets they lead to) are known before
    # anything is written: the moof is packed once into a buffer of its exact size, a traf at a time.
    moof_size = _MOOF_HEAD_SIZE
    total = 0
    sizes: list[list[int]] = []
    for run in runs:
        count = len(run.data)
        if not count:
            raise LocalProtocolError(f"track {run.track_id} has no sample in this fragment")
        if run.decode_time < 0:
            raise LocalProtocolError("a fragment cannot start at a negative decode time")
        moof_size += _TRAF_HEAD_SIZE + count * (_VIDEO_ENTRY_SIZE if run.video else _AUDIO_ENTRY_SIZE)
        run_sizes = list(map(len, run.data))
        sizes.append(run_sizes)
        total += sum(run_sizes)
    data_offset = moof_size + BOX_HEADER_SIZE
    if data_offset + total > _S32_MAX:
        raise LocalProtocolError("a media fragment larger than 2 GiB cannot state its data offsets")
    buffer = bytearray(data_offset)
    _pack_moof_head(buffer, 0, moof_size, b"moof", _MFHD_SIZE, b"mfhd", 0, sequence_number)
    position = _MOOF_HEAD_SIZE
    chunks: list[bytes] = [b""]
    for run, run_sizes in zip(runs, sizes, strict=True):
        video = run.video
        count = len(run_sizes)
        # The trun entries interleave the columns: slice assignment does it without a loop per sample.
        if video:
            entries: list[int] = [0] * (count * 4)
            entries[0::4] = run.durations
            entries[1::4] = run_sizes
            entries[2::4] = run.flags
            entries[3::4] = run.composition_offsets
            trun_flags = VIDEO_TRUN_FLAGS
        else:
            entries = [0] * (count * 2)
            entries[0::2] = run.durations
            entries[1::2] = run_sizes
            trun_flags = AUDIO_TRUN_FLAGS
        layout = _traf_layout(count, video)
        trun_size = layout.size - _TRAF_HEAD_SIZE + _TRUN_HEAD_SIZE
        try:
            layout.pack_into(
                buffer,
                position,
                layout.size,
                b"traf",
                _TFHD_SIZE,
                b"tfhd",
                TFHD_DEFAULT_BASE_IS_MOOF,
                run.track_id,
                _TFDT_SIZE,
                b"tfdt",
                1 << 24,
                run.decode_time,
                trun_size,
                b"trun",
                (1 << 24) | trun_flags,
                count,
                data_offset,
                *entries,
            )
        except struct.error as exc:
            raise LocalProtocolError(
                "a sample duration, size or composition offset does not fit 32 bits"
            ) from exc
        position += layout.size
        data_offset += sum(run_sizes)
        chunks.extend(run.data)
    _pack_box_head(buffer, moof_size, BOX_HEADER_SIZE + total, b"mdat")
    chunks[0] = bytes(buffer)
    return chunks
