"""FileCache: files served from disk are kept, re-read when replaced (checked at most every
``revalidate_after`` seconds), bounded in bytes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamit.errors import NotFound
from streamit.origin.store import FileCache, SegmentStoreRegistry, write_atomically


def test_a_hit_needs_no_read_and_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "index.m3u8"
    write_atomically(path, b"first")
    cache = FileCache(revalidate_after=0)
    first = cache.read(str(path))
    assert first == b"first"
    assert cache.read(str(path)) is first  # the same object: not read again
    write_atomically(path, b"second")  # a rename: a new inode, as packagers replace playlists
    assert cache.read(str(path)) == b"second"
    assert cache.cached_bytes == len(b"second")


def test_a_file_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "seg.ts"
    path.write_bytes(b"a" * 10)
    cache = FileCache(revalidate_after=0)
    assert cache.read(str(path)) == b"a" * 10
    path.write_bytes(b"b" * 11)
    assert cache.read(str(path)) == b"b" * 11
    path.write_bytes(b"c" * 11)
    os.utime(path, ns=(1, 1))  # same size, other modification time
    assert cache.read(str(path)) == b"c" * 11


def test_missing_files_and_directories_are_not_found(tmp_path: Path) -> None:
    cache = FileCache(revalidate_after=0)
    with pytest.raises(NotFound):
        cache.read(str(tmp_path / "nope.ts"))
    with pytest.raises(NotFound):
        cache.read(str(tmp_path))
    with pytest.raises(NotFound):
        cache.read(str(tmp_path / "nope" / "x.ts"))
    path = tmp_path / "gone.ts"
    path.write_bytes(b"x")
    cache.read(str(path))
    path.unlink()
    with pytest.raises(NotFound):
        cache.read(str(path))


def test_the_cache_is_bounded_least_recently_used_out_first(tmp_path: Path) -> None:
    cache = FileCache(max_bytes=25)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.ts"
        path.write_bytes(bytes([i]) * 10)
        paths.append(str(path))
    first = cache.read(paths[0])
    cache.read(paths[1])
    assert cache.read(paths[0]) is first  # now the most recently used
    cache.read(paths[2])  # 30 bytes > 25: the least recently used (1) goes
    assert cache.cached_bytes == 20
    assert cache.read(paths[0]) is first
    big = tmp_path / "big.ts"
    big.write_bytes(b"z" * 26)
    assert cache.read(str(big)) == b"z" * 26  # served, never kept
    assert cache.cached_bytes == 20


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_checked_again_only_after_revalidate_after(tmp_path: Path) -> None:
    path = tmp_path / "index.m3u8"
    write_atomically(path, b"first")
    clock = FakeClock()
    cache = FileCache(revalidate_after=0.1, clock=clock)
    first = cache.read(str(path))
    write_atomically(path, b"second")
    clock.now += 0.09
    assert cache.read(str(path)) is first  # within the interval: no stat, the old bytes
    clock.now += 0.02
    assert cache.read(str(path)) == b"second"  # checked: replaced, read again
    clock.now += 0.2
    second = cache.read(str(path))
    clock.now += 0.09
    path.unlink()
    assert cache.read(str(path)) is second  # gone, but not checked yet
    clock.now += 0.01
    with pytest.raises(NotFound):
        cache.read(str(path))
    assert cache.cached_bytes == 0  # a vanished file is forgotten


def test_an_unchanged_file_checked_again_stays_cached_for_another_interval(tmp_path: Path) -> None:
    path = tmp_path / "seg.ts"
    path.write_bytes(b"x" * 188)
    clock = FakeClock()
    cache = FileCache(revalidate_after=0.1, clock=clock)
    first = cache.read(str(path))
    clock.now += 0.15
    assert cache.read(str(path)) is first  # checked: unchanged
    path.write_bytes(b"y" * 188)
    os.utime(path, ns=(5, 5))
    clock.now += 0.05  # 0.05 s after that check: still trusted
    assert cache.read(str(path)) is first
    clock.now += 0.06
    assert cache.read(str(path)) == b"y" * 188


def test_the_registry_serves_unpackaged_streams_through_the_cache(tmp_path: Path) -> None:
    registry = SegmentStoreRegistry(tmp_path)
    (tmp_path / "show").mkdir()
    (tmp_path / "show" / "index.m3u8").write_bytes(b"#EXTM3U\n")
    (tmp_path / "show" / "seg-000001.ts").write_bytes(b"\x47" * 188)
    assert registry.playlist("show") == b"#EXTM3U\n"
    assert registry.segment("show", "seg-000001.ts") == b"\x47" * 188
    assert registry.files.cached_bytes == len(b"#EXTM3U\n") + 188
    with pytest.raises(NotFound):
        registry.segment("show", "../secret.ts")
