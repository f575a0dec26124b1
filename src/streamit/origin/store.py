"""Segment storage for one origin: every segment of the window on disk, recently requested ones in memory.

Disk layout: ``<root>/<slug>/index.m3u8`` and ``<root>/<slug>/<segment>.ts``.  Every file is written to a
temporary name and renamed into place, so a reader (our HTTP routes, nginx, an external watcher) never
sees a half-written playlist or segment (RFC 8216 §6.2.2: the playlist must always reference complete
segments).  A segment being built grows in its temporary file as the packager hands its bytes out
(:class:`~streamit.hls.events.SegmentAppended`), so no whole segment is held in memory while it is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from streamit.errors import NotFound
from streamit.hls.events import PackagerEvent, PlaylistUpdated, SegmentAppended, SegmentExpired, SegmentReady

log = logging.getLogger(__name__)

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}\.ts$")
PLAYLIST_NAME = "index.m3u8"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (atomic on POSIX).

    On failure (disk full …) the temporary file is removed and the error raised; ``path`` is untouched.
    """
    write_chunks_atomically(path, (data,))


def write_chunks_atomically(path: Path, chunks: Sequence[bytes]) -> None:
    """:func:`write_atomically` for data in pieces (an LL-HLS segment's frames), without joining them first.

    The pieces go to the kernel with ``writev``: neither joined nor copied through a file object's buffer
    (an LL-HLS segment is a few hundred pieces, most smaller than that buffer).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, chunks)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


IOV_MAX = 1024
"""Buffers per ``writev`` call (POSIX guarantees at least 16; Linux takes 1024)."""


def write_all(fd: int, chunks: Sequence[bytes | bytearray]) -> int:
    """Write every chunk to ``fd`` with ``writev``; a short write resumes inside the chunk it stopped in.

    Returns the bytes written.  On an error (a full disk …) the chunks before it may be written in part.
    """
    pending: list[bytes | bytearray | memoryview] = list(chunks)
    total = 0
    while pending:
        batch = pending[:IOV_MAX]
        written = os.writev(fd, batch)
        total += written
        if written == sum(map(len, batch)):
            del pending[:IOV_MAX]
            continue
        done = 0
        while written >= len(pending[done]):
            written -= len(pending[done])
            done += 1
        del pending[:done]
        pending[0] = memoryview(pending[0])[written:]
    return total


class PlaylistWriter:
    """Replaces playlist files on disk from a thread of its own, so the event loop never waits on it.

    Replacing a file by renaming another over it makes ext4 (``auto_da_alloc``, on by default) start writing
    the new file's data back inside the rename: measured here, 0.2 ms typically and 5–12 ms at the 99th
    percentile, and seconds in all over 20 s with ten streams publishing — seconds the event loop carrying
    every stream stood still.  Segments keep going to disk on the loop (appends and renames to new names,
    which do not wait).

    Each path holds only its newest text while it waits (a newer playlist makes an older one moot).  A
    playlist goes to disk after the segments it names (they were put in place before it was submitted), and
    segments leave the disk only ``expire_grace`` segments after they left the playlist, so a reader of the
    disk never finds a listed segment missing.  ``done`` is called with the write's error (or ``None``) on
    the writer's thread.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: dict[Path, tuple[bytes, Callable[[OSError | None], None]]] = {}
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, path: Path, data: bytes, done: Callable[[OSError | None], None]) -> None:
        """Write ``data`` to ``path`` atomically, soon; replaces a write to ``path`` still waiting."""
        with self._condition:
            if self._closed:
                raise RuntimeError("the playlist writer is closed")
            self._pending.pop(path, None)
            self._pending[path] = (data, done)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="streamit-playlists", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closed:
                    self._condition.wait()
                if not self._pending:
                    return
                path = next(iter(self._pending))
                data, done = self._pending.pop(path)
                self._busy = True
            error: OSError | None = None
            try:
                write_atomically(path, data)
            except OSError as exc:
                error = exc
            try:
                done(error)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def discard(self, directory: Path) -> None:
        """Forget the writes still waiting under ``directory``, and wait for the one under way (if any)."""
        with self._condition:
            for path in [path for path in self._pending if path.parent == directory]:
                del self._pending[path]
            while self._busy:
                self._condition.wait()

    def flush(self) -> None:
        """Wait until every submitted playlist is on disk (or failed)."""
        with self._condition:
            while self._pending or self._busy:
                self._condition.wait()

    def close(self) -> None:
        """Write what waits, then stop the thread; later submissions are refused."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()


class _GrowingFile:
    """The temporary file of the segment being built, and how many of its bytes reached it.

    Its descriptor stays open from the first write until the segment is finished or abandoned: a segment
    grows by tens of appends, and opening the file for each cost a path lookup and two more system calls
    per append.  A stream holds at most this one descriptor for its segments.
    """

    __slots__ = ("fd", "path", "written")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.written = 0

    def write(self, data: bytes) -> None:
        """Append all of ``data`` (a full disk may take part of it before refusing the rest)."""
        fd = self.fd
        if fd is None:
            fd = self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        view = memoryview(data)
        while view:
            count = os.write(fd, view)
            self.written += count
            view = view[count:]

    def close(self) -> None:
        """Close the file's descriptor (the file stays)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def written_bytes(self) -> bytes:
        """What reached the file so far (as much of it as can still be read)."""
        if not self.written:
            return b""
        try:
            with open(self.path, "rb") as file:
                return file.read(self.written)
        except OSError as exc:
            log.error("cannot read back %s (%s): the segment loses its first bytes", self.path, exc)
            return b""

    def discard(self) -> None:
        """Close and remove the temporary file."""
        self.close()
        self.path.unlink(missing_ok=True)


class SegmentStore:
    """Playlist and segments of one stream.

    Segments go to disk as they are built; the current playlist is kept in memory, and so are the last
    ``memory_segments`` segments that were requested (read back from the page cache on the first request),
    so that live viewers asking for the same new segment are served without touching the disk.  Nothing
    is cached for a stream nobody watches.
    """

    def __init__(
        self, root: Path, slug: str, *, memory_segments: int = 3, writer: PlaylistWriter | None = None
    ) -> None:
        if not SLUG_PATTERN.match(slug):
            raise ValueError(f"invalid slug {slug!r}")
        self.slug = slug
        self._writer = writer
        self.directory = root / slug
        self.memory_segments = memory_segments
        # Segments read back for viewers, least recently requested first.
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        # Segments the disk refused: kept in memory until they leave the playlist window.
        self._unwritten: dict[str, bytes] = {}
        # The segment being built: its temporary file, or (once the disk refused a write) its bytes so far.
        self._growing: _GrowingFile | None = None
        self._growing_name = ""
        self._held: list[bytes] = []
        self._playlist: bytes | None = None
        self.write_error: str | None = None
        """Why the last write to disk failed, while writes keep failing (``None`` when they succeed)."""
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def memory_bytes(self) -> int:
        """Bytes of segment data currently held in memory."""
        return (
            sum(map(len, self._memory.values()))
            + sum(map(len, self._unwritten.values()))
            + sum(map(len, self._held))
        )

    def release_memory(self) -> None:
        """Drop the in-memory copies (the stream ended); the files stay and are served from disk.

        What the disk refused stays in memory: the ended playlist and its segments exist nowhere else.
        """
        self._memory.clear()
        if self._unwritten:
            return
        self._playlist = None

    def reset(self) -> None:
        """Remove every file of a previous broadcast (a fresh packager starts numbering again)."""
        self.close()
        if self._writer is not None:
            self._writer.discard(self.directory)
        self._memory.clear()
        self._unwritten.clear()
        self.write_error = None
        self._playlist = None
        for entry in self.directory.iterdir():
            if entry.is_file() and (entry.suffix in {".ts", ".m3u8", ".tmp"}):
                entry.unlink(missing_ok=True)

    def close(self) -> None:
        """Abandon the segment being built, if any (its packager is gone without closing it)."""
        if self._growing is not None:
            self._growing.discard()
            self._growing = None
        self._growing_name = ""
        self._held = []

    def _failed(self, exc: OSError) -> None:
        if self.write_error is None:
            log.error(
                "stream %s: cannot write to %s (%s); serving from memory", self.slug, self.directory, exc
            )
        self.write_error = f"{exc.strerror or exc}"

    def _succeeded(self) -> None:
        if self.write_error is not None:
            log.info("stream %s: writing to %s works again", self.slug, self.directory)
            self.write_error = None

    def _write(self, name: str, data: bytes) -> bool:
        try:
            write_atomically(self.directory / name, data)
        except OSError as exc:
            self._failed(exc)
            return False
        self._succeeded()
        return True

    def _write_playlist(self, data: bytes) -> None:
        """The playlist to disk: through the writer's thread when there is one and an event loop to hear
        back on, else at once."""
        writer = self._writer
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if writer is None or loop is None:
            self._write(PLAYLIST_NAME, data)
            return

        def done(error: OSError | None) -> None:
            # On the writer's thread: the outcome is the loop's business.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                loop.call_soon_threadsafe(self._playlist_written, error)

        writer.submit(self.directory / PLAYLIST_NAME, data, done)

    def _playlist_written(self, error: OSError | None) -> None:
        if error is None:
            self._succeeded()
        else:
            self._failed(error)

    def _append(self, name: str, data: bytes) -> None:
        """Bytes of the segment being built: to its temporary file, or to memory once the disk refused."""
        if name != self._growing_name:
            self.close()  # a segment left unfinished (never happens with one packager)
            self._growing_name = name
            self._growing = _GrowingFile(self.directory / f".{name}.tmp")
        growing = self._growing
        if growing is None:
            self._held.append(data)
            return
        before = growing.written
        try:
            growing.write(data)
        except OSError as exc:
            self._failed(exc)
            # Keep the whole segment in memory from now on; what reached the file is read back.
            self._held = [growing.written_bytes(), data[growing.written - before :]]
            growing.discard()
            self._growing = None

    def _finish(self, name: str, tail: bytes) -> bool:
        """Complete the segment being built with its last bytes and put it in place; whether it is on disk.

        A segment the disk refused is kept in memory.
        """
        growing = self._growing
        if growing is None:
            data = b"".join([*self._held, tail])
            self.close()
            written = self._write(name, data)
            if not written:
                self._unwritten[name] = data
            return written
        self._growing = None
        self._growing_name = ""
        before = growing.written
        try:
            growing.write(tail)
            growing.close()
            os.replace(growing.path, self.directory / name)
        except OSError as exc:
            self._failed(exc)
            self._unwritten[name] = growing.written_bytes() + tail[growing.written - before :]
            growing.discard()
            return False
        self._succeeded()
        return True

    def apply(self, events: Iterable[PackagerEvent]) -> None:
        """Carry out the packager's events: store new segments, drop expired ones, publish playlists.

        When the disk refuses a write (full, read-only …) the stream goes on from memory: segments that
        could not be written stay in memory until they leave the playlist window, the playlist is served
        from memory, and :attr:`write_error` says why.  The playlist on disk is never half-written.
        """
        for event in events:
            if isinstance(event, SegmentAppended):
                self._append(event.name, event.data)
            elif isinstance(event, SegmentReady):
                segment = event.segment
                if segment.name == self._growing_name:
                    self._finish(segment.name, segment.data)
                else:
                    self.close()
                    if not self._write(segment.name, segment.data):
                        self._unwritten[segment.name] = segment.data
                self._memory.pop(segment.name, None)
            elif isinstance(event, SegmentExpired):
                self._memory.pop(event.name, None)
                self._unwritten.pop(event.name, None)
                (self.directory / event.name).unlink(missing_ok=True)
            elif isinstance(event, PlaylistUpdated):
                data = event.text.encode()
                # Segments are on disk before the playlist that names them (RFC 8216 §6.2.2); a playlist
                # naming a segment the disk refused stays in memory only.
                if not self._unwritten:
                    self._write_playlist(data)
                self._playlist = data

    def playlist(self) -> bytes:
        """The current playlist; from disk when this process has not packaged the stream."""
        if self._playlist is not None:
            return self._playlist
        return read_file(self.directory / PLAYLIST_NAME)

    def segment(self, name: str) -> bytes:
        """One segment's bytes: from memory when it was requested lately or the disk refused it."""
        memory = self._memory
        data = memory.get(name)
        if data is not None:
            memory.move_to_end(name)
            return data
        data = self._unwritten.get(name)
        if data is not None:
            return data
        data = read_file(self.directory / name)
        if self.memory_segments:
            memory[name] = data
            while len(memory) > self.memory_segments:
                memory.popitem(last=False)
        return data


def read_file(path: Path | str) -> bytes:
    """Read a whole file or raise :class:`NotFound`.

    A string path skips pathlib: players poll playlists served from disk (external packagers) thousands of
    times a second, and building two Path objects per request costs more than the reads.
    """
    try:
        with open(path, "rb", buffering=0) as fh:
            return fh.readall()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound(os.path.basename(path)) from exc


FILE_CACHE_BYTES = 64 * 1024 * 1024
"""Bytes of files read from disk that :class:`FileCache` keeps for the next request (all streams)."""


FILE_REVALIDATE_AFTER = 0.1
"""Seconds a file served from disk is served from memory before ``stat`` checks it again.

A player polls a live playlist every few seconds and a packager replaces it every segment (seconds), so
a playlist at most 100 ms old is what any viewer would have fetched a moment earlier; a ``stat`` per
request instead cost a third of a playlist hit (measured: 21.5k → 31.5k requests/s without it)."""


class FileCache:
    """Files served from disk, kept for the next request and checked against the file again once they have
    been served from memory for ``revalidate_after`` seconds.

    Streams this process does not package (an external packager writes them, or a previous run did) are
    served from disk; a player polls the playlist and every viewer fetches every segment.  A check costs one
    ``stat`` (the file's inode, size and modification time must still match: a playlist replaced by a
    rename is read afresh) instead of a read and a fresh buffer.  Bounded in bytes, least recently used
    out first.  ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        max_bytes: int = FILE_CACHE_BYTES,
        *,
        revalidate_after: float = FILE_REVALIDATE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.revalidate_after = revalidate_after
        self._clock = clock
        # path -> (identity, bytes, when the identity was last checked)
        self._entries: OrderedDict[str, tuple[tuple[int, int, int], bytes, float]] = OrderedDict()
        self._bytes = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def read(self, path: str) -> bytes:
        """The file's bytes, from memory when it was checked less than ``revalidate_after`` seconds ago or
        has not changed since it was read; :class:`NotFound` when it does not exist or is not a regular
        file (as of the last check)."""
        entries = self._entries
        entry = entries.get(path)
        now = self._clock()
        if entry is not None and now - entry[2] < self.revalidate_after:
            entries.move_to_end(path)
            return entry[1]
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            if entry is not None:
                del entries[path]
                self._bytes -= len(entry[1])
            raise NotFound(os.path.basename(path)) from exc
        identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        if entry is not None:
            if entry[0] == identity:
                entries[path] = (identity, entry[1], now)
                entries.move_to_end(path)
                return entry[1]
            del entries[path]
            self._bytes -= len(entry[1])
        data = read_file(path)
        # A file replaced between the stat and the read is served but not kept under the old identity.
        if len(data) == info.st_size and len(data) <= self.max_bytes:
            entries[path] = (identity, data, now)
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, (_, dropped, _) = entries.popitem(last=False)
                self._bytes -= len(dropped)
        return data


class SegmentStoreRegistry:
    """The segment stores of every stream this origin has, by slug."""

    def __init__(self, root: Path, *, memory_segments: int = 3, writer: PlaylistWriter | None = None) -> None:
        self.root = root
        self.writer = writer
        """Writes playlists off the event loop (``None``: each store writes its own at once)."""
        self._root = str(root)  # slug and name are validated before they are joined to it
        self.files = FileCache()
        """What is served from disk for streams this process does not package."""
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
            store = SegmentStore(self.root, slug, memory_segments=self.memory_segments, writer=self.writer)
            self._stores[slug] = store
        return store

    def close(self) -> None:
        """Put every playlist still waiting for the writer on disk and stop it (blocks until done)."""
        if self.writer is not None:
            self.writer.close()

    def write_errors(self) -> dict[str, str]:
        """Streams whose segments or playlists cannot be written to disk now, with the reason."""
        return {slug: store.write_error for slug, store in self._stores.items() if store.write_error}

    def get(self, slug: str) -> SegmentStore | None:
        """The store of ``slug`` if this process packages it."""
        return self._stores.get(slug)

    def remove(self, slug: str, *, delete_files: bool = False) -> None:
        """Forget ``slug``; optionally delete its directory."""
        store = self._stores.pop(slug, None)
        if store is not None:
            store.close()
        if delete_files and SLUG_PATTERN.match(slug):
            shutil.rmtree(self.root / slug, ignore_errors=True)

    def playlist(self, slug: str) -> bytes:
        """The playlist of ``slug``, from memory or disk; :class:`NotFound` if there is none."""
        if not SLUG_PATTERN.match(slug):
            raise NotFound(slug)
        store = self._stores.get(slug)
        if store is not None:
            return store.playlist()
        return self.files.read(f"{self._root}/{slug}/{PLAYLIST_NAME}")

    def segment(self, slug: str, name: str) -> bytes:
        """One segment of ``slug``; :class:`NotFound` if unknown.  Names are validated: no traversal."""
        if not SLUG_PATTERN.match(slug) or not SEGMENT_PATTERN.match(name):
            raise NotFound(name)
        store = self._stores.get(slug)
        if store is not None:
            return store.segment(name)
        return self.files.read(f"{self._root}/{slug}/{name}")
