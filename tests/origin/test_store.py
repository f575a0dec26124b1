"""SegmentStore: packager events become files (atomically) and memory; expired segments disappear."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from streamit.errors import NotFound
from streamit.hls import PlaylistUpdated, Segment, SegmentExpired, SegmentReady
from streamit.hls.events import SegmentAppended
from streamit.origin import SegmentStore, SegmentStoreRegistry
from streamit.origin import store as store_module


def segment(sequence: int, payload: bytes = b"") -> Segment:
    return Segment(
        sequence=sequence,
        name=f"seg-{sequence:06d}.ts",
        duration=Fraction(2),
        program_date_time=datetime(2026, 1, 1, tzinfo=UTC),
        discontinuity=False,
        data=payload or bytes([0x47]) * 188,
    )


def test_events_become_files_and_memory(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show", memory_segments=2)
    store.apply([SegmentReady(segment(0, b"a" * 188)), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    assert (tmp_path / "show" / "seg-000000.ts").read_bytes() == b"a" * 188
    assert (tmp_path / "show" / "index.m3u8").read_text() == "#EXTM3U\nseg-000000.ts\n"
    assert store.playlist() == b"#EXTM3U\nseg-000000.ts\n"
    assert not list((tmp_path / "show").glob(".*.tmp")), "temporary files left behind"
    for seq in (1, 2):
        store.apply([SegmentReady(segment(seq, bytes([seq]) * 188))])
    assert store.memory_bytes == 0, "nothing is cached before a viewer asks"
    # Served from disk, then from memory: the last memory_segments segments requested.
    for seq in (0, 1, 2):
        assert store.segment(f"seg-00000{seq}.ts") == (b"a" if seq == 0 else bytes([seq])) * 188
    assert store.memory_bytes == 2 * 188
    (tmp_path / "show" / "seg-000002.ts").unlink()
    assert store.segment("seg-000002.ts") == bytes([2]) * 188, "a cached segment comes from memory"
    store.apply([SegmentExpired("seg-000000.ts")])
    assert not (tmp_path / "show" / "seg-000000.ts").exists()
    with pytest.raises(NotFound):
        store.segment("seg-000000.ts")


def test_reset_removes_a_previous_broadcast(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show")
    store.apply([SegmentReady(segment(0)), PlaylistUpdated("#EXTM3U\n")])
    store.reset()
    assert list((tmp_path / "show").iterdir()) == []
    with pytest.raises(NotFound):
        store.playlist()


@pytest.mark.parametrize(
    ("slug", "name"),
    [
        ("..", "index.m3u8"),
        ("show", "../../etc/passwd"),
        ("show", "..%2F..%2Fsecret.ts"),
        ("show", "seg.ts/../../x.ts"),
        ("Show", "seg-000000.ts"),
        ("show", ".seg-000000.ts.tmp"),
        ("show", "seg-000000.mp4"),
    ],
)
def test_names_outside_the_store_are_not_found(tmp_path: Path, slug: str, name: str) -> None:
    registry = SegmentStoreRegistry(tmp_path / "hls")
    (tmp_path / "secret.ts").write_bytes(b"secret")
    registry.open("show").apply([SegmentReady(segment(0))])
    with pytest.raises(NotFound):
        registry.segment(slug, name)


def test_registry_serves_streams_of_a_previous_run_from_disk(tmp_path: Path) -> None:
    first = SegmentStoreRegistry(tmp_path)
    first.open("old").apply([SegmentReady(segment(4)), PlaylistUpdated("#EXTM3U\n#EXT-X-ENDLIST\n")])
    second = SegmentStoreRegistry(tmp_path)
    assert second.get("old") is None
    assert second.playlist("old").endswith(b"#EXT-X-ENDLIST\n")
    assert second.segment("old", "seg-000004.ts") == segment(4).data
    with pytest.raises(NotFound):
        second.playlist("missing")


def test_invalid_slug_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slug"):
        SegmentStore(tmp_path, "../escape")


def test_playlists_left_open_by_a_crash_are_closed(tmp_path: Path) -> None:
    crashed = SegmentStoreRegistry(tmp_path)
    crashed.open("open").apply([SegmentReady(segment(0)), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    crashed.open("done").apply([PlaylistUpdated("#EXTM3U\n#EXT-X-ENDLIST\n")])
    restarted = SegmentStoreRegistry(tmp_path)
    assert restarted.close_stale_playlists() == ["open"]
    assert restarted.playlist("open") == b"#EXTM3U\nseg-000000.ts\n#EXT-X-ENDLIST\n"
    assert restarted.playlist("done") == b"#EXTM3U\n#EXT-X-ENDLIST\n"
    assert restarted.close_stale_playlists() == []


def test_release_memory_keeps_serving_from_disk(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show", memory_segments=2)
    store.apply([SegmentReady(segment(0, b"z" * 188)), PlaylistUpdated("#EXTM3U\n#EXT-X-ENDLIST\n")])
    store.release_memory()
    assert store.memory_bytes == 0
    assert store.segment("seg-000000.ts") == b"z" * 188
    assert store.playlist() == b"#EXTM3U\n#EXT-X-ENDLIST\n"


def refuse_writes(store: SegmentStore, name: str) -> None:
    """Make the next write of ``name`` fail as on a full disk: its temporary file leads to /dev/full."""
    (store.directory / f".{name}.tmp").symlink_to("/dev/full")


def test_a_full_disk_keeps_segments_and_playlist_in_memory(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is needed to simulate a full disk")
    registry = SegmentStoreRegistry(tmp_path, memory_segments=1)
    store = registry.open("show")
    store.apply([SegmentReady(segment(0, b"zero")), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    refuse_writes(store, "seg-000001.ts")
    refuse_writes(store, "seg-000002.ts")

    store.apply([SegmentReady(segment(1, b"one")), PlaylistUpdated("#EXTM3U\nseg-000001.ts\n")])
    store.apply([SegmentReady(segment(2, b"two")), PlaylistUpdated("#EXTM3U\nseg-000002.ts\n")])

    assert store.write_error is not None and "No space left" in store.write_error
    assert registry.write_errors() == {"show": store.write_error}
    # Unwritten segments stay in memory beyond memory_segments; the playlist is served from memory.
    assert store.segment("seg-000001.ts") == b"one" and store.segment("seg-000002.ts") == b"two"
    assert store.playlist() == b"#EXTM3U\nseg-000002.ts\n"
    # The disk still holds the last complete playlist, naming only segments that exist there.
    assert (store.directory / "index.m3u8").read_bytes() == b"#EXTM3U\nseg-000000.ts\n"
    assert not (store.directory / "seg-000001.ts").exists()
    assert not list(store.directory.glob(".*.tmp"))
    store.release_memory()  # the stream ends: what the disk refused must not vanish
    assert store.segment("seg-000002.ts") == b"two"

    store.apply(
        [SegmentReady(segment(3, b"three")), SegmentExpired("seg-000001.ts"), SegmentExpired("seg-000002.ts")]
    )
    assert store.write_error is None and registry.write_errors() == {}
    store.apply([PlaylistUpdated("#EXTM3U\nseg-000003.ts\n")])
    assert (store.directory / "index.m3u8").read_bytes() == b"#EXTM3U\nseg-000003.ts\n"
    with pytest.raises(NotFound):
        store.segment("seg-000001.ts")


def test_a_segment_grows_on_disk_and_appears_whole(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show", memory_segments=1)
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188), SegmentAppended("seg-000000.ts", b"b" * 376)])
    assert (tmp_path / "show" / ".seg-000000.ts.tmp").read_bytes() == b"a" * 188 + b"b" * 376
    assert store.memory_bytes == 0
    with pytest.raises(NotFound):
        store.segment("seg-000000.ts")  # not before it is complete (RFC 8216 §6.2.2)
    store.apply([SegmentReady(segment(0, b"c" * 188)), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    whole = b"a" * 188 + b"b" * 376 + b"c" * 188
    assert (tmp_path / "show" / "seg-000000.ts").read_bytes() == whole
    assert not list((tmp_path / "show").glob(".*.tmp"))
    assert store.segment("seg-000000.ts") == whole
    # The next segment again starts a temporary file; an abandoned one is removed.
    store.apply([SegmentAppended("seg-000001.ts", b"d" * 188)])
    assert (tmp_path / "show" / ".seg-000001.ts.tmp").exists()
    store.close()
    assert not list((tmp_path / "show").glob(".*.tmp"))


def test_reset_and_remove_abandon_the_segment_being_built(tmp_path: Path) -> None:
    registry = SegmentStoreRegistry(tmp_path)
    store = registry.open("show")
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188)])
    store.reset()
    assert list((tmp_path / "show").iterdir()) == []
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188)])
    registry.remove("show")
    assert list((tmp_path / "show").iterdir()) == []


def test_a_full_disk_refusing_a_growing_segment_keeps_it_in_memory(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is needed to simulate a full disk")
    store = SegmentStore(tmp_path, "show", memory_segments=0)
    refuse_writes(store, "seg-000000.ts")
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188), SegmentAppended("seg-000000.ts", b"b" * 188)])
    assert store.write_error is not None and "No space left" in store.write_error
    assert not list(store.directory.glob(".*.tmp"))
    refuse_writes(store, "seg-000000.ts")  # the disk is still full when the segment completes
    store.apply([SegmentReady(segment(0, b"c" * 188)), PlaylistUpdated("#EXTM3U\nseg-000000.ts\n")])
    assert store.segment("seg-000000.ts") == b"a" * 188 + b"b" * 188 + b"c" * 188
    assert store.memory_bytes == 3 * 188
    assert not (store.directory / "index.m3u8").exists()
    assert not list(store.directory.glob(".*.tmp"))
    # The next segment is written again, and leaves memory when it expires.
    store.apply([SegmentAppended("seg-000001.ts", b"d" * 188), SegmentReady(segment(1, b"e" * 188))])
    assert store.write_error is None
    store.apply([SegmentExpired("seg-000000.ts"), PlaylistUpdated("#EXTM3U\nseg-000001.ts\n")])
    assert store.memory_bytes == 0
    assert (store.directory / "index.m3u8").read_bytes() == b"#EXTM3U\nseg-000001.ts\n"


@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_a_disk_filling_up_mid_segment_loses_no_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_write: int
) -> None:
    store = SegmentStore(tmp_path, "show", memory_segments=0)
    real_write = store_module.os.write
    calls = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == failing_write:
            return real_write(fd, bytes(data)[:100])  # a partial write, then the disk is full
        if calls > failing_write:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    def write_atomically(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "write", write)
    monkeypatch.setattr(store_module, "write_atomically", write_atomically)
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188), SegmentAppended("seg-000000.ts", b"b" * 188)])
    store.apply([SegmentReady(segment(0, b"c" * 188))])
    assert store.write_error is not None
    assert store.segment("seg-000000.ts") == b"a" * 188 + b"b" * 188 + b"c" * 188
    assert not (store.directory / "seg-000000.ts").exists()
    assert not list(store.directory.glob(".*.tmp"))


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc/self/fd (Linux)")
def test_a_growing_segment_holds_one_descriptor_until_it_is_finished_or_abandoned(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path, "show", memory_segments=0)
    before = open_descriptors()
    store.apply([SegmentAppended("seg-000000.ts", b"a" * 188)])
    store.apply([SegmentAppended("seg-000000.ts", b"b" * 188)])
    assert open_descriptors() == before + 1
    store.apply([SegmentReady(segment(0, b"c" * 188))])
    assert open_descriptors() == before
    assert (store.directory / "seg-000000.ts").read_bytes() == b"a" * 188 + b"b" * 188 + b"c" * 188
    store.apply([SegmentAppended("seg-000001.ts", b"d" * 188)])
    assert open_descriptors() == before + 1
    store.close()
    assert open_descriptors() == before
    assert not list(store.directory.glob(".*.tmp"))


def test_a_failed_chunked_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "seg-000000.m4s"
    store_module.write_chunks_atomically(target, [b"ab", b"", b"cd"])
    assert target.read_bytes() == b"abcd"

    def refuse(source: Path, destination: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", refuse)
    with pytest.raises(OSError):
        store_module.write_chunks_atomically(target, [b"new"])
    assert target.read_bytes() == b"abcd" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_chunks_are_written_whole_across_short_writes_and_many_buffers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writev = store_module.os.writev
    calls: list[int] = []

    def short(fd: int, buffers: Sequence[bytes]) -> int:
        # At most 7 bytes a call, from however many buffers: every resumption path is taken.
        calls.append(len(buffers))
        head = b"".join(bytes(buffer) for buffer in buffers)[:7]
        return writev(fd, [head])

    monkeypatch.setattr(store_module.os, "writev", short)
    chunks = [bytes([i % 251]) * (i % 5) for i in range(3000)]
    target = tmp_path / "seg-000000.m4s"
    store_module.write_chunks_atomically(target, chunks)
    assert target.read_bytes() == b"".join(chunks)
    assert max(calls) <= 1024
