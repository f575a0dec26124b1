"""Segment storage for one origin: the newest segments in memory, every segment of the window on disk.

Disk layout: ``<root>/<slug>/index.m3u8`` and ``<root>/<slug>/<segment>.ts``.  Every file is written to a
temporary name and renamed into place, so a reader (our HTTP routes, nginx, an external watcher) never
sees a half-written playlist or segment (RFC 8216 §6.2.2: the playlist must always reference complete
segments).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from streamit.errors import NotFound
from streamit.hls import PackagerEvent, PlaylistUpdated, SegmentExpired, SegmentReady

log = logging.getLogger(__name__)

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\.ts$")
PLAYLIST_NAME = "index.m3u8"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (atomic on POSIX).

    On failure (disk full …) the temporary file is removed and the error raised; ``path`` is untouched.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


class SegmentStore:
    """Playlist and segments of one stream.

    The newest ``memory_segments`` segments and the current playlist are kept in memory, so live viewers
    are served without touching the disk; everything in the playlist window is also on disk.
    """

    def __init__(self, root: Path, slug: str, *, memory_segments: int = 3) -> None:
        if not SLUG_PATTERN.match(slug):
            raise ValueError(f"invalid slug {slug!r}")
        self.slug = slug
        self.directory = root / slug
        self.memory_segments = memory_segments
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        # Segments the disk refused: kept in memory until they leave the playlist window.
        self._unwritten: set[str] = set()
        self._playlist: bytes | None = None
        self.write_error: str | None = None
        """Why the last write to disk failed, while writes keep failing (``None`` when they succeed)."""
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def memory_bytes(self) -> int:
        """Bytes of segment data currently held in memory."""
        return sum(len(v) for v in self._memory.values())

    def release_memory(self) -> None:
        """Drop the in-memory copies (the stream ended); the files stay and are served from disk.

        What the disk refused stays in memory: the ended playlist and its segments exist nowhere else.
        """
        if self._unwritten:
            return
        self._memory.clear()
        self._playlist = None

    def reset(self) -> None:
        """Remove every file of a previous broadcast (a fresh packager starts numbering again)."""
        self._memory.clear()
        self._unwritten.clear()
        self.write_error = None
        self._playlist = None
        for entry in self.directory.iterdir():
            if entry.is_file() and (entry.suffix in {".ts", ".m3u8", ".tmp"}):
                entry.unlink(missing_ok=True)

    def _write(self, name: str, data: bytes) -> bool:
        try:
            write_atomically(self.directory / name, data)
        except OSError as exc:
            if self.write_error is None:
                log.error(
                    "stream %s: cannot write to %s (%s); serving from memory", self.slug, self.directory, exc
                )
            self.write_error = f"{exc.strerror or exc}"
            return False
        if self.write_error is not None:
            log.info("stream %s: writing to %s works again", self.slug, self.directory)
            self.write_error = None
        return True

    def apply(self, events: Iterable[PackagerEvent]) -> None:
        """Carry out the packager's events: store new segments, drop expired ones, publish playlists.

        When the disk refuses a write (full, read-only …) the stream goes on from memory: segments that
        could not be written stay in memory until they leave the playlist window, the playlist is served
        from memory, and :attr:`write_error` says why.  The playlist on disk is never half-written.
        """
        for event in events:
            if isinstance(event, SegmentReady):
                segment = event.segment
                written = self._write(segment.name, segment.data)
                if not written:
                    self._unwritten.add(segment.name)
                if self.memory_segments or not written:
                    self._memory[segment.name] = segment.data
                    excess = len(self._memory) - self.memory_segments
                    for name in [n for n in self._memory if n not in self._unwritten][: max(0, excess)]:
                        del self._memory[name]
            elif isinstance(event, SegmentExpired):
                self._memory.pop(event.name, None)
                self._unwritten.discard(event.name)
                (self.directory / event.name).unlink(missing_ok=True)
            elif isinstance(event, PlaylistUpdated):
                data = event.text.encode()
                # Segments are on disk before the playlist that names them (RFC 8216 §6.2.2); a playlist
                # naming a segment the disk refused stays in memory only.
                if not self._unwritten:
                    self._write(PLAYLIST_NAME, data)
                self._playlist = data

    def playlist(self) -> bytes:
        """The current playlist; from disk when this process has not packaged the stream."""
        if self._playlist is not None:
            return self._playlist
        return read_file(self.directory / PLAYLIST_NAME)

    def segment(self, name: str) -> bytes:
        """One segment's bytes, from memory when it is among the newest."""
        data = self._memory.get(name)
        if data is not None:
            return data
        return read_file(self.directory / name)


def read_file(path: Path) -> bytes:
    """Read a whole file or raise :class:`NotFound`."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(path.name) from exc


class SegmentStoreRegistry:
    """The segment stores of every stream this origin has, by slug."""

    def __init__(self, root: Path, *, memory_segments: int = 3) -> None:
        self.root = root
        self.memory_segments = memory_segments
        self._stores: dict[str, SegmentStore] = {}
        root.mkdir(parents=True, exist_ok=True)

    def close_stale_playlists(self) -> list[str]:
        """Append EXT-X-ENDLIST to playlists a crashed run left open; returns their slugs.

        Called at start-up, when nothing is being packaged: a playlist without ENDLIST would make
        players poll a stream that can never continue (RFC 8216 §6.3.4 — the client keeps reloading).
        """
        closed: list[str] = []
        for playlist in sorted(self.root.glob(f"*/{PLAYLIST_NAME}")):
            slug = playlist.parent.name
            if not SLUG_PATTERN.match(slug) or slug in self._stores:
                continue
            text = playlist.read_bytes()
            if b"#EXT-X-ENDLIST" in text:
                continue
            write_atomically(playlist, text.rstrip(b"\n") + b"\n#EXT-X-ENDLIST\n")
            closed.append(slug)
        return closed

    def open(self, slug: str) -> SegmentStore:
        """The store for ``slug``, created on first use."""
        store = self._stores.get(slug)
        if store is None:
            store = SegmentStore(self.root, slug, memory_segments=self.memory_segments)
            self._stores[slug] = store
        return store

    def write_errors(self) -> dict[str, str]:
        """Streams whose segments or playlists cannot be written to disk now, with the reason."""
        return {slug: store.write_error for slug, store in self._stores.items() if store.write_error}

    def get(self, slug: str) -> SegmentStore | None:
        """The store of ``slug`` if this process packages it."""
        return self._stores.get(slug)

    def remove(self, slug: str, *, delete_files: bool = False) -> None:
        """Forget ``slug``; optionally delete its directory."""
        self._stores.pop(slug, None)
        if delete_files and SLUG_PATTERN.match(slug):
            shutil.rmtree(self.root / slug, ignore_errors=True)

    def playlist(self, slug: str) -> bytes:
        """The playlist of ``slug``, from memory or disk; :class:`NotFound` if there is none."""
        if not SLUG_PATTERN.match(slug):
            raise NotFound(slug)
        store = self._stores.get(slug)
        if store is not None:
            return store.playlist()
        return read_file(self.root / slug / PLAYLIST_NAME)

    def segment(self, slug: str, name: str) -> bytes:
        """One segment of ``slug``; :class:`NotFound` if unknown.  Names are validated: no traversal."""
        if not SLUG_PATTERN.match(slug) or not SEGMENT_PATTERN.match(name):
            raise NotFound(name)
        store = self._stores.get(slug)
        if store is not None:
            return store.segment(name)
        return read_file(self.root / slug / name)
