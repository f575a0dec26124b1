from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from streamit.discovery.memory import MemoryRegistry
from streamit.discovery.watcher import HlsFolderWatcher, PlaylistState
from tests.discovery.conftest import eventually

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "discovery"
NGINX_LIVE = (FIXTURES / "nginx_rtmp_nested_live.m3u8").read_bytes()
FFMPEG_ENDED = (FIXTURES / "ffmpeg_hls_ended.m3u8").read_bytes()
ORIGIN = "http://127.0.0.1:8088"


def playlist(sequence: int, target: int = 2) -> bytes:
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:{sequence}\n#EXT-X-TARGETDURATION:{target}\n"
        f"#EXTINF:{target}.000,\n{sequence}.ts\n"
    ).encode()


def write_atomically(path: Path, data: bytes) -> None:
    """Write like nginx-rtmp: a ``.bak`` file renamed over the playlist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = path.with_name(path.name + ".bak")
    backup.write_bytes(data)
    os.replace(backup, path)


def age(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


@contextlib.asynccontextmanager
async def watching(
    root: Path, registry: MemoryRegistry, *, rescan_interval: float
) -> AsyncIterator[HlsFolderWatcher]:
    watcher = HlsFolderWatcher(
        root, registry, origin_url=ORIGIN, node="watcher", ttl=3.0, rescan_interval=rescan_interval
    )
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def slugs(registry: MemoryRegistry) -> list[str]:
    return [entry.slug for entry in await registry.list()]


async def until_slugs(registry: MemoryRegistry, expected: list[str], timeout: float = 3.0) -> float:
    async def check() -> bool:
        return await slugs(registry) == expected

    return await eventually(check, timeout=timeout)


async def test_nested_and_flat_layouts_register_with_their_playlist(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    async with watching(tmp_path, registry, rescan_interval=5.0):
        write_atomically(tmp_path / "cam-one" / "index.m3u8", NGINX_LIVE)
        write_atomically(tmp_path / "cam-two.m3u8", playlist(0))
        (tmp_path / "cam-one" / "0.ts").write_bytes(b"\x47" * 188)
        (tmp_path / "notes.txt").write_text("not a playlist")
        (tmp_path / "cam-one" / "other.m3u8").write_bytes(NGINX_LIVE)
        # File events alone (the rescan is 5 s away) make this prompt.
        assert await until_slugs(registry, ["cam-one", "cam-two"]) < 2.0
        one = await registry.lookup("cam-one")
        two = await registry.lookup("cam-two")
    assert one is not None and two is not None
    assert one.origin_url == ORIGIN and one.node == "watcher" and one.started_at is not None
    assert dict(one.metadata) == {
        "source": "hls-folder",
        "playlist": "cam-one/index.m3u8",
        "target_duration": "1",
    }
    assert two.metadata["playlist"] == "cam-two.m3u8"
    assert two.metadata["target_duration"] == "2"


async def test_initial_scan_registers_fresh_playlists_only(tmp_path: Path) -> None:
    write_atomically(tmp_path / "fresh" / "index.m3u8", playlist(3))
    write_atomically(tmp_path / "old" / "index.m3u8", playlist(3))
    age(tmp_path / "old" / "index.m3u8", 60)
    write_atomically(tmp_path / "done.m3u8", FFMPEG_ENDED)
    write_atomically(tmp_path / "master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nfresh/index.m3u8\n")
    (tmp_path / "broken.m3u8").write_bytes(b"not a playlist")
    (tmp_path / ".hidden.m3u8").write_bytes(playlist(0))
    registry = MemoryRegistry()
    async with watching(tmp_path, registry, rescan_interval=0.2) as watcher:
        await until_slugs(registry, ["fresh"], timeout=2.0)
        await asyncio.sleep(0.3)
        assert await slugs(registry) == ["fresh"]
        assert watcher.states() == {
            "fresh/index.m3u8": PlaylistState.LIVE,
            "old/index.m3u8": PlaylistState.STALE,
            "done.m3u8": PlaylistState.ENDED,
            "master.m3u8": PlaylistState.IGNORED,
            "broken.m3u8": PlaylistState.PENDING,
        }
        # A stale playlist that starts changing again is a live stream again.
        write_atomically(tmp_path / "old" / "index.m3u8", playlist(4))
        await until_slugs(registry, ["fresh", "old"])


async def test_endlist_deregisters_and_a_new_publish_registers_again(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    path = tmp_path / "show" / "index.m3u8"
    async with watching(tmp_path, registry, rescan_interval=0.3):
        write_atomically(path, playlist(0))
        await until_slugs(registry, ["show"])
        write_atomically(path, playlist(1) + b"#EXT-X-ENDLIST\n")
        assert await until_slugs(registry, []) < 1.0
        write_atomically(path, playlist(0))
        await until_slugs(registry, ["show"])


async def test_deleted_playlists_and_directories_deregister(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    async with watching(tmp_path, registry, rescan_interval=0.3):
        write_atomically(tmp_path / "flat.m3u8", playlist(0))
        write_atomically(tmp_path / "nested" / "index.m3u8", playlist(0))
        (tmp_path / "nested" / "0.ts").write_bytes(b"\x47" * 188)
        await until_slugs(registry, ["flat", "nested"])
        (tmp_path / "flat.m3u8").unlink()
        assert await until_slugs(registry, ["nested"]) < 1.0
        shutil.rmtree(tmp_path / "nested")
        assert await until_slugs(registry, []) < 1.0


async def test_playlist_that_stops_changing_goes_stale(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    path = tmp_path / "quiet.m3u8"
    async with watching(tmp_path, registry, rescan_interval=0.2) as watcher:
        for sequence in range(4):
            write_atomically(path, playlist(sequence, target=1))
            await asyncio.sleep(0.5)
            assert await slugs(registry) == ["quiet"]
        # No rewrite for 3 × EXT-X-TARGETDURATION (3 s): the stream is gone although the file remains.
        took = await until_slugs(registry, [], timeout=5.0)
        assert 2.0 < took < 3.5
        assert watcher.states() == {"quiet.m3u8": PlaylistState.STALE}
        # Aged playlists count from their mtime, not from when the watcher saw them.
        write_atomically(path, playlist(9, target=1))
        await until_slugs(registry, ["quiet"])
        age(path, 10)
        await until_slugs(registry, [], timeout=1.0)


async def test_entries_stay_registered_longer_than_the_ttl_while_live(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    async with watching(tmp_path, registry, rescan_interval=0.5) as watcher:
        write_atomically(tmp_path / "long.m3u8", playlist(0, target=10))
        await until_slugs(registry, ["long"])
        await asyncio.sleep(3.5)  # longer than the registrar's 3 s TTL: heartbeats keep it
        assert await slugs(registry) == ["long"]
        assert watcher.registrar.live == frozenset({"long"})


async def test_burst_of_300_streams_loses_nothing(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    names = [f"stream-{index:03d}" for index in range(300)]
    async with watching(tmp_path, registry, rescan_interval=0.5):
        for index, name in enumerate(names):
            if index % 2:
                write_atomically(tmp_path / name / "index.m3u8", playlist(0))
            else:
                write_atomically(tmp_path / f"{name}.m3u8", playlist(0))
        assert await until_slugs(registry, names, timeout=10.0) < 8.0
        for index, name in enumerate(names):
            if index % 3 == 0:
                write_atomically(
                    tmp_path / name / "index.m3u8" if index % 2 else tmp_path / f"{name}.m3u8",
                    playlist(1) + b"#EXT-X-ENDLIST\n",
                )
            elif index % 3 == 1:
                shutil.rmtree(tmp_path / name) if index % 2 else (tmp_path / f"{name}.m3u8").unlink()
        remaining = [name for index, name in enumerate(names) if index % 3 == 2]
        assert await until_slugs(registry, remaining, timeout=10.0) < 8.0


async def test_files_vanishing_mid_scan_never_break_the_watcher(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    watcher = HlsFolderWatcher(tmp_path, registry, origin_url=ORIGIN, node="watcher", ttl=3.0)
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "a-dir.m3u8").mkdir()
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for index in range(20):
                target = tmp_path / f"churn-{index}" / "index.m3u8"
                write_atomically(target, playlist(index))
                (tmp_path / f"flat-{index}.m3u8").write_bytes(playlist(index)[: index * 5])
            for index in range(20):
                shutil.rmtree(tmp_path / f"churn-{index}", ignore_errors=True)
                (tmp_path / f"flat-{index}.m3u8").unlink(missing_ok=True)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        scans = 0
        while time.monotonic() < deadline:
            watcher.scan()
            scans += 1
    finally:
        stop.set()
        thread.join()
    assert scans > 10
    watcher.scan()
    assert watcher.states() == {}
    assert watcher.registrar.live == frozenset()


async def test_root_created_after_start(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    root = tmp_path / "hls"
    async with watching(root, registry, rescan_interval=0.2):
        await asyncio.sleep(0.3)
        write_atomically(root / "late" / "index.m3u8", playlist(0))
        await until_slugs(registry, ["late"])
