"""The LL-HLS packager: frames in, CMAF parts, segments and LL-HLS playlists out (as events).

Pure (sans-I/O): the caller passes the wall clock with each frame and carries out the returned events in
order — :class:`InitSegmentReady` before any part, :class:`PartReady` (and :class:`SegmentReady` when a
segment closes) before the :class:`PlaylistUpdated` that lists them, :class:`SegmentExpired` last.

Cutting rules (times on the *cutting track*: video when there is video, else audio):

* A segment starts with a video keyframe (any frame for audio-only streams) and is closed by the first
  such frame at least ``target_duration`` after its start; frames before the first keyframe are dropped.
* A part is closed before the frame that would make it longer than ``part_target``: the frame's duration
  is estimated as the track's last DTS step (else its nominal frame duration) plus one unit of the frame's
  time base, because quantised timestamps (FLV milliseconds) make steps jitter by one unit.  So parts stay
  within ``part_target`` (EXT-X-PART-INF's PART-TARGET) unless a single frame is longer than it.  A part is
  INDEPENDENT when its first video sample is a keyframe (every audio-only part is).
* A part holds, for every track, the samples that start before the cut and whose duration is known: a
  sample's duration is the next DTS minus its own (ISO/IEC 14496-12), so each track's newest frame waits for
  its successor.  An audio frame received just before the cut therefore goes into the next part; sample
  timing stays exact and ``tfdt`` of each part equals the sum of the previous durations.
* Should a part still be longer (a frame longer than the part target, or timing more irregular than the
  jitter allowance), PART-TARGET is raised to the longest part, as EXT-X-TARGETDURATION is raised to the
  longest segment, so the playlist never breaks the rule that each duration is within its target.
* :meth:`LlHlsPackager.end` flushes the held-back frames with a guessed duration (the last step seen).

A new codec configuration after the initialization segment was published closes the open segment; the
next one carries a new initialization segment (``init-1.mp4``, …) and EXT-X-DISCONTINUITY.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from streamit.errors import ConfigError, LocalProtocolError, NotFound
from streamit.fmp4.fragment import SampleColumns, fragment_chunks
from streamit.fmp4.init import SAMPLE_FLAGS_SYNC, init_segment, track_info
from streamit.fmp4.samples import SampleQueue
from streamit.hls.llhls import (
    LlHlsPlaylist,
    OpenSegment,
    PartEntry,
    SegmentEntry,
    render_llhls_playlist,
    target_duration_for_segments,
)
from streamit.media.frame import AudioConfig, Frame, TrackKind, VideoConfig

AAC_FRAME_SAMPLES = 1024
"""Samples per AAC-LC frame (ISO/IEC 14496-3 §4.5.1.1): the nominal audio frame duration in ticks."""

DEFAULT_FRAME_RATE = 30
"""Assumed for the nominal video frame duration when the SPS states no frame rate."""

_VIDEO = TrackKind.VIDEO
_AUDIO = TrackKind.AUDIO


def init_name(version: int) -> str:
    """The URI of the ``version``-th initialization segment of a stream."""
    return "init.mp4" if version == 0 else f"init-{version}.mp4"


def segment_name(msn: int) -> str:
    """The URI of the fMP4 segment with media sequence number ``msn``."""
    return f"seg-{msn:06d}.m4s"


def part_name(msn: int, index: int) -> str:
    """The URI of part ``index`` (from 0) of segment ``msn``."""
    return f"part-{msn:06d}-{index}.m4s"


@dataclass(frozen=True, slots=True)
class Part:
    """One partial segment: a ``moof`` + ``mdat`` fragment, in ``chunks`` whose concatenation it is.

    The chunks are the fragment's header and the frames' own bytes: a part is joined only by whoever needs
    it in one piece (a request for it), and a segment goes to disk from its parts' chunks.
    """

    msn: int
    index: int
    name: str
    duration: Fraction  # seconds
    independent: bool
    chunks: tuple[bytes, ...]

    @property
    def data(self) -> bytes:
        """The part's bytes (joined at each access)."""
        return b"".join(self.chunks)

    @property
    def size(self) -> int:
        """The part's length in bytes."""
        return sum(map(len, self.chunks))


@dataclass(frozen=True, slots=True)
class PartedSegment:
    """One complete fMP4 media segment: the concatenation of its parts."""

    msn: int
    name: str
    duration: Fraction  # seconds
    program_date_time: datetime
    discontinuity: bool
    init_name: str
    parts: tuple[Part, ...]

    @property
    def data(self) -> bytes:
        """The segment's bytes (joined at each access)."""
        return b"".join([chunk for part in self.parts for chunk in part.chunks])


@dataclass(frozen=True, slots=True)
class InitSegmentReady:
    """An initialization segment exists; store it before any part that needs it."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PartReady:
    """A part is complete (a preload-hinted request for it can be answered)."""

    part: Part


@dataclass(frozen=True, slots=True)
class SegmentReady:
    """A segment is complete; its parts were announced by :class:`PartReady` before."""

    segment: PartedSegment


@dataclass(frozen=True, slots=True)
class SegmentExpired:
    """A segment left the playlist some segments ago: its bytes and its parts' can be deleted."""

    name: str
    part_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlaylistUpdated:
    """The media playlist changed to ``playlist``, which :meth:`render` turns into text.

    Rendering costs far more than stating what the playlist holds, and a live playlist changes with every
    part (about three times a second) whether anyone reads it or not: the holder of the event renders it
    when it is requested, once per change.
    """

    playlist: LlHlsPlaylist

    def render(self, *, skip: bool = False) -> str:
        """The playlist text; with ``skip`` the delta update (``_HLS_skip=YES``)."""
        return render_llhls_playlist(self.playlist, skip=skip)

    @property
    def text(self) -> str:
        """The whole playlist (:meth:`render` without skipping)."""
        return render_llhls_playlist(self.playlist)


LlHlsEvent = InitSegmentReady | PartReady | SegmentReady | SegmentExpired | PlaylistUpdated


@dataclass(slots=True)
class _Track:
    queue: SampleQueue
    info_track_id: int
    timescale: int
    # The cutting rules in whole ticks of this track, exact for integer times: t ≥ x ⇔ t ≥ ⌈x⌉ and
    # t > x ⇔ t > ⌊x⌋.
    segment_ticks: int  # ⌈target duration⌉
    part_ticks: int  # ⌊part target⌋
    jitter_base: Fraction | None = None  # the time base ``jitter`` was computed for
    jitter: int = 0  # one unit of that time base, in ticks, rounded up


class LlHlsPackager:
    """Cuts one live stream into CMAF parts and segments and keeps its LL-HLS media playlist.

    ``playlist_length`` complete segments are listed; a segment that left the list is expired
    ``expire_grace`` segments later.
    """

    def __init__(
        self,
        *,
        target_duration: Fraction = Fraction(2),
        part_target: Fraction = Fraction(33, 100),
        playlist_length: int = 10,
        expire_grace: int = 2,
    ) -> None:
        if target_duration <= 0 or part_target <= 0:
            raise ConfigError("the segment and part target durations must be positive")
        if part_target > target_duration:
            raise ConfigError("the part target cannot exceed the segment target duration")
        if playlist_length < 1 or expire_grace < 0:
            raise ConfigError("the playlist must list a segment and the expiry grace cannot be negative")
        self._target = target_duration
        self._part_target = part_target
        self._playlist_length = playlist_length
        self._expire_grace = expire_grace
        self._configs: dict[TrackKind, VideoConfig | AudioConfig] = {}
        self._tracks: dict[TrackKind, _Track] = {}
        # The same tracks for the per-frame lookup (an Enum's hash is computed in Python).
        self._video_track: _Track | None = None
        self._audio_track: _Track | None = None
        self._cut: TrackKind | None = None
        self._init_version = -1
        self._init_stale = True
        self._init_data = b""
        self._pending_discontinuity = False
        self._window: deque[SegmentEntry] = deque()
        self._expiring: deque[SegmentEntry] = deque()
        self._longest = Fraction(0)
        self._longest_part = Fraction(0)
        self._target_duration = target_duration_for_segments(target_duration, self._longest)
        self._stated_part_target = part_target
        self._next_msn = 0
        self._discontinuity_sequence = 0
        self._fragment_sequence = 1
        self._ended = False
        # The open segment and part, on the cutting track's clock (ticks of its timescale).
        self._open = False
        self._segment_start = 0
        self._segment_time: datetime | None = None
        self._segment_discontinuity = False
        self._parts: list[Part] = []
        self._part_entries: list[PartEntry] = []
        self._part_start = 0

    # --- state for the origin --------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the stream ended (the playlist carries EXT-X-ENDLIST)."""
        return self._ended

    @property
    def init_segment(self) -> tuple[str, bytes]:
        """Name and bytes of the current initialization segment; :class:`NotFound` before the first."""
        if self._init_version < 0:
            raise NotFound("no initialization segment yet")
        return init_name(self._init_version), self._init_data

    @property
    def next_part(self) -> tuple[int, int] | None:
        """(msn, part index) of the part the preload hint names, ``None`` when no segment is open."""
        if not self._open or self._ended:
            return None
        return self._next_msn, len(self._parts)

    @property
    def segments(self) -> Sequence[SegmentEntry]:
        """The complete segments of the playlist window, oldest first."""
        return tuple(self._window)

    def has_part(self, msn: int, index: int) -> bool:
        """Whether part ``index`` of segment ``msn`` is complete (``_HLS_msn``/``_HLS_part``, §6.2.5.2).

        A segment that is complete has every part, so ``index`` beyond its last part counts as present
        (the client then finds the next segment's parts in the playlist).
        """
        if msn < self._next_msn:
            return True
        return msn == self._next_msn and self._open and index < len(self._parts)

    def playlist(self, *, skip: bool = False) -> str:
        """The current media playlist (a delta update with ``skip``); :class:`NotFound` before any part."""
        return render_llhls_playlist(self.playlist_state(), skip=skip)

    def playlist_state(self) -> LlHlsPlaylist:
        """What the current media playlist states, to render later; :class:`NotFound` before any part."""
        if not self._window and not self._parts:
            raise NotFound("the playlist has no part yet")
        open_segment = None
        if self._open and self._segment_time is not None:
            open_segment = OpenSegment(
                msn=self._next_msn,
                program_date_time=self._segment_time,
                parts=tuple(self._part_entries),
                next_part_uri=part_name(self._next_msn, len(self._parts)),
                init_uri=init_name(self._init_version),
                discontinuity=self._segment_discontinuity,
            )
        return LlHlsPlaylist(
            segments=tuple(self._window),
            open_segment=open_segment,
            target_duration=self._target_duration,
            part_target=self._stated_part_target,
            discontinuity_sequence=self._discontinuity_sequence,
            ended=self._ended,
        )

    # --- input -----------------------------------------------------------------------------------------

    def on_config(self, config: VideoConfig | AudioConfig) -> list[LlHlsEvent]:
        """A track's codec configuration arrived (or changed)."""
        kind = _VIDEO if isinstance(config, VideoConfig) else _AUDIO
        if self._configs.get(kind) == config:
            return []
        events: list[LlHlsEvent] = []
        if self._init_version >= 0 and not self._init_stale:
            # The published init segment no longer describes the stream: finish what it describes.
            events = self._finish_segment()
            if self._window:
                events.append(PlaylistUpdated(self.playlist_state()))
            self._pending_discontinuity = True
        self._configs[kind] = config
        info = track_info(config)
        scale = info.timescale
        if isinstance(config, VideoConfig):
            fps = config.fps or Fraction(DEFAULT_FRAME_RATE)
            nominal = int(scale / fps)
        else:
            nominal = AAC_FRAME_SAMPLES
        self._tracks[kind] = _Track(
            SampleQueue(scale, nominal),
            info.track_id,
            scale,
            segment_ticks=math.ceil(self._target * scale),
            part_ticks=math.floor(self._part_target * scale),
        )
        self._video_track = self._tracks.get(_VIDEO)
        self._audio_track = self._tracks.get(_AUDIO)
        self._cut = _VIDEO if _VIDEO in self._configs else _AUDIO
        self._init_stale = True
        return events

    def on_frame(self, frame: Frame, wallclock: datetime) -> list[LlHlsEvent]:
        """Package one frame; ``wallclock`` is when it arrived (UTC; a naive value is taken as UTC).

        Frames of a track without configuration are dropped.  Raises
        :class:`~streamit.errors.RemoteProtocolError` for a frame whose DTS goes backwards (the packager is
        then unchanged) and :class:`LocalProtocolError` after :meth:`end`.
        """
        if self._ended:
            raise LocalProtocolError("frame after end()")
        kind = frame.track
        track = self._video_track if kind is _VIDEO else self._audio_track
        if track is None:
            return []
        sync = frame.keyframe or kind is _AUDIO
        queue = track.queue
        if not self._open:
            if kind is not self._cut or not sync:
                return []  # a segment starts with a keyframe (or any audio frame when audio-only)
            time = queue.push(frame, sync)  # raises before anything changes
            return self._start_segment(wallclock, time)
        time = queue.push(frame, sync)  # raises before anything changes
        if kind is not self._cut:
            return []
        if sync and time - self._segment_start >= track.segment_ticks:
            scale = track.timescale
            events = self._close_part(time, scale)
            events.extend(self._close_segment(time, scale, keep_open=True))
            self._open_segment(wallclock, time)
            events.append(PlaylistUpdated(self.playlist_state()))
            events.extend(self._take_expired())
            return events
        # The frame's own duration is not known yet: estimate it, allowing one unit of timestamp jitter.
        time_base = frame.time_base
        if time_base is not track.jitter_base:
            track.jitter = -(-time_base.numerator * track.timescale // time_base.denominator)
            track.jitter_base = time_base
        part_start = self._part_start
        step = queue.last_step or queue.nominal_duration
        if time > part_start and time + step + track.jitter - part_start > track.part_ticks:
            events = self._close_part(time, track.timescale)
            events.append(PlaylistUpdated(self.playlist_state()))
            return events
        return []

    def end(self) -> list[LlHlsEvent]:
        """The publisher stopped: flush everything and publish the playlist with EXT-X-ENDLIST."""
        if self._ended:
            return []
        events = self._finish_segment()
        self._ended = True
        if self._window:
            events.append(PlaylistUpdated(self.playlist_state()))
        events.extend(self._take_expired())
        return events

    def restart(self) -> list[LlHlsEvent]:
        """A new publish of the same stream (republish or takeover): numbering goes on, discontinuously.

        A segment still open (a takeover, without :meth:`end`) is flushed and closed.  Codec configurations
        must be given again; the next segment gets a new initialization segment and EXT-X-DISCONTINUITY,
        so the new publisher's timestamps may start anywhere.  Names are never reused (RFC 8216 §6.2.2),
        which lets caches keep every object of the stream as immutable across publishes.
        """
        events = self._finish_segment()
        if events and self._window:
            events.append(PlaylistUpdated(self.playlist_state()))
        events.extend(self._take_expired())
        self._ended = False
        self._configs.clear()
        self._tracks.clear()
        self._video_track = self._audio_track = None
        self._cut = None
        self._init_stale = True
        self._pending_discontinuity = self._next_msn > 0
        return events

    # --- cutting ---------------------------------------------------------------------------------------

    def _start_segment(self, wallclock: datetime, time: int) -> list[LlHlsEvent]:
        events: list[LlHlsEvent] = []
        if self._init_stale:
            self._init_version += 1
            video = self._configs.get(_VIDEO)
            audio = self._configs.get(_AUDIO)
            self._init_data = init_segment(
                video if isinstance(video, VideoConfig) else None,
                audio if isinstance(audio, AudioConfig) else None,
            )
            self._init_stale = False
            events.append(InitSegmentReady(init_name(self._init_version), self._init_data))
        self._open_segment(wallclock, time)
        self._segment_discontinuity = self._pending_discontinuity and self._next_msn > 0
        self._pending_discontinuity = False
        return events

    def _open_segment(self, wallclock: datetime, time: int) -> None:
        self._open = True
        self._segment_time = wallclock
        self._segment_discontinuity = False
        self._segment_start = self._part_start = time
        self._parts = []
        self._part_entries = []

    def _runs(self, cut: int, timescale: int, flush: bool) -> list[SampleColumns]:
        runs: list[SampleColumns] = []
        for track, video in ((self._video_track, True), (self._audio_track, False)):
            if track is None:
                continue
            if flush:
                run = track.queue.flush_columns(track.info_track_id, video)
            else:
                # Samples starting before the cut, on this track's clock: d < cut·ts/ts_cut ⇔ d < ⌈…⌉.
                until = -(-cut * track.timescale // timescale)
                run = track.queue.take_columns(until, track.info_track_id, video)
            if run is not None:
                runs.append(run)
        return runs

    def _close_part(self, cut: int, timescale: int, flush: bool = False) -> list[LlHlsEvent]:
        runs = self._runs(cut, timescale, flush)
        if not runs:
            return []
        independent = runs[0].flags[0] == SAMPLE_FLAGS_SYNC
        msn, index = self._next_msn, len(self._parts)
        part = Part(
            msn=msn,
            index=index,
            name=part_name(msn, index),
            duration=Fraction(cut - self._part_start, timescale),
            independent=independent,
            chunks=tuple(fragment_chunks(self._fragment_sequence, runs)),
        )
        self._fragment_sequence += 1
        if part.duration > self._longest_part:
            self._longest_part = part.duration
            self._stated_part_target = max(self._part_target, part.duration)
        self._parts.append(part)
        self._part_entries.append(PartEntry(msn, index, part.name, part.duration, independent))
        self._part_start = cut
        return [PartReady(part)]

    def _close_segment(self, cut: int, timescale: int, keep_open: bool) -> list[LlHlsEvent]:
        assert self._segment_time is not None
        msn = self._next_msn
        self._next_msn += 1
        segment = PartedSegment(
            msn=msn,
            name=segment_name(msn),
            duration=Fraction(cut - self._segment_start, timescale),
            program_date_time=self._segment_time,
            discontinuity=self._segment_discontinuity,
            init_name=init_name(self._init_version),
            parts=tuple(self._parts),
        )
        self._open = keep_open
        entries = tuple(self._part_entries)
        self._parts = []
        self._part_entries = []
        if segment.duration > self._longest:
            self._longest = segment.duration
            self._target_duration = target_duration_for_segments(self._target, self._longest)
        events: list[LlHlsEvent] = [SegmentReady(segment)]
        self._window.append(
            SegmentEntry(
                msn=msn,
                uri=segment.name,
                duration=segment.duration,
                program_date_time=segment.program_date_time,
                parts=entries,
                init_uri=segment.init_name,
                discontinuity=segment.discontinuity,
            )
        )
        while len(self._window) > self._playlist_length:
            dropped = self._window.popleft()
            if dropped.discontinuity:
                self._discontinuity_sequence += 1
            self._expiring.append(dropped)
        return events

    def _take_expired(self) -> list[LlHlsEvent]:
        events: list[LlHlsEvent] = []
        while len(self._expiring) > self._expire_grace:
            gone = self._expiring.popleft()
            events.append(SegmentExpired(gone.uri, tuple(part.uri for part in gone.parts)))
        return events

    def _finish_segment(self) -> list[LlHlsEvent]:
        """Flush every held-back sample into a last part and close the open segment."""
        if not self._open:
            return []
        cut_track = self._tracks[self._cut] if self._cut is not None else None
        assert cut_track is not None
        queue = cut_track.queue
        last = queue.pending_decode_time
        end = self._part_start if last is None else last + (queue.last_step or queue.nominal_duration)
        events = self._close_part(end, cut_track.timescale, flush=True)
        if not self._parts:
            self._open = False
            return events
        events.extend(self._close_segment(end, cut_track.timescale, keep_open=False))
        return events


__all__ = [
    "InitSegmentReady",
    "LlHlsEvent",
    "LlHlsPackager",
    "Part",
    "PartReady",
    "PartedSegment",
    "PlaylistUpdated",
    "SegmentExpired",
    "SegmentReady",
    "init_name",
    "part_name",
    "segment_name",
]
