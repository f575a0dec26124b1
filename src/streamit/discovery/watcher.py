"""Discovery of streams that another packager (nginx-rtmp) writes as HLS playlists into a folder."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watchfiles import Change, awatch

from streamit.discovery.location import is_valid_slug
from streamit.discovery.playlist_summary import MAX_PLAYLIST_SIZE, summarize_playlist
from streamit.discovery.registrar import OriginRegistrar
from streamit.discovery.registry import DEFAULT_TTL, Registry
from streamit.errors import RemoteProtocolError

logger = logging.getLogger(__name__)

PLAYLIST_SUFFIX = ".m3u8"
NESTED_PLAYLIST = "index.m3u8"
STALE_TARGET_DURATIONS = 3
"""A playlist not rewritten for this many target durations belongs to a stream that has stopped."""
FALLBACK_TARGET_DURATION = 10
"""Seconds assumed when a playlist lacks EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1 makes it mandatory)."""


class PlaylistState(enum.Enum):
    """What the watcher concluded from a playlist file."""

    PENDING = "pending"
    """Seen, but not yet readable as a media playlist."""
    LIVE = "live"
    """Fresh and without EXT-X-ENDLIST: registered."""
    ENDED = "ended"
    """EXT-X-ENDLIST present."""
    STALE = "stale"
    """Not rewritten within three target durations."""
    IGNORED = "ignored"
    """A master playlist: it names variants, each of which is its own stream."""


@dataclass(slots=True)
class _Playlist:
    slug: str
    relative: str
    signature: tuple[int, int, int] | None = None
    modified_at: float = 0.0
    target_duration: int = FALLBACK_TARGET_DURATION
    state: PlaylistState = PlaylistState.PENDING


class HlsFolderWatcher:
    """Registers the streams whose playlists appear under ``root`` as nginx-rtmp writes them.

    Layouts: nested ``<root>/<name>/index.m3u8`` (``hls_nested on``) and flat ``<root>/<name>.m3u8``.  A
    stream is registered when its playlist appears fresh, kept alive while it keeps changing, and removed on
    EXT-X-ENDLIST, on deletion, or after three target durations without a rewrite.  File events (watchfiles)
    make this prompt; an initial scan and a rescan every ``rescan_interval`` seconds make it complete, so
    no outcome depends on a single event.  ``clock`` is wall-clock time, compared with file mtimes.

    Entries carry the metadata ``source=hls-folder``, ``playlist`` (the path relative to ``root``, POSIX
    style) and ``target_duration``.
    """

    def __init__(
        self,
        root: Path,
        registry: Registry,
        *,
        origin_url: str,
        node: str,
        ttl: float = DEFAULT_TTL,
        rescan_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        force_polling: bool | None = None,
    ) -> None:
        self._root = Path(root).absolute()
        self._registrar = OriginRegistrar(registry, origin_url=origin_url, node=node, ttl=ttl)
        self._rescan_interval = rescan_interval
        self._clock = clock
        self._force_polling = force_polling
        self._playlists: dict[Path, _Playlist] = {}
        self._owners: dict[str, Path] = {}

    @property
    def registrar(self) -> OriginRegistrar:
        """The registrar that heartbeats the discovered streams."""
        return self._registrar

    def states(self) -> dict[str, PlaylistState]:
        """The state of every playlist the watcher tracks, by path relative to the root."""
        return {playlist.relative: playlist.state for playlist in self._playlists.values()}

    async def run(self) -> None:
        """Watch until cancelled; the registry heartbeats run alongside."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._registrar.run())
            await self._watch()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._root.is_dir():
                logger.warning("HLS folder %s does not exist (yet); waiting for it", self._root)
                while not self._root.is_dir():
                    self.scan()
                    await asyncio.sleep(self._rescan_interval)
            self.scan()
            next_scan = loop.time() + self._rescan_interval
            try:
                async for changes in awatch(
                    self._root,
                    watch_filter=self._wanted,
                    debounce=200,
                    step=20,
                    rust_timeout=max(1, round(self._rescan_interval * 1000)),
                    yield_on_timeout=True,
                    force_polling=self._force_polling,
                    ignore_permission_denied=True,
                ):
                    self._on_changes(path for _, path in changes)
                    if loop.time() >= next_scan:
                        self.scan()
                        next_scan = loop.time() + self._rescan_interval
                    if not self._root.is_dir():
                        break
            except (OSError, RuntimeError) as exc:
                logger.warning("watching %s failed (%s); rescanning and watching again", self._root, exc)
                await asyncio.sleep(self._rescan_interval)

    def _wanted(self, change: Change, path: str) -> bool:
        # Playlists, and entries directly under the root (a nested stream's directory may vanish whole).
        return path.endswith(PLAYLIST_SUFFIX) or os.path.dirname(path) == os.fspath(self._root)

    def _candidate(self, path: Path) -> tuple[str, Path] | None:
        try:
            relative = path.relative_to(self._root).parts
        except ValueError:
            return None
        if len(relative) == 1:
            name = relative[0]
            if name.endswith(PLAYLIST_SUFFIX):
                slug = name[: -len(PLAYLIST_SUFFIX)]
                return (slug, path) if is_valid_slug(slug) else None
            return (name, path / NESTED_PLAYLIST) if is_valid_slug(name) else None
        if len(relative) == 2 and relative[1] == NESTED_PLAYLIST and is_valid_slug(relative[0]):
            return relative[0], path
        return None

    def _on_changes(self, paths: Iterable[str]) -> None:
        for text in paths:
            path = Path(text)
            candidate = self._candidate(path)
            if candidate is not None:
                self._examine(*candidate)

    def scan(self) -> None:
        """Look at every playlist under the root and every tracked one; safe against files vanishing."""
        found: dict[Path, str] = {}
        try:
            with os.scandir(self._root) as entries:
                for entry in entries:
                    candidate = self._candidate(Path(entry.path))
                    if candidate is not None:
                        found[candidate[1]] = candidate[0]
        except OSError as exc:
            if self._playlists:
                logger.warning("cannot list %s: %s", self._root, exc)
        for path, playlist in list(self._playlists.items()):
            found.setdefault(path, playlist.slug)
        for path, slug in found.items():
            self._examine(slug, path)

    def _examine(self, slug: str, path: Path) -> None:
        try:
            status = os.stat(path)
        except OSError:
            self._forget(path)
            return
        if not stat.S_ISREG(status.st_mode):
            self._forget(path)
            return
        playlist = self._playlists.get(path)
        if playlist is None:
            playlist = _Playlist(slug, path.relative_to(self._root).as_posix())
            self._playlists[path] = playlist
        signature = (status.st_mtime_ns, status.st_size, status.st_ino)
        if signature != playlist.signature:
            self._reread(path, playlist, signature, status.st_mtime)
        elif playlist.state is PlaylistState.LIVE and not self._fresh(playlist):
            logger.info("stream %r: playlist %s stopped changing", slug, playlist.relative)
            self._end(path, playlist, PlaylistState.STALE)

    def _reread(self, path: Path, playlist: _Playlist, signature: tuple[int, int, int], mtime: float) -> None:
        try:
            with path.open("rb") as file:
                data = file.read(MAX_PLAYLIST_SIZE + 1)
        except FileNotFoundError:
            self._forget(path)
            return
        except OSError as exc:
            logger.debug("cannot read %s yet: %s", path, exc)
            return
        playlist.signature = signature
        try:
            summary = summarize_playlist(data)
        except RemoteProtocolError as exc:
            # A non-atomic writer may be halfway; its next write changes the signature and we look again.
            logger.debug("playlist %s is not readable yet: %s", playlist.relative, exc)
            return
        if summary.master:
            self._end(path, playlist, PlaylistState.IGNORED)
            return
        playlist.modified_at = mtime
        playlist.target_duration = max(1, summary.target_duration or FALLBACK_TARGET_DURATION)
        if summary.ended:
            if playlist.state is PlaylistState.LIVE:
                logger.info("stream %r ended (EXT-X-ENDLIST in %s)", playlist.slug, playlist.relative)
            self._end(path, playlist, PlaylistState.ENDED)
        elif not self._fresh(playlist):
            self._end(path, playlist, PlaylistState.STALE)
        elif playlist.state is not PlaylistState.LIVE:
            self._start(path, playlist)

    def _fresh(self, playlist: _Playlist) -> bool:
        age = self._clock() - playlist.modified_at
        return age <= STALE_TARGET_DURATIONS * playlist.target_duration

    def _start(self, path: Path, playlist: _Playlist) -> None:
        owner = self._owners.get(playlist.slug)
        if owner is not None and owner != path:
            other = self._playlists.get(owner)
            if other is not None and other.state is PlaylistState.LIVE:
                logger.warning(
                    "stream %r: ignoring %s, %s is live under that name", playlist.slug, path, other.relative
                )
                # Read it again on a later scan: it takes over once the other playlist has ended.
                playlist.signature = None
                return
        self._owners[playlist.slug] = path
        playlist.state = PlaylistState.LIVE
        logger.info("stream %r is live (%s)", playlist.slug, playlist.relative)
        self._registrar.publish(
            playlist.slug,
            started_at=datetime.now(UTC),
            metadata={
                "source": "hls-folder",
                "playlist": playlist.relative,
                "target_duration": str(playlist.target_duration),
            },
        )

    def _end(self, path: Path, playlist: _Playlist, state: PlaylistState) -> None:
        if playlist.state is PlaylistState.LIVE and self._owners.get(playlist.slug) == path:
            del self._owners[playlist.slug]
            self._registrar.unpublish(playlist.slug)
        playlist.state = state

    def _forget(self, path: Path) -> None:
        playlist = self._playlists.pop(path, None)
        if playlist is not None:
            if playlist.state is PlaylistState.LIVE:
                logger.info("stream %r: playlist %s was deleted", playlist.slug, playlist.relative)
            self._end(path, playlist, PlaylistState.PENDING)
