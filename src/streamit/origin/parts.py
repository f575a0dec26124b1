"""The origin's live LL-HLS state: each stream's packager, its parts in memory, and requests waiting on them.

LL-HLS objects (``ll.m3u8``, ``init.mp4``, ``seg-*.m4s``, ``part-*.m4s``) exist only for the playlist window
(plus the packager's expiry grace).  A part is worth something for a few seconds, and only for the newest
:data:`PART_SEGMENTS` complete segments (the playlist lists parts only near its live end).  Whole segments
go to disk next to the MPEG-TS ones when the registry has a directory, else they stay in memory.  A segment
is the concatenation of its parts, so once it is complete its parts are served as byte ranges of it (from
the page cache, for a segment on disk): memory holds the init segments and the parts of the segment being
built, plus the segments the disk refused.  The playlist is rendered when it is requested, once per
change.  Once a publish has ended everything is released after :data:`ENDED_RETENTION` seconds.

Blocking requests (RFC 8216bis §6.2.5.2) wait here with asyncio: every change of the stream (a part, a
playlist, the end) wakes the waiters, each of which checks whether what it waits for exists.  The packager
itself stays pure; this module only carries out its events.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from streamit.errors import InvalidInput, NotFound, RemoteProtocolError
from streamit.hls.parts import (
    InitSegmentReady,
    LlHlsEvent,
    LlHlsPackager,
    Part,
    PartReady,
    PlaylistUpdated,
    SegmentExpired,
    SegmentReady,
)
from streamit.media.frame import AudioConfig, Frame, VideoConfig
from streamit.origin.store import SLUG_PATTERN, read_file, write_chunks_atomically

log = logging.getLogger(__name__)

LL_PLAYLIST_NAME = "ll.m3u8"
PART_PATTERN = re.compile(r"^part-([0-9]{6,9})-([0-9]{1,4})\.m4s$")
SEGMENT_PATTERN = re.compile(r"^seg-[0-9]{6,9}\.m4s$")
LL_OBJECT_PATTERN = re.compile(
    r"^(?:init(?:-[0-9]{1,6})?\.mp4|seg-[0-9]{6,9}\.m4s|part-[0-9]{6,9}-[0-9]{1,4}\.m4s)$"
)
HOLD_TARGETS = 3
"""A blocking request is answered 503 after this many target durations (RFC 8216bis §6.2.5.2)."""
MAX_SEGMENTS_AHEAD = 2
"""``_HLS_msn`` beyond the last segment plus this is a 400 (RFC 8216bis §6.2.5.2)."""
PART_SEGMENTS = 3
"""Complete segments whose parts stay held; the playlist lists parts for about the last three target
durations only (RFC 8216bis §4.4.4.9 lets a server drop parts older than that)."""
ENDED_RETENTION = 30.0
"""Seconds an ended stream's LL-HLS objects stay for players finishing the last seconds."""


class WaitOutcome(enum.Enum):
    """How a blocking request ended."""

    READY = "ready"  # what it waited for exists (or never will: the stream ended)
    TOO_FAR = "too_far"  # 400: asks for a segment more than two ahead of the last
    TIMED_OUT = "timed_out"  # 503: not produced within the hold limit
    BUSY = "busy"  # 503: the stream already has its maximum of waiting requests


@dataclass(frozen=True, slots=True)
class PlaylistRequest:
    """A playlist request's delivery directives (RFC 8216bis §6.2.5)."""

    msn: int | None = None
    part: int | None = None
    skip: bool = False

    @property
    def blocking(self) -> bool:
        """Whether the request asks the server to hold it until a segment or part exists."""
        return self.msn is not None


def parse_playlist_query(params: Iterable[tuple[str, str]]) -> PlaylistRequest:
    """The directives of a playlist URL's query; :class:`InvalidInput` for malformed ones (a 400).

    ``_HLS_msn`` and ``_HLS_part`` are decimal integers, ``_HLS_part`` needs ``_HLS_msn``; ``_HLS_skip`` is
    ``YES`` or ``v2`` (we have no date ranges to skip, so both mean the same).  Other parameters are ignored.
    """
    values: dict[str, str] = {}
    for name, value in params:
        if name in {"_HLS_msn", "_HLS_part", "_HLS_skip"}:
            if name in values:
                raise InvalidInput(f"{name} given twice")
            values[name] = value
    msn = _decimal(values.get("_HLS_msn"), "_HLS_msn")
    part = _decimal(values.get("_HLS_part"), "_HLS_part")
    if part is not None and msn is None:
        raise InvalidInput("_HLS_part needs _HLS_msn")
    skip_value = values.get("_HLS_skip")
    if skip_value not in (None, "YES", "v2"):
        raise InvalidInput("_HLS_skip must be YES or v2")
    return PlaylistRequest(msn=msn, part=part, skip=skip_value is not None)


def _decimal(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{name} must be a decimal integer")
    return int(value)


class LiveLlHls:
    """One stream's LL-HLS packager, the objects it produced, and the requests waiting for more."""

    def __init__(
        self,
        packager: LlHlsPackager,
        *,
        target_duration: Fraction,
        max_waiters: int,
        directory: Path | None = None,
    ) -> None:
        self.packager = packager
        self.directory = directory
        self._disk_error_logged = False
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            # Names restart at 0 in a new process: a previous run's segments must never be served.
            for stale in directory.glob("seg-*.m4s"):
                stale.unlink(missing_ok=True)
        self.hold_limit = float(HOLD_TARGETS * target_duration)
        self.max_waiters = max_waiters
        self.waiting = 0
        self._objects: dict[str, bytes] = {}
        # Parts of the open segment, kept in their chunks (the frames' own bytes): joined only when requested.
        self._open_parts: dict[str, Part] = {}
        # Parts of complete segments: (segment name, offset, size) within the segment's bytes, which are
        # in _objects when the disk refused them (or there is no directory), else on disk.
        self._ranges: dict[str, tuple[str, int, int]] = {}
        self._state: PlaylistUpdated | None = None  # the newest playlist, rendered on request
        self._playlist: str | None = None
        self._delta: str | None = None
        self._changed = asyncio.Event()
        self._dts_error_logged = False
        self._part_names: deque[tuple[str, ...]] = deque()
        self._release: asyncio.TimerHandle | None = None
        self.closed = False

    # --- feeding -----------------------------------------------------------------------------------------

    def on_config(self, config: VideoConfig | AudioConfig) -> None:
        """A codec configuration of the publish."""
        self.apply(self.packager.on_config(config))

    def on_frame(self, frame: Frame, wallclock: datetime) -> None:
        """A frame of the publish; one the packager refuses (DTS going backwards) is dropped and logged."""
        try:
            events = self.packager.on_frame(frame, wallclock)
        except RemoteProtocolError as exc:
            if not self._dts_error_logged:
                log.warning("LL-HLS: frame dropped: %s", exc)
                self._dts_error_logged = True
            return
        if events:  # most frames only join the open part
            self.apply(events)

    def end(self) -> None:
        """The publish ended: the playlist gets EXT-X-ENDLIST and every waiter is answered.

        Its objects are released :data:`ENDED_RETENTION` seconds later (at once without an event loop).
        """
        self.apply(self.packager.end())
        self._wake()
        self._cancel_release()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.release()
            return
        self._release = loop.call_later(ENDED_RETENTION, self.release)

    def _write(self, name: str, chunks: Sequence[bytes]) -> bool:
        """Put a whole segment on disk; False (it stays in memory) without a directory or when it fails."""
        if self.directory is None:
            return False
        try:
            write_chunks_atomically(self.directory / name, chunks)
        except OSError as exc:
            if not self._disk_error_logged:
                log.error("LL-HLS: cannot write to %s (%s); keeping segments in memory", self.directory, exc)
                self._disk_error_logged = True
            return False
        return True

    def release(self) -> None:
        """Drop every object and the playlist of an ended publish (requests for them become 404s)."""
        self._release = None
        if self.directory is not None:
            for path in self.directory.glob("seg-*.m4s"):
                path.unlink(missing_ok=True)
        self._objects.clear()
        self._open_parts.clear()
        self._ranges.clear()
        self._part_names.clear()
        self._state = None
        self._playlist = None
        self._delta = None

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def restart(self) -> None:
        """A new publish of the stream (republish or takeover); numbering continues."""
        self._cancel_release()
        self.apply(self.packager.restart())
        self._wake()

    def apply(self, events: Iterable[LlHlsEvent]) -> None:
        """Carry out the packager's events in order; waiters are woken once, after all of them."""
        changed = False
        for event in events:
            changed = True
            if isinstance(event, InitSegmentReady):
                self._objects[event.name] = event.data
            elif isinstance(event, PartReady):
                self._open_parts[event.part.name] = event.part
            elif isinstance(event, SegmentReady):
                self._store_segment(event)
            elif isinstance(event, PlaylistUpdated):
                self._state = event
                self._playlist = None
                self._delta = None
            elif isinstance(event, SegmentExpired):
                self._objects.pop(event.name, None)
                if self.directory is not None:
                    (self.directory / event.name).unlink(missing_ok=True)
                for name in event.part_names:
                    self._objects.pop(name, None)
                    self._open_parts.pop(name, None)
                    self._ranges.pop(name, None)
        if changed:
            self._wake()

    def _store_segment(self, event: SegmentReady) -> None:
        """Keep a complete segment (on disk, else in memory); its parts become ranges of it."""
        segment = event.segment
        chunks = list(itertools.chain.from_iterable([part.chunks for part in segment.parts]))
        if not self._write(segment.name, chunks):
            self._objects[segment.name] = b"".join(chunks)
        objects = self._objects
        open_parts = self._open_parts
        ranges = self._ranges
        offset = 0
        for part in segment.parts:
            size = part.size
            objects.pop(part.name, None)
            open_parts.pop(part.name, None)
            ranges[part.name] = (segment.name, offset, size)
            offset += size
        self._part_names.append(tuple(part.name for part in segment.parts))
        while len(self._part_names) > PART_SEGMENTS:
            for name in self._part_names.popleft():
                ranges.pop(name, None)

    def close(self) -> None:
        """This state is replaced or dropped: answer every waiter now."""
        self._cancel_release()
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- reading -----------------------------------------------------------------------------------------

    @property
    def memory_bytes(self) -> int:
        """Bytes of parts, segments and initialization segments held."""
        return sum(len(data) for data in self._objects.values()) + sum(
            part.size for part in self._open_parts.values()
        )

    def playlist(self, *, skip: bool = False) -> str:
        """The current playlist (a delta update with ``skip``); :class:`NotFound` before the first part."""
        state = self._state
        if state is None:
            raise NotFound("no LL-HLS playlist yet")
        if skip:
            if self._delta is None:
                self._delta = state.render(skip=True)
            return self._delta
        if self._playlist is None:
            self._playlist = state.render()
        return self._playlist

    def _holds(self, name: str) -> bool:
        return name in self._objects or name in self._open_parts or name in self._ranges

    def object(self, name: str) -> bytes:
        """An init segment, segment or part by name; :class:`NotFound` when it is not (or no longer) held."""
        data = self._objects.get(name)
        if data is not None:
            return data
        part = self._open_parts.get(name)
        if part is not None:
            # Joined per request, not kept: a copy would double the open segment's memory, and a part is
            # asked of the origin by few clients (the edges) in the two seconds before it becomes a range.
            return part.data
        span = self._ranges.get(name)
        if span is not None:
            segment, offset, size = span
            whole = self._objects.get(segment)
            if whole is not None:
                return whole[offset : offset + size]
            if self.directory is not None:
                return read_range(self.directory / segment, offset, size)
        elif self.directory is not None and SEGMENT_PATTERN.match(name) and self._state is not None:
            return read_file(self.directory / name)
        raise NotFound(name)

    def last_msn(self) -> int:
        """The media sequence number of the last segment in the playlist (the open one included), or -1."""
        hint = self.packager.next_part
        if hint is not None:
            return hint[0]
        segments = self.packager.segments
        return segments[-1].msn if segments else -1

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist holds segment ``msn`` (complete, without ``part``) or its part ``part``."""
        if part is None:
            hint = self.packager.next_part
            next_msn = hint[0] if hint is not None else self.last_msn() + 1
            return msn < next_msn
        return self.packager.has_part(msn, part)

    async def wait_for_playlist(self, request: PlaylistRequest) -> WaitOutcome:
        """Hold a blocking request until the playlist holds what it asks for (RFC 8216bis §6.2.5.2)."""
        msn = request.msn
        if msn is None:
            return WaitOutcome.READY
        if msn > self.last_msn() + MAX_SEGMENTS_AHEAD:
            return WaitOutcome.TOO_FAR
        return await self._wait(
            lambda: self.packager.ended or (self._state is not None and self.has(msn, request.part))
        )

    async def wait_for_part(self, name: str) -> WaitOutcome:
        """Hold a request for the part the preload hint names until it is complete.

        Any other part is answered at once (it exists or it is a 404).  Should the hinted part never come
        (the segment was closed without it, the stream ended), the request is answered as soon as that is
        known.
        """
        match = PART_PATTERN.match(name)
        if match is None or self._holds(name):
            return WaitOutcome.READY
        wanted = (int(match.group(1)), int(match.group(2)))
        if self.packager.next_part != wanted:
            return WaitOutcome.READY
        return await self._wait(lambda: self._holds(name) or self.packager.next_part != wanted)

    async def _wait(self, ready: Callable[[], bool]) -> WaitOutcome:
        if ready():
            return WaitOutcome.READY
        if self.waiting >= self.max_waiters:
            return WaitOutcome.BUSY
        self.waiting += 1
        try:
            async with asyncio.timeout(self.hold_limit):
                while not ready() and not self.closed:
                    await self._changed.wait()
        except TimeoutError:
            return WaitOutcome.TIMED_OUT
        finally:
            self.waiting -= 1
        return WaitOutcome.READY


def read_range(path: Path, offset: int, size: int) -> bytes:
    """``size`` bytes of the file at ``path`` from ``offset``; :class:`NotFound` if it has not that many."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(path.name) from exc
    if len(data) != size:
        raise NotFound(path.name)
    return data


class LlHlsStoreRegistry:
    """The live LL-HLS state of every stream this origin packages, by slug; whole segments are written to
    ``root/<slug>/`` when ``root`` is given."""

    def __init__(
        self,
        *,
        target_duration: Fraction,
        part_target: Fraction,
        playlist_length: int,
        max_waiters: int = 10_000,
        root: Path | None = None,
    ) -> None:
        self.root = root
        self.target_duration = target_duration
        self.part_target = part_target
        self.playlist_length = playlist_length
        self.max_waiters = max_waiters
        self._streams: dict[str, LiveLlHls] = {}

    def open(self, slug: str) -> LiveLlHls:
        """A fresh LL-HLS state for ``slug`` (replacing any previous one, whose waiters are answered)."""
        if not SLUG_PATTERN.match(slug):
            raise InvalidInput(f"invalid slug {slug!r}")
        self.remove(slug)
        live = LiveLlHls(
            LlHlsPackager(
                target_duration=self.target_duration,
                part_target=self.part_target,
                playlist_length=self.playlist_length,
            ),
            target_duration=self.target_duration,
            max_waiters=self.max_waiters,
            directory=None if self.root is None else self.root / slug,
        )
        self._streams[slug] = live
        return live

    def get(self, slug: str) -> LiveLlHls | None:
        """The LL-HLS state of ``slug``, if this origin packages it."""
        return self._streams.get(slug)

    def remove(self, slug: str) -> None:
        """Forget ``slug``; requests waiting on it are answered."""
        live = self._streams.pop(slug, None)
        if live is not None:
            live.close()

    @property
    def memory_bytes(self) -> int:
        """Bytes held for every stream."""
        return sum(live.memory_bytes for live in self._streams.values())


__all__ = [
    "LL_OBJECT_PATTERN",
    "LL_PLAYLIST_NAME",
    "LiveLlHls",
    "LlHlsStoreRegistry",
    "PlaylistRequest",
    "WaitOutcome",
    "parse_playlist_query",
]
