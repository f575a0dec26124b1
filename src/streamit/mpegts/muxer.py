"""MPEG-2 transport stream muxer for one H.264 + AAC program (ISO/IEC 13818-1).

Timing model (all in the 90 kHz clock, modulo 2**33):

* ``PTS/DTS = frame timestamp + TIMESTAMP_OFFSET`` (1 s), a constant so that stream starts at 0 leave room
  for a PCR that precedes them.
* ``PCR = DTS of the PES that carries it - PCR_LEAD`` (100 ms), so PTS ≥ DTS ≥ PCR + 100 ms for the PCR
  track.  RTMP interleaves tracks by DTS, so the other track stays ahead of the PCR as well.
* PCR is written on the PCR PID (video, or audio for an audio-only program) on keyframes, on the first PES
  after :meth:`TsMuxer.psi`, and whenever waiting one more frame would leave more than 100 ms between PCRs
  (ISO/IEC 13818-1 §2.7.2).  A PCR that goes backwards (republish) carries the discontinuity_indicator.

Audio grouping (``audio_frames_per_pes`` > 1, as ffmpeg and nginx-rtmp do): consecutive AAC frames share
one PES, whose PTS is its first frame's; a demuxer derives the others from the ADTS frame durations.  A
group is written out when it is full, before a frame that does not follow on in time (gap, jump, different
PTS-DTS offset), before a video PES whose DTS is ``PCR_LEAD`` or more past the group's first DTS (so every
audio PES still arrives before its PTS: PTS ≥ PCR, ISO/IEC 13818-1 §2.4.2), in an audio-only program
before its PES would span more than ``PCR_MAX_INTERVAL`` (the PCRs it carries stay 100 ms apart), and on
:meth:`TsMuxer.flush_audio`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction

from streamit.errors import LocalProtocolError, RemoteProtocolError, UnsupportedCodec
from streamit.media.aac import ADTS_HEADER_SIZE, SAMPLING_FREQUENCIES, AdtsWriter
from streamit.media.frame import MPEG_TS_CLOCK, AudioConfig, Frame, TrackKind, VideoConfig
from streamit.media.h264 import START_CODE, NalUnitType
from streamit.mpegts.annexb import ACCESS_UNIT_DELIMITER, access_unit_split, parameter_sets_annexb
from streamit.mpegts.psi import NULL_PID, pat_section, pmt_section

TS_PACKET_SIZE = 188
TS_PAYLOAD_SIZE = 184
SYNC_BYTE = 0x47

PAT_PID = 0x0000
PMT_PID = 0x1000
VIDEO_PID = 0x0100
AUDIO_PID = 0x0101
TRANSPORT_STREAM_ID = 1
PROGRAM_NUMBER = 1

STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_AAC_ADTS = 0x0F
VIDEO_STREAM_ID = 0xE0
AUDIO_STREAM_ID = 0xC0

TIMESTAMP_OFFSET = 90_000
"""Added to every PTS/DTS (1 s): keeps the first PCR, ``PCR_LEAD`` earlier, non-negative."""

PCR_LEAD = 9_000
"""PCR runs 100 ms behind the DTS of the PES that carries it."""

PCR_MAX_INTERVAL = 9_000
"""ISO/IEC 13818-1 §2.7.2: PCRs at most 100 ms apart."""

TIMESTAMP_MODULUS = 1 << 33
_TIMESTAMP_MASK = TIMESTAMP_MODULUS - 1  # x & mask == x % modulus for every int, negative ones included

_AF_DISCONTINUITY = 0x80
_AF_RANDOM_ACCESS = 0x40
_AF_PCR = 0x10
_RANDOM_ACCESS_ONLY = bytes((_AF_RANDOM_ACCESS,))

# adaptation field flags, then program_clock_reference_base (33 bits), 6 reserved bits and a zero
# extension (ISO/IEC 13818-1 §2.4.3.5).
_pack_pcr_field = struct.Struct(">BIH").pack

_VIDEO = TrackKind.VIDEO
_AUDIO = TrackKind.AUDIO

_NAL_NON_IDR_SLICE = int(NalUnitType.NON_IDR_SLICE)
_unpack_nal_length = struct.Struct(">I").unpack_from

AAC_FRAME_SAMPLES = 1024
"""Samples per AAC-LC frame (ISO/IEC 14496-3 §4.5.1.1)."""


def _stuffing_adaptation_field(payload_size: int) -> bytes:
    """An adaptation field that pads a packet carrying ``payload_size`` payload bytes to 188 bytes."""
    field_size = TS_PAYLOAD_SIZE - payload_size
    if field_size == 1:
        return b"\x00"  # adaptation_field_length 0: the length byte alone is the stuffing
    return bytes((field_size - 1, 0x00)) + b"\xff" * (field_size - 2)


_STUFFING = tuple(_stuffing_adaptation_field(size) for size in range(TS_PAYLOAD_SIZE))
_LENGTH_BYTES = tuple(bytes((length,)) for length in range(TS_PAYLOAD_SIZE))


# packet_start_code_prefix, stream_id, PES_packet_length, '10' marker + data_alignment_indicator (every PES
# starts with a whole access unit), PTS_DTS_flags, PES_header_data_length, then the 5-byte timestamps.
_pack_pes_pts = struct.Struct(">3sBHBBBBHH").pack
_pack_pes_pts_dts = struct.Struct(">3sBHBBBBHHBHH").pack
# The same, for video (start code prefix and stream_id as one string, then PES_packet_length 0, the flag
# bytes as one string): the access unit delimiter that starts every access unit follows.
_pack_video_pts = struct.Struct(">4sH3sBHH6s").pack
_pack_video_pts_dts = struct.Struct(">4sH3sBHHBHH6s").pack
_PES_START_VIDEO = bytes((0x00, 0x00, 0x01, VIDEO_STREAM_ID))
_PES_PTS_FLAGS = bytes((0x84, 0x80, 5))
_PES_PTS_DTS_FLAGS = bytes((0x84, 0xC0, 10))
# An audio PES header with PTS only, then the 7-byte ADTS header of its one AAC frame: the constant bytes
# as strings, the ADTS header's first 3 (fixed) bytes, then its last 4, which hold aac_frame_length.
_pack_audio_pts_adts = struct.Struct(">4sH3sBHH3sI").pack
_AUDIO_PES_START = bytes((0x00, 0x00, 0x01, AUDIO_STREAM_ID))
_AUDIO_PES_FLAGS = bytes((0x84, 0x80, 5))
_AUDIO_HEADER_SIZE = 14 + ADTS_HEADER_SIZE
_AUDIO_FIRST_TAKE = TS_PAYLOAD_SIZE - _AUDIO_HEADER_SIZE
"""Bytes of an AAC frame in the first packet of its PES (after the PES and ADTS headers)."""
# A whole first packet of such a PES: the 4-byte packet header, the above, then the frame's first bytes.
_pack_audio_first_packet = struct.Struct(f">4s4sH3sBHH3sI{_AUDIO_FIRST_TAKE}s").pack

_ADTS_LENGTH_FIELD = 0x1FFF << 13  # aac_frame_length in the 56-bit ADTS header
_ADTS_MAX_PAYLOAD = 0x1FFF - ADTS_HEADER_SIZE


def pes_header(stream_id: int, pts: int, dts: int, payload_size: int | None) -> bytes:
    """A PES header (ISO/IEC 13818-1 §2.4.3.6) with PTS, and DTS only when it differs from PTS.

    ``pts``/``dts`` are 33-bit 90 kHz values.  ``payload_size`` ``None`` writes PES_packet_length 0
    (unbounded, allowed for video only); so does a payload too large for the 16-bit field.
    """
    if pts == dts:
        length = 0 if payload_size is None or payload_size > 0xFFFF - 8 else payload_size + 8
        return _pack_pes_pts(
            b"\x00\x00\x01",
            stream_id,
            length,
            0x84,
            0x80,
            5,
            0x21 | ((pts >> 29) & 0x0E),
            ((pts >> 14) & 0xFFFE) | 1,
            ((pts << 1) & 0xFFFE) | 1,
        )
    length = 0 if payload_size is None or payload_size > 0xFFFF - 13 else payload_size + 13
    return _pack_pes_pts_dts(
        b"\x00\x00\x01",
        stream_id,
        length,
        0x84,
        0xC0,
        10,
        0x31 | ((pts >> 29) & 0x0E),
        ((pts >> 14) & 0xFFFE) | 1,
        ((pts << 1) & 0xFFFE) | 1,
        0x11 | ((dts >> 29) & 0x0E),
        ((dts >> 14) & 0xFFFE) | 1,
        ((dts << 1) & 0xFFFE) | 1,
    )


_SPLIT_BLOCK = 128
"""Most continuation packets cut from a payload by one ``struct`` call; longer payloads take several."""

_SEPARATOR_JOIN_MIN = 4
"""Continuation packets from which joining with a separator and patching the counters is the cheaper way."""

_COUNTER_RUN = bytes(0x10 | (i & 0xF) for i in range(16 + 4096))
"""Byte 3 (payload only, continuity counter) of successive packets, sliced for runs of up to 4096."""

_splitters: dict[int, Callable[[bytes, int], tuple[bytes, ...]]] = {}


def _splitter(count: int) -> Callable[[bytes, int], tuple[bytes, ...]]:
    """``unpack_from`` cutting ``count`` consecutive 184-byte packet payloads in one C call."""
    unpack = _splitters.get(count)
    if unpack is None:
        unpack = _splitters[count] = struct.Struct(f"{TS_PAYLOAD_SIZE}s" * count).unpack_from
    return unpack


class _PidWriter:
    """Packetises payloads of one PID, with precomputed 4-byte headers for each continuity counter."""

    __slots__ = (
        "_adapted",
        "_adapted_start",
        "_interleaved",
        "_plain",
        "_plain_cycle",
        "_plain_start",
        "_separator",
        "cc",
        "pid",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cc = 0

        def headers(start: bool, adaptation: bool) -> tuple[bytes, ...]:
            first = bytes((SYNC_BYTE, (0x40 if start else 0) | (pid >> 8), pid & 0xFF))
            control = 0x30 if adaptation else 0x10
            return tuple(first + bytes((control | cc,)) for cc in range(16))

        self._plain = headers(False, False)
        # Joins continuation packets; byte 3 (the counter) of each is overwritten afterwards.
        self._separator = bytearray(self._plain[0])
        # The continuation headers of up to _SPLIT_BLOCK packets from any counter, as one tuple slice.
        self._plain_cycle = self._plain * ((15 + _SPLIT_BLOCK) // 16 + 1)
        self._plain_start = headers(True, False)
        self._interleaved = _interleaved_headers(pid, self._plain)
        self._adapted = headers(False, True)
        self._adapted_start = headers(True, True)

    def packetize(self, payload: bytes, adaptation: bytes = b"") -> bytes | bytearray:
        """TS packets carrying ``payload`` from its first byte (payload_unit_start_indicator set).

        ``adaptation`` is the content of the first packet's adaptation field after its length byte
        (flags and PCR); the last packet is padded with adaptation-field stuffing.
        """
        size = len(payload)
        cc = self.cc
        if adaptation:
            room = TS_PAYLOAD_SIZE - 1 - len(adaptation)
            if size < room:
                self.cc = (cc + 1) & 0xF
                padding = room - size
                length = bytes((len(adaptation) + padding,))
                return b"".join((self._adapted_start[cc], length, adaptation, b"\xff" * padding, payload))
            first = [self._adapted_start[cc], _LENGTH_BYTES[len(adaptation)], adaptation, payload[:room]]
            return self._continue(first, payload, room, size, cc)
        if size > TS_PAYLOAD_SIZE:
            first = [self._plain_start[cc], payload[:TS_PAYLOAD_SIZE]]
            return self._continue(first, payload, TS_PAYLOAD_SIZE, size, cc)
        self.cc = (cc + 1) & 0xF
        if size == TS_PAYLOAD_SIZE:
            return self._plain_start[cc] + payload
        return b"".join((self._adapted_start[cc], _STUFFING[size], payload))

    def packetize_parts(
        self, head: bytes, body: bytes, start: int, end: int, adaptation: bytes = b""
    ) -> bytes | bytearray:
        """:meth:`packetize` of ``head + body[start:end]``, cutting the packets straight from ``body``."""
        room = TS_PAYLOAD_SIZE - 1 - len(adaptation) if adaptation else TS_PAYLOAD_SIZE
        take = room - len(head)
        if take < 0 or end - start <= take:
            return self.packetize(head + body[start:end], adaptation)
        cc = self.cc
        offset = start + take
        if adaptation:
            length = _LENGTH_BYTES[len(adaptation)]
            first = [self._adapted_start[cc], length, adaptation, head, body[start:offset]]
        else:
            first = [self._plain_start[cc], head, body[start:offset]]
        if end - offset < TS_PAYLOAD_SIZE:  # one stuffed packet follows (an AAC frame, typically)
            first += (self._adapted[(cc + 1) & 0xF], _STUFFING[end - offset], body[offset:end])
            self.cc = (cc + 2) & 0xF
            return b"".join(first)
        return self._continue(first, body, offset, end, cc)

    def packetize_parts_into(
        self,
        out: list[bytes | bytearray],
        head: bytes,
        body: bytes,
        start: int,
        end: int,
        adaptation: bytes = b"",
    ) -> int:
        """:meth:`packetize_parts`, appending the pieces of the packets to ``out`` instead of joining them
        (whoever joins ``out`` copies the bytes once); returns the packets' size in bytes."""
        room = TS_PAYLOAD_SIZE - 1 - len(adaptation) if adaptation else TS_PAYLOAD_SIZE
        take = room - len(head)
        if take < 0 or end - start <= take:
            packets = self.packetize(head + body[start:end], adaptation)
            out.append(packets)
            return len(packets)
        cc = self.cc
        offset = start + take
        if adaptation:
            out += (
                self._adapted_start[cc],
                _LENGTH_BYTES[len(adaptation)],
                adaptation,
                head,
                body[start:offset],
            )
        else:
            out += (self._plain_start[cc], head, body[start:offset])
        count, remainder = divmod(end - offset, TS_PAYLOAD_SIZE)
        size = (1 + count + (remainder > 0)) * TS_PACKET_SIZE
        cc = (cc + 1) & 0xF
        interleaved = self._interleaved
        while count:
            # A copy of the headers already interleaved with placeholders, whose places the payloads
            # take in one slice assignment: no Python loop per packet.
            n = count if count < _SPLIT_BLOCK else _SPLIT_BLOCK
            block = interleaved[cc][: 2 * n]
            block[1::2] = (_splitters.get(n) or _splitter(n))(body, offset)
            out += block
            offset += n * TS_PAYLOAD_SIZE
            cc = (cc + n) & 0xF
            count -= n
        if remainder:
            out += (self._adapted[cc], _STUFFING[remainder], body[offset:end])
            cc = (cc + 1) & 0xF
        self.cc = cc
        return size

    def _continue(self, first: list[bytes], body: bytes, offset: int, end: int, cc: int) -> bytes | bytearray:
        """The packets of a PES whose first packet (counter ``cc``) is the pieces ``first``, continued
        with ``body[offset:end]``: whole 184-byte continuation packets, then one stuffed to 188 bytes.

        No Python-level loop runs per packet: ``struct`` cuts the payloads, and either they are
        interleaved with their headers for one join (few packets), or they are joined with a header as
        the separator and every continuity counter is then written by one extended-slice assignment.
        """
        count = (end - offset) // TS_PAYLOAD_SIZE
        if count < _SEPARATOR_JOIN_MIN:
            cc = (cc + 1) & 0xF
            cycle = self._plain_cycle
            parts: list[bytes] = first
            if count:
                block: list[bytes] = [b""] * (2 * count)
                block[0::2] = cycle[cc : cc + count]
                block[1::2] = _splitter(count)(body, offset)
                parts += block
                offset += count * TS_PAYLOAD_SIZE
                cc = (cc + count) & 0xF
            if offset < end:
                parts.append(self._adapted[cc])
                parts.append(_STUFFING[end - offset])
                parts.append(body[offset:end])
                cc = (cc + 1) & 0xF
            self.cc = cc
            return b"".join(parts)
        items = [b"".join(first)]
        while count:
            n = count if count < _SPLIT_BLOCK else _SPLIT_BLOCK
            items += _splitter(n)(body, offset)
            offset += n * TS_PAYLOAD_SIZE
            count -= n
        stuffed = offset < end
        if stuffed:
            items.append(_STUFFING[end - offset] + body[offset:end])
        out = self._separator.join(items)
        following = len(items) - 1
        out[TS_PACKET_SIZE + 3 :: TS_PACKET_SIZE] = _counters(cc + 1, following)
        cc = (cc + following) & 0xF
        if stuffed:
            out[-TS_PACKET_SIZE + 3] = 0x30 | cc  # adaptation_field_control '11': the stuffing
        self.cc = (cc + 1) & 0xF
        return out


_interleaved_by_pid: dict[int, tuple[list[bytes], ...]] = {}


def _interleaved_headers(pid: int, plain: tuple[bytes, ...]) -> tuple[list[bytes], ...]:
    """For each first continuity counter, the continuation headers of ``_SPLIT_BLOCK`` packets of ``pid``
    each followed by a placeholder for its payload: sliced, never changed, and shared by every writer of
    the PID (a few KiB per PID, not per stream)."""
    templates = _interleaved_by_pid.get(pid)
    if templates is None:
        templates = tuple(
            [piece for i in range(_SPLIT_BLOCK) for piece in (plain[(first + i) & 0xF], b"")]
            for first in range(16)
        )
        _interleaved_by_pid[pid] = templates
    return templates


def _counters(first: int, count: int) -> bytes:
    """Byte 3 of ``count`` payload-only packets whose continuity counters start at ``first``."""
    first &= 0xF
    if first + count <= len(_COUNTER_RUN):
        return _COUNTER_RUN[first : first + count]
    return bytes(0x10 | ((first + i) & 0xF) for i in range(count))


class TsMuxer:
    """Muxes :class:`Frame` objects of one H.264 video and/or one AAC audio track into TS packets.

    Pure: frames in, bytes out.  Continuity counters live as long as the muxer, so consecutive segments
    cut from its output form one continuous transport stream.
    """

    def __init__(
        self, video: VideoConfig | None, audio: AudioConfig | None, *, audio_frames_per_pes: int = 1
    ) -> None:
        if audio_frames_per_pes < 1:
            raise ValueError("audio_frames_per_pes must be at least 1")
        self._audio_frames_per_pes = audio_frames_per_pes
        # The ADTS frames of the audio PES being grouped, with the 90 kHz PTS/DTS (before the offset) of
        # its first frame, the DTS the next frame must have to join it, and one frame's duration.
        self._pending_audio: list[bytes] = []
        self._pending_pts = 0
        self._pending_dts = 0
        self._pending_next_dts = 0
        self._audio_frame_ticks = 0
        self._video: VideoConfig | None = None
        self._audio: AudioConfig | None = None
        self._parameter_sets = b""
        self._adts: AdtsWriter | None = None
        self._adts_prefix = b""
        self._adts_low = 0
        self._pat = _PidWriter(PAT_PID)
        self._pmt = _PidWriter(PMT_PID)
        self._video_writer = _PidWriter(VIDEO_PID)
        self._audio_writer = _PidWriter(AUDIO_PID)
        self._pmt_version = -1
        self._pmt_tracks: tuple[bool, bool] | None = None
        self._pat_payload = self._psi_payload(pat_section(TRANSPORT_STREAM_ID, PROGRAM_NUMBER, PMT_PID))
        self._pmt_payload = b""
        self._pcr_due = True
        self._last_pcr_dts: int | None = None
        self._previous_pcr_track_dts: int | None = None
        self._time_base: Fraction | None = None
        self._scale = (1, 1)
        if video is not None:
            self.set_config(video)
        if audio is not None:
            self.set_config(audio)
        self._update_pmt()

    @property
    def video(self) -> VideoConfig | None:
        """The current video configuration."""
        return self._video

    @property
    def audio(self) -> AudioConfig | None:
        """The current audio configuration."""
        return self._audio

    @property
    def audio_pending(self) -> int:
        """How many audio frames wait in the open audio PES (see :meth:`flush_audio`)."""
        return len(self._pending_audio)

    def set_config(self, config: VideoConfig | AudioConfig) -> None:
        """Add or replace the configuration of a track.

        A new set of tracks changes the PMT (and its version_number); emit :meth:`psi` before the frames
        that need it.  Raises :class:`UnsupportedCodec` for anything but H.264 and AAC carried in ADTS.
        """
        if isinstance(config, VideoConfig):
            if config.codec != "h264":
                raise UnsupportedCodec(f"video codec {config.codec!r} cannot be muxed into MPEG-TS")
            self._parameter_sets = parameter_sets_annexb(config.sps, config.pps)
            self._video = config
        else:
            if config.codec != "aac":
                raise UnsupportedCodec(f"audio codec {config.codec!r} cannot be muxed into MPEG-TS")
            self._adts = AdtsWriter(config)
            # The header's fixed fields, so that per frame only aac_frame_length is ORed in.
            fixed = self._adts.header(0)
            self._adts_prefix = fixed[:3]
            self._adts_low = int.from_bytes(fixed[3:], "big") & ~_ADTS_LENGTH_FIELD
            self._audio = config
            # The core rate: an HE-AAC frame doubles both its samples and its output rate.
            self._audio_frame_ticks = (
                MPEG_TS_CLOCK.denominator * AAC_FRAME_SAMPLES // (SAMPLING_FREQUENCIES[config.sampling_index])
            )
        self._update_pmt()

    def reset(self) -> None:
        """Forget both track configurations (the publisher went away).

        Continuity counters and the PMT version continue, so a republished stream stays one valid TS.
        """
        self._video = None
        self._audio = None
        self._parameter_sets = b""
        self._adts = None
        self._update_pmt()

    def _update_pmt(self) -> None:
        tracks = (self._video is not None, self._audio is not None)
        if tracks == self._pmt_tracks:
            return
        self._pmt_tracks = tracks
        self._pmt_version = (self._pmt_version + 1) & 0x1F
        streams = []
        if self._video is not None:
            streams.append((STREAM_TYPE_H264, VIDEO_PID))
        if self._audio is not None:
            streams.append((STREAM_TYPE_AAC_ADTS, AUDIO_PID))
        section = pmt_section(PROGRAM_NUMBER, self._pcr_pid(), streams, self._pmt_version)
        self._pmt_payload = self._psi_payload(section)

    def _pcr_pid(self) -> int:
        if self._video is not None:
            return VIDEO_PID
        if self._audio is not None:
            return AUDIO_PID
        return NULL_PID

    @staticmethod
    def _psi_payload(section: bytes) -> bytes:
        # pointer_field 0, then the section, then 0xFF stuffing bytes (ISO/IEC 13818-1 §2.4.4.1).
        return b"\x00" + section + b"\xff" * (TS_PAYLOAD_SIZE - 1 - len(section))

    def psi(self) -> bytes:
        """One PAT and one PMT packet, to start every segment; the next PCR-track PES carries a PCR."""
        self._pcr_due = True
        return b"".join((self._pat.packetize(self._pat_payload), self._pmt.packetize(self._pmt_payload)))

    def _clock_ticks(self, frame: Frame) -> tuple[int, int]:
        """The frame's PTS and DTS on the 90 kHz clock (RemoteProtocolError: a PTS before its DTS)."""
        if frame.time_base is not self._time_base:
            self._set_time_base(frame.time_base)
        numerator, denominator = self._scale
        dts = frame.dts * numerator // denominator
        pts = dts if frame.pts == frame.dts else frame.pts * numerator // denominator
        if pts < dts:
            raise RemoteProtocolError(f"frame PTS {frame.pts} precedes its DTS {frame.dts}")
        return pts, dts

    def mux(self, frame: Frame, *, psi: bool = False) -> bytes | bytearray:
        """The TS packets (a multiple of 188 bytes) carrying ``frame`` as one PES packet.

        With ``psi`` the packets are preceded by :meth:`psi`, as at the start of a segment.  Returns
        ``b""`` for a video frame without any NAL unit (and then writes no PSI either).  With audio
        grouping an audio frame may be held for a later PES (see the module docstring): the packets
        returned are then those of the audio PES it completed, if any, and audio grouped so far is
        written before the PSI of a ``psi`` call (call :meth:`flush_audio` first to keep it out).  Raises
        :class:`LocalProtocolError` when the frame's track has no configuration,
        :class:`RemoteProtocolError` for malformed frame data or a PTS before its DTS; an error leaves the
        muxer's state (continuity counters, PCR schedule) untouched.
        """
        if frame.track is _VIDEO:
            out: list[bytes | bytearray] = []
            self.mux_video_into(out, frame, psi=psi)
            return b"".join(out)
        pts, dts = self._clock_ticks(frame)
        adts = self._adts
        if adts is None:
            raise LocalProtocolError("audio frame muxed before an audio configuration was set")
        data = frame.data
        if self._audio_frames_per_pes == 1:
            # Every frame its own PES: nothing is ever pending, so no grouping state is kept.
            size = len(data)
            rest = size - _AUDIO_FIRST_TAKE
            if pts == dts and 0 < rest < 2 * TS_PAYLOAD_SIZE and not psi and self._video is not None:
                # The common AAC frame (2 or 3 packets), cut here without further calls: what
                # _PidWriter.packetize_parts would write.  The first packet is one pack, whose "163s"
                # takes the frame's first bytes.
                writer = self._audio_writer
                cc = writer.cc
                stamp = (pts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK
                first = _pack_audio_first_packet(
                    writer._plain_start[cc],
                    _AUDIO_PES_START,
                    size + _AUDIO_HEADER_SIZE - 6,  # PES_packet_length counts from after itself
                    _AUDIO_PES_FLAGS,
                    0x21 | ((stamp >> 29) & 0x0E),
                    ((stamp >> 14) & 0xFFFE) | 1,
                    ((stamp << 1) & 0xFFFE) | 1,
                    self._adts_prefix,
                    self._adts_low | ((size + ADTS_HEADER_SIZE) << 13),
                    data,
                )
                if rest < TS_PAYLOAD_SIZE:
                    writer.cc = (cc + 2) & 0xF
                    return b"".join(
                        (first, writer._adapted[(cc + 1) & 0xF], _STUFFING[rest], data[_AUDIO_FIRST_TAKE:])
                    )
                if rest == TS_PAYLOAD_SIZE:
                    writer.cc = (cc + 2) & 0xF
                    return b"".join((first, writer._plain[(cc + 1) & 0xF], data[_AUDIO_FIRST_TAKE:]))
                writer.cc = (cc + 3) & 0xF
                return b"".join(
                    (
                        first,
                        writer._plain[(cc + 1) & 0xF],
                        data[_AUDIO_FIRST_TAKE : _AUDIO_FIRST_TAKE + TS_PAYLOAD_SIZE],
                        writer._adapted[(cc + 2) & 0xF],
                        _STUFFING[rest - TS_PAYLOAD_SIZE],
                        data[_AUDIO_FIRST_TAKE + TS_PAYLOAD_SIZE :],
                    )
                )
            if pts == dts and size <= _ADTS_MAX_PAYLOAD:
                stamp = (pts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK
                header = _pack_audio_pts_adts(
                    _AUDIO_PES_START,
                    size + _AUDIO_HEADER_SIZE - 6,
                    _AUDIO_PES_FLAGS,
                    0x21 | ((stamp >> 29) & 0x0E),
                    ((stamp >> 14) & 0xFFFE) | 1,
                    ((stamp << 1) & 0xFFFE) | 1,
                    self._adts_prefix,
                    self._adts_low | ((size + ADTS_HEADER_SIZE) << 13),
                )
            else:
                unit_header = adts.header(size)
                header = (
                    pes_header(
                        AUDIO_STREAM_ID,
                        (pts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK,
                        (dts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK,
                        size + len(unit_header),
                    )
                    + unit_header
                )
            head: bytes | bytearray = self.psi() if psi else b""
            if self._video is None:
                packets = self._write_pes(self._audio_writer, header + data, dts, False, carries_pcr=True)
            else:
                packets = self._audio_writer.packetize_parts(header, data, 0, size)
            return head + packets if psi else packets
        unit = adts.header(len(data)) + data
        pending = self._pending_audio
        head = b""
        if pending and (
            psi
            or abs(dts - self._pending_next_dts) > self._audio_frame_ticks // 2
            or pts - dts != self._pending_pts - self._pending_dts
            or (self._video is None and dts + self._audio_frame_ticks - self._pending_dts > PCR_MAX_INTERVAL)
        ):
            head = self.flush_audio()
        if psi:
            head += self.psi()
        if not pending:
            self._pending_pts = pts
            self._pending_dts = dts
        pending.append(unit)
        self._pending_next_dts = dts + self._audio_frame_ticks
        if len(pending) >= self._audio_frames_per_pes:
            head += self.flush_audio()
        return head

    def mux_video_into(self, out: list[bytes | bytearray], frame: Frame, *, psi: bool = False) -> int:
        """:meth:`mux` of a video frame, appending the pieces of the packets to ``out`` instead of joining
        them; returns their size in bytes (0 for a frame without any NAL unit).

        A caller that gathers packets to join them later copies every byte once instead of twice.
        """
        pts, dts = self._clock_ticks(frame)
        if frame.track is not _VIDEO:
            raise LocalProtocolError("mux_video_into() takes video frames only")
        if self._video is None:
            raise LocalProtocolError("video frame muxed before a video configuration was set")
        keyframe = frame.keyframe
        data = frame.data
        last_end = len(data)
        # pes_header() of an unbounded video PES, followed by the access unit delimiter.
        pes_pts = (pts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK
        pes_dts = (dts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK
        if pes_pts == pes_dts:
            header = _pack_video_pts(
                _PES_START_VIDEO,
                0,
                _PES_PTS_FLAGS,
                0x21 | ((pes_pts >> 29) & 0x0E),
                ((pes_pts >> 14) & 0xFFFE) | 1,
                ((pes_pts << 1) & 0xFFFE) | 1,
                ACCESS_UNIT_DELIMITER,
            )
        else:
            header = _pack_video_pts_dts(
                _PES_START_VIDEO,
                0,
                _PES_PTS_DTS_FLAGS,
                0x31 | ((pes_pts >> 29) & 0x0E),
                ((pes_pts >> 14) & 0xFFFE) | 1,
                ((pes_pts << 1) & 0xFFFE) | 1,
                0x11 | ((pes_dts >> 29) & 0x0E),
                ((pes_dts >> 14) & 0xFFFE) | 1,
                ((pes_dts << 1) & 0xFFFE) | 1,
                ACCESS_UNIT_DELIMITER,
            )
        if (
            not keyframe
            and last_end > 4
            and data[4] & 0x1F == _NAL_NON_IDR_SLICE
            and _unpack_nal_length(data, 0)[0] == last_end - 4
        ):
            # The common access unit, a single non-IDR slice: what access_unit_split gives, without the call.
            head = header + START_CODE
            last_start = 4
        else:
            split = access_unit_split(data, keyframe, self._parameter_sets)
            if split is None:
                return 0
            pieces, last_start, last_end = split
            pieces[0] = header  # it ends with the access unit delimiter
            head = b"".join(pieces)
        # Audio grouped so far goes first, unless it could still wait without falling behind the PCR.
        flushed = (
            self.flush_audio()
            if self._pending_audio and (psi or dts - self._pending_dts >= PCR_LEAD)
            else b""
        )
        if psi:
            flushed += self.psi()
        if self._pcr_is_due(dts, keyframe):
            adaptation = self._pcr_field(dts, _AF_PCR | _AF_RANDOM_ACCESS if keyframe else _AF_PCR)
        else:
            adaptation = _RANDOM_ACCESS_ONLY if keyframe else b""
        if flushed:
            out.append(flushed)
        return len(flushed) + self._video_writer.packetize_parts_into(
            out, head, data, last_start, last_end, adaptation
        )

    def _set_time_base(self, time_base: Fraction) -> None:
        self._time_base = time_base
        # Reduced once per time base: most conversions (1/1000 → 1/90000) become one multiplication.
        ratio = time_base / MPEG_TS_CLOCK
        self._scale = (ratio.numerator, ratio.denominator)

    def flush_audio(self) -> bytes | bytearray:
        """The TS packets of the audio frames grouped so far, as one PES; ``b""`` if there are none."""
        pending = self._pending_audio
        if not pending:
            return b""
        payload = b"".join(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        pts = self._pending_pts
        dts = self._pending_dts
        header = pes_header(
            AUDIO_STREAM_ID,
            (pts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK,
            (dts + TIMESTAMP_OFFSET) & _TIMESTAMP_MASK,
            len(payload),
        )
        return self._write_pes(
            self._audio_writer, header + payload, dts, False, carries_pcr=self._video is None
        )

    def _write_pes(
        self, writer: _PidWriter, payload: bytes, dts: int, random_access: bool, *, carries_pcr: bool
    ) -> bytes | bytearray:
        if carries_pcr and self._pcr_is_due(dts, random_access):
            # Every AAC frame is a random access point; in an audio-only program it is flagged when the
            # adaptation field is written anyway for the PCR, saving two bytes on the other frames.
            flags = _AF_PCR | _AF_RANDOM_ACCESS if random_access or writer is self._audio_writer else _AF_PCR
            adaptation = self._pcr_field(dts, flags)
        elif random_access:
            adaptation = _RANDOM_ACCESS_ONLY
        else:
            adaptation = b""
        return writer.packetize(payload, adaptation)

    def _pcr_field(self, dts: int, flags: int) -> bytes:
        """The adaptation field content carrying a PCR for the PES at ``dts``; records that it was sent."""
        if self._last_pcr_dts is not None and dts < self._last_pcr_dts:
            flags |= _AF_DISCONTINUITY
        self._pcr_due = False
        self._last_pcr_dts = dts
        base = (dts + TIMESTAMP_OFFSET - PCR_LEAD) & _TIMESTAMP_MASK
        return _pack_pcr_field(flags, base >> 1, ((base & 1) << 15) | 0x7E00)

    def _pcr_is_due(self, dts: int, keyframe: bool) -> bool:
        """Whether the PES of the PCR track at ``dts`` must carry a PCR."""
        last = self._last_pcr_dts
        previous = self._previous_pcr_track_dts
        self._previous_pcr_track_dts = dts
        if self._pcr_due or keyframe or last is None or dts < last:
            return True
        step = dts - previous if previous is not None and dts > previous else 0
        # Write now if the next frame, one step later, would leave the last PCR more than 100 ms old.
        return dts - last + step > PCR_MAX_INTERVAL
