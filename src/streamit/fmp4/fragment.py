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
_VIDEO_ENTRY = struct.Struct(">IIIi")
_AUDIO_ENTRY = struct.Struct(">II")
_VIDEO_ENTRY_SIZE = _VIDEO_ENTRY.size
_AUDIO_ENTRY_SIZE = _AUDIO_ENTRY.size
_pack_moof_head = _MOOF_HEAD.pack_into
_pack_traf_head = _TRAF_HEAD.pack_into
_pack_video_entry = _VIDEO_ENTRY.pack_into
_pack_audio_entry = _AUDIO_ENTRY.pack_into
_pack_box_head = struct.Struct(">I4s").pack_into
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


def media_fragment(sequence_number: int, runs: Sequence[TrackRun]) -> bytes:
    """``moof`` + ``mdat`` carrying ``runs`` (at least one, each with at least one sample).

    ``sequence_number`` (``mfhd``, §8.8.5) must increase from fragment to fragment of the stream.
    """
    if not runs:
        raise LocalProtocolError("a media fragment needs at least one track run")
    if not 0 <= sequence_number <= _U32_MAX:
        raise LocalProtocolError("the fragment sequence number does not fit 32 bits")
    # Every field has a fixed width, so the sizes (and the data offsets they lead to) are known before
    # anything is written: the moof is packed once into a buffer of its exact size.
    moof_size = _MOOF_HEAD_SIZE
    total = 0
    for run in runs:
        samples = run.samples
        if not samples or samples[0].decode_time < 0:
            _check(run)  # raises with the reason
        moof_size += _TRAF_HEAD_SIZE + len(samples) * (_VIDEO_ENTRY_SIZE if run.video else _AUDIO_ENTRY_SIZE)
        total += sum([len(sample.data) for sample in samples])
    data_offset = moof_size + BOX_HEADER_SIZE
    if data_offset + total > _S32_MAX:
        raise LocalProtocolError("a media fragment larger than 2 GiB cannot state its data offsets")
    buffer = bytearray(data_offset)
    _pack_moof_head(buffer, 0, moof_size, b"moof", _MFHD_SIZE, b"mfhd", 0, sequence_number)
    position = _MOOF_HEAD_SIZE
    payload: list[bytes | bytearray] = [buffer]
    for run in runs:
        samples = run.samples
        video = run.video
        count = len(samples)
        trun_size = _TRUN_HEAD_SIZE + count * (_VIDEO_ENTRY_SIZE if video else _AUDIO_ENTRY_SIZE)
        expected = samples[0].decode_time
        _pack_traf_head(
            buffer,
            position,
            _TRAF_HEAD_SIZE - _TRUN_HEAD_SIZE + trun_size,
            b"traf",
            _TFHD_SIZE,
            b"tfhd",
            TFHD_DEFAULT_BASE_IS_MOOF,
            run.track_id,
            _TFDT_SIZE,
            b"tfdt",
            1 << 24,
            expected,
            trun_size,
            b"trun",
            (1 << 24) | (VIDEO_TRUN_FLAGS if video else AUDIO_TRUN_FLAGS),
            count,
            data_offset,
        )
        position += _TRAF_HEAD_SIZE
        for sample in samples:
            duration = sample.duration
            offset = sample.composition_offset
            if (
                sample.decode_time != expected
                or not 0 <= duration <= _U32_MAX
                or not _S32_MIN <= offset <= _S32_MAX
            ):
                _check(run)  # raises with the reason
            data = sample.data
            size = len(data)
            if video:
                flags = SAMPLE_FLAGS_SYNC if sample.sync else SAMPLE_FLAGS_NON_SYNC
                _pack_video_entry(buffer, position, duration, size, flags, offset)
                position += _VIDEO_ENTRY_SIZE
            else:
                _pack_audio_entry(buffer, position, duration, size)
                position += _AUDIO_ENTRY_SIZE
            expected += duration
            data_offset += size
            payload.append(data)
    _pack_box_head(buffer, moof_size, BOX_HEADER_SIZE + total, b"mdat")
    return b"".join(payload)
