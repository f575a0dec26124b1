"""The live HLS packager: frames in, MPEG-TS segments and playlists out (as events).

Pure: the caller passes the wall clock with each frame and carries out the returned events in order
(:class:`SegmentReady` before the :class:`PlaylistUpdated` that names the segment, RFC 8216 §6.2.2).  The
packager holds the window's metadata and at most about ``flush_bytes`` of the open segment: the rest has
been handed out in :class:`SegmentAppended` events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from fractions import Fraction

from streamit.errors import ConfigError, LocalProtocolError, NotFound
from streamit.hls.events import PackagerEvent, PlaylistUpdated, SegmentAppended, SegmentExpired, SegmentReady
from streamit.hls.playlist import render_media_playlist, target_duration_for
from streamit.hls.segmenter import APPEND, CLOCK, Placement, Segment, Segmenter, segment_name
from streamit.media.aac import SAMPLING_FREQUENCIES
from streamit.media.frame import AudioConfig, Frame, TrackKind, VideoConfig
from streamit.mpegts.muxer import AAC_FRAME_SAMPLES, TsMuxer

_DROP = Placement.DROP
_START = Placement.START
_VIDEO = TrackKind.VIDEO

AUDIO_FRAMES_PER_PES = 1
"""AAC frames per PES by default: one.  Grouping (e.g. 5, as ffmpeg and nginx-rtmp do) saves about 27 % of
the audio TS packets (≈2 % of a 3 Mbit/s stream) but no measurable CPU, and ffmpeg's timestamp-discontinuity
heuristics then mis-join the audio of a republished stream (tests/hls/test_packager.py)."""

FLUSH_BYTES = 64 * 1024
"""Bytes of the open segment gathered before they are handed out in a :class:`SegmentAppended` event: the
packager's memory per stream stays this small, and a store writing them makes a few writes per second."""


class HlsPackager:
    """Cuts one live stream into MPEG-TS segments and keeps its sliding-window media playlist.

    ``target_duration`` is the wanted segment length (segments are cut at the first keyframe after it);
    ``playlist_length`` segments are listed; a segment that left the list is expired ``expire_grace``
    segments later, so that players still downloading it are not broken.  Up to ``audio_frames_per_pes``
    consecutive AAC frames share a PES (see :mod:`streamit.mpegts.muxer`); audio never waits across a
    segment cut.  Once ``flush_bytes`` of the open segment have gathered they are returned in a
    :class:`SegmentAppended` event; ``None`` keeps the whole segment for its :class:`SegmentReady`.
    """

    def __init__(
        self,
        *,
        target_duration: Fraction = Fraction(2),
        playlist_length: int = 6,
        expire_grace: int = 2,
        audio_frames_per_pes: int = AUDIO_FRAMES_PER_PES,
        flush_bytes: int | None = FLUSH_BYTES,
    ) -> None:
        if target_duration <= 0:
            raise ConfigError("the HLS target duration must be positive")
        if playlist_length < 1:
            raise ConfigError("the HLS playlist must list at least one segment")
        if expire_grace < 0:
            raise ConfigError("the HLS expiry grace cannot be negative")
        if audio_frames_per_pes < 1:
            raise ConfigError("at least one audio frame goes into each PES")
        if flush_bytes is not None and flush_bytes < 1:
            raise ConfigError("the HLS flush size must be positive")
        self._flush_bytes = flush_bytes if flush_bytes is not None else 1 << 62
        self._playlist_length = playlist_length
        self._expire_grace = expire_grace
        self._muxer = TsMuxer(None, None, audio_frames_per_pes=audio_frames_per_pes)
        self._segmenter = Segmenter(target_duration)
        self._window: deque[Segment] = deque()
        self._expiring: deque[str] = deque()
        self._deferred: list[PackagerEvent] = []
        self._next_sequence = 0
        self._discontinuity_sequence = 0
        self._longest = Fraction(0)
        self._ended = False
        # The open segment's bytes not yet handed out, their total size, and the segment's name.
        self._open: list[bytes | bytearray] = []
        self._open_size = 0
        self._open_name = ""
        self._open_time: datetime | None = None
        self._open_discontinuity = False
        self._time_base: Fraction | None = None
        self._scale = (1, 1)

    @property
    def segments(self) -> Sequence[Segment]:
        """The segments of the current playlist window, oldest first, without their bytes."""
        return tuple(self._window)

    @property
    def ended(self) -> bool:
        """Whether the stream ended (the playlist carries EXT-X-ENDLIST)."""
        return self._ended

    def playlist(self) -> str:
        """The current media playlist; :class:`NotFound` until the first segment exists."""
        if not self._window:
            raise NotFound("the playlist has no segment yet")
        return render_media_playlist(
            self._window,
            target_duration=target_duration_for(self._longest),
            discontinuity_sequence=self._discontinuity_sequence,
            ended=self._ended,
        )

    def on_config(self, config: VideoConfig | AudioConfig) -> list[PackagerEvent]:
        """A track's codec configuration arrived (or changed).

        Raises :class:`~streamit.errors.UnsupportedCodec` for codecs MPEG-TS segments cannot carry.
        """
        had_tracks = (self._muxer.video is not None, self._muxer.audio is not None)
        self._muxer.set_config(config)
        events = self._take_deferred()
        if isinstance(config, VideoConfig):
            step = int(CLOCK / config.fps) if config.fps else None
            self._segmenter.add_track(TrackKind.VIDEO, step)
        else:
            # The core sample rate: an HE-AAC frame doubles both its samples and its output rate.
            rate = SAMPLING_FREQUENCIES[config.sampling_index]
            self._segmenter.add_track(TrackKind.AUDIO, CLOCK * AAC_FRAME_SAMPLES // rate)
        tracks = (self._muxer.video is not None, self._muxer.audio is not None)
        if tracks != had_tracks and self._open_time is not None:
            # The open segment must announce the new elementary stream before carrying it.
            self._flush_audio()
            self._append(self._muxer.psi())
        return events

    def on_frame(self, frame: Frame, wallclock: datetime) -> list[PackagerEvent]:
        """Package one frame; ``wallclock`` is when it arrived (UTC; a naive value is taken as UTC).

        Frames of a track without configuration are dropped.  Raises
        :class:`~streamit.errors.RemoteProtocolError` for malformed frames (the packager is then
        unchanged) and :class:`LocalProtocolError` after :meth:`end` without :meth:`restart`.
        """
        if self._ended:
            raise LocalProtocolError("frame after end(); call restart() for a new publish")
        time_base = frame.time_base
        if time_base is not self._time_base:
            self._time_base = time_base
            # Reduced once per time base: 1/1000 → 1/90000 becomes one multiplication by 90.
            ratio = time_base * CLOCK
            self._scale = (ratio.numerator, ratio.denominator)
        numerator, denominator = self._scale
        dts = frame.dts * numerator // denominator
        kind = frame.track
        segmenter = self._segmenter
        decision = segmenter.decide(kind, dts, frame.keyframe)
        if decision is APPEND:
            if kind is _VIDEO:
                # The packets' pieces go straight into the open segment: its join copies them once.
                size = self._muxer.mux_video_into(self._open, frame)
            else:
                data = self._muxer.mux(frame)
                size = len(data)
                if size:
                    self._open.append(data)
            # Deferred events are taken only now: a malformed frame (raised above) must not lose them.
            events = self._take_deferred() if self._deferred else []
            segmenter.accept(kind, dts, decision)
            if size:
                self._open_size += size
                if self._open_size >= self._flush_bytes:
                    events.append(self._take_open())
            return events
        placement = decision.placement
        if decision.closed_duration is not None or placement is _START:
            # Grouped audio belongs to the segment that is open now, before any cut.
            self._flush_audio()
        pieces: list[bytes | bytearray] = []
        if placement is _DROP:
            size = 0
        elif kind is _VIDEO:
            size = self._muxer.mux_video_into(pieces, frame, psi=placement is _START)
        else:
            data = self._muxer.mux(frame, psi=placement is _START)
            size = len(data)
            pieces.append(data)
        events = self._take_deferred() if self._deferred else []
        if not size and placement is _START:
            return events  # an empty access unit cannot start a segment
        segmenter.accept(kind, dts, decision)
        if decision.closed_duration is not None:
            events.extend(self._close(decision.closed_duration))
        if placement is _START:
            self._open = pieces
            self._open_size = size
            self._open_name = segment_name(self._next_sequence)
            self._open_time = wallclock
            # A discontinuity before the very first segment is no discontinuity for players.
            self._open_discontinuity = decision.discontinuity and self._next_sequence > 0
            if self._open_size >= self._flush_bytes:
                events.append(self._take_open())
        return events

    def end(self) -> list[PackagerEvent]:
        """The publisher stopped: flush the open segment and publish the playlist with EXT-X-ENDLIST."""
        events = self._take_deferred()
        if self._ended:
            return events
        self._ended = True
        self._flush_audio()
        duration = self._segmenter.finish()
        if duration is not None:
            events.extend(self._close(duration))
        elif self._window:
            events.append(PlaylistUpdated(self.playlist()))
        return events

    def restart(self) -> None:
        """A new publish of the same stream: the sequence continues, the next segment is discontinuous.

        A segment still open (takeover without :meth:`end`) is closed, and it and a playlist without
        EXT-X-ENDLIST are returned with the next call's events.  Codec configurations must be given again.
        """
        self._flush_audio()
        duration = self._segmenter.finish()
        was_ended = self._ended
        self._ended = False
        if duration is not None:
            self._deferred.extend(self._close(duration))
        elif was_ended and self._window:
            self._deferred.append(PlaylistUpdated(self.playlist()))
        self._segmenter.mark_discontinuity()
        self._segmenter.clear_tracks()
        self._muxer.reset()

    def _flush_audio(self) -> None:
        """Write the audio frames the muxer is still grouping into the open segment."""
        if self._muxer.audio_pending:
            data = self._muxer.flush_audio()
            if self._open_time is not None:
                self._append(data)

    def _append(self, data: bytes | bytearray) -> None:
        """Add bytes to the open segment (small ones: the next frame checks the flush size)."""
        self._open.append(data)
        self._open_size += len(data)

    def _take_open(self) -> SegmentAppended:
        """Hand out the open segment's bytes gathered so far."""
        data = b"".join(self._open)
        self._open = []
        self._open_size = 0
        return SegmentAppended(self._open_name, data)

    def _take_deferred(self) -> list[PackagerEvent]:
        events, self._deferred = self._deferred, []
        return events

    def _close(self, duration: Fraction) -> list[PackagerEvent]:
        """Finish the open segment: hand over its bytes, slide the window, publish the playlist."""
        assert self._open_time is not None
        sequence = self._next_sequence
        self._next_sequence += 1
        segment = Segment(
            sequence=sequence,
            name=self._open_name,
            duration=duration,
            program_date_time=self._open_time,
            discontinuity=self._open_discontinuity,
            data=b"".join(self._open),
        )
        self._open = []
        self._open_size = 0
        self._open_time = None
        self._longest = max(self._longest, duration)
        events: list[PackagerEvent] = [SegmentReady(segment)]
        self._window.append(replace(segment, data=b""))
        while len(self._window) > self._playlist_length:
            dropped = self._window.popleft()
            if dropped.discontinuity:
                self._discontinuity_sequence += 1
            self._expiring.append(dropped.name)
        events.append(PlaylistUpdated(self.playlist()))
        while len(self._expiring) > self._expire_grace:
            events.append(SegmentExpired(self._expiring.popleft()))
        return events
