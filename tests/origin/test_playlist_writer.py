"""PlaylistWriter: playlists replaced on disk from a thread, newest text per path, outcome back on the
loop."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest

from streamit.hls import PlaylistUpdated, SegmentReady
from streamit.origin.store import PlaylistWriter, SegmentStore, SegmentStoreRegistry
from tests.origin.test_store import segment


def test_writes_happen_on_another_thread_newest_text_wins(tmp_path: Path) -> None:
    writer = PlaylistWriter()
    threads: list[str] = []
    outcomes: list[OSError | None] = []

    def done(error: OSError | None) -> None:
        threads.append(threading.current_thread().name)
        outcomes.append(error)

    path = tmp_path / "index.m3u8"
    for number in range(50):
        writer.submit(path, f"#EXTM3U\n#{number}\n".encode(), done)
    writer.flush()
    assert path.read_bytes() == b"#EXTM3U\n#49\n"
    assert 1 <= len(outcomes) <= 50 and all(error is None for error in outcomes)
    assert set(threads) == {"streamit-playlists"}
    writer.close()
    with pytest.raises(RuntimeError):
        writer.submit(path, b"late", done)


def test_a_failed_write_is_reported_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    writer = PlaylistWriter()
    outcomes: list[OSError | None] = []
    writer.submit(tmp_path / "gone" / "index.m3u8", b"#EXTM3U\n", outcomes.append)
    writer.close()
    assert len(outcomes) == 1 and isinstance(outcomes[0], FileNotFoundError)


def hold(started: threading.Event, release: threading.Event) -> None:
    started.set()
    release.wait(5)


def test_discard_drops_what_waits_under_a_directory(tmp_path: Path) -> None:
    writer = PlaylistWriter()
    started, release = threading.Event(), threading.Event()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # The first write's callback holds the thread, so the next two wait in the queue.
    writer.submit(tmp_path / "a" / "first.m3u8", b"1", lambda _: hold(started, release))
    assert started.wait(5)
    writer.submit(tmp_path / "a" / "index.m3u8", b"2", lambda _: None)
    writer.submit(tmp_path / "b" / "index.m3u8", b"3", lambda _: None)
    threading.Timer(0.2, release.set).start()
    writer.discard(tmp_path / "a")
    writer.close()
    assert (tmp_path / "a" / "first.m3u8").read_bytes() == b"1"  # was under way: finished
    assert not (tmp_path / "a" / "index.m3u8").exists()
    assert (tmp_path / "b" / "index.m3u8").read_bytes() == b"3"


async def test_a_store_on_a_loop_writes_its_playlist_through_the_writer(tmp_path: Path) -> None:
    writer = PlaylistWriter()
    registry = SegmentStoreRegistry(tmp_path, writer=writer)
    store = registry.open("show")
    store.apply([SegmentReady(segment(0)), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    assert store.playlist() == b"#EXTM3U\nseg-000000.ts\n"  # served from memory at once
    assert (tmp_path / "show" / "seg-000000.ts").exists()  # segments go to disk on the loop
    await asyncio.to_thread(writer.flush)
    assert (tmp_path / "show" / "index.m3u8").read_bytes() == b"#EXTM3U\nseg-000000.ts\n"

    # A failure comes back to the store on the loop; a later success clears it.
    shutil.rmtree(tmp_path / "show")
    store.apply([PlaylistUpdated("#EXTM3U\n")])
    await asyncio.to_thread(writer.flush)
    for _ in range(100):
        if store.write_error is not None:
            break
        await asyncio.sleep(0.01)
    assert store.write_error is not None and registry.write_errors() == {"show": store.write_error}
    (tmp_path / "show").mkdir()
    store.apply([PlaylistUpdated("#EXTM3U\n#2\n")])
    await asyncio.to_thread(registry.close)
    for _ in range(100):
        if store.write_error is None:
            break
        await asyncio.sleep(0.01)
    assert store.write_error is None
    assert (tmp_path / "show" / "index.m3u8").read_bytes() == b"#EXTM3U\n#2\n"


def test_without_a_loop_a_store_writes_at_once(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show", writer=PlaylistWriter())
    store.apply([PlaylistUpdated("#EXTM3U\n")])
    assert (tmp_path / "show" / "index.m3u8").read_bytes() == b"#EXTM3U\n"


async def test_reset_forgets_waiting_playlists(tmp_path: Path) -> None:
    writer = PlaylistWriter()
    started, release = threading.Event(), threading.Event()
    (tmp_path / "other").mkdir()
    writer.submit(tmp_path / "other" / "x.m3u8", b"x", lambda _: hold(started, release))
    assert started.wait(5)
    store = SegmentStore(tmp_path, "show", writer=writer)
    store.apply([PlaylistUpdated("#EXTM3U\nold\n")])
    threading.Timer(0.2, release.set).start()
    await asyncio.to_thread(store.reset)
    await asyncio.to_thread(writer.close)
    assert not (tmp_path / "show" / "index.m3u8").exists()  # the old broadcast's playlist never came back
