"""The edge cache: byte-bounded LRU (checked against a model with hypothesis) and the freshness policy."""

from __future__ import annotations

import ast
import math
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from streamit.edge.cache import (
    IMMUTABLE,
    MAX_PLAYLIST_LIFETIME,
    ByteLruCache,
    CachedObject,
    fresh_until,
    playlist_target_duration,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edge"
CACHE_MODULE = Path(__file__).resolve().parents[2] / "src" / "streamit" / "edge" / "cache.py"
IO_MODULES = {
    "asyncio",
    "time",
    "socket",
    "selectors",
    "threading",
    "httpx",
    "starlette",
    "fastapi",
    "uvicorn",
}


def obj(body: bytes, *, expires_at: float = IMMUTABLE, stored_at: float = 0.0) -> CachedObject:
    return CachedObject(status=200, headers=(), body=body, stored_at=stored_at, expires_at=expires_at)


def test_cache_module_is_sans_io() -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(CACHE_MODULE.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] in IO_MODULES}
    assert not {name for name in imported if name.startswith(("streamit.origin", "streamit.edge."))}


def test_size_counts_body_and_headers() -> None:
    entry = CachedObject(200, (("content-type", "video/mp2t"),), b"x" * 100, 0.0, IMMUTABLE)
    assert entry.size == 100 + len("content-type") + len("video/mp2t")


def test_evicts_least_recently_used_by_bytes() -> None:
    cache: ByteLruCache[str] = ByteLruCache(100)
    assert cache.put("a", obj(b"a" * 40))
    assert cache.put("b", obj(b"b" * 40))
    assert cache.get("a", 0.0) is not None  # "b" is now the least recently used
    assert cache.put("c", obj(b"c" * 40))
    assert cache.keys_by_recency() == ["a", "c"]
    assert cache.current_bytes == 80
    assert cache.evictions == 1


def test_refuses_an_object_larger_than_the_budget_and_keeps_the_rest() -> None:
    cache: ByteLruCache[str] = ByteLruCache(100)
    cache.put("a", obj(b"a" * 60))
    assert not cache.put("big", obj(b"z" * 101))
    assert cache.keys_by_recency() == ["a"] and cache.current_bytes == 60


def test_replacing_a_key_recounts_its_bytes() -> None:
    cache: ByteLruCache[str] = ByteLruCache(100)
    cache.put("a", obj(b"a" * 60))
    cache.put("a", obj(b"a" * 10))
    assert cache.current_bytes == 10 and len(cache) == 1


def test_expired_objects_are_dropped_on_lookup() -> None:
    cache: ByteLruCache[str] = ByteLruCache(100)
    cache.put("playlist", obj(b"#EXTM3U\n", expires_at=5.0))
    assert cache.get("playlist", 4.999) is not None
    assert cache.get("playlist", 5.0) is None
    assert "playlist" not in cache and cache.current_bytes == 0


def test_age_in_whole_seconds() -> None:
    assert obj(b"", stored_at=10.0).age(12.7) == 2
    assert obj(b"", stored_at=10.0).age(9.0) == 0


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        ByteLruCache(-1)


class LruAgainstModel(RuleBasedStateMachine):
    """Any sequence of puts, gets and pops: the cache equals an LRU model and never exceeds its budget."""

    def __init__(self) -> None:
        super().__init__()
        self.budget = 256
        self.cache: ByteLruCache[int] = ByteLruCache(self.budget)
        self.model: OrderedDict[int, int] = OrderedDict()

    @rule(key=st.integers(0, 12), size=st.integers(0, 300))
    def put(self, key: int, size: int) -> None:
        stored = self.cache.put(key, obj(bytes(size)))
        self.model.pop(key, None)
        assert stored == (size <= self.budget)
        if stored:
            while sum(self.model.values()) + size > self.budget:
                self.model.popitem(last=False)
            self.model[key] = size

    @rule(key=st.integers(0, 12))
    def get(self, key: int) -> None:
        found = self.cache.get(key, 0.0)
        assert (found is not None) == (key in self.model)
        if found is not None:
            assert len(found.body) == self.model[key]
            self.model.move_to_end(key)

    @rule(key=st.integers(0, 12))
    def pop(self, key: int) -> None:
        assert (self.cache.pop(key) is not None) == (self.model.pop(key, None) is not None)

    @invariant()
    def within_budget_and_same_order(self) -> None:
        assert self.cache.current_bytes <= self.budget
        assert self.cache.current_bytes == sum(self.model.values())
        assert self.cache.keys_by_recency() == list(self.model)


TestLruAgainstModel = LruAgainstModel.TestCase
TestLruAgainstModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(budget=st.integers(0, 2000), sizes=st.lists(st.integers(0, 700), max_size=60))
@settings(deadline=None)
def test_never_exceeds_the_budget(budget: int, sizes: list[int]) -> None:
    cache: ByteLruCache[int] = ByteLruCache(budget)
    for index, size in enumerate(sizes):
        cache.put(index % 17, obj(bytes(size)))
        assert cache.current_bytes <= budget
    held = [cache.get(key, 0.0) for key in cache.keys_by_recency()]
    assert cache.current_bytes == sum(entry.size for entry in held if entry is not None)
    assert None not in held


def test_target_duration_of_a_real_ffmpeg_playlist() -> None:
    playlist = (FIXTURES / "index.m3u8").read_bytes()
    assert playlist_target_duration(playlist) == 2
    assert playlist_target_duration(playlist + b"#EXT-X-TARGETDURATION-JUNK\n\x00\xff") == 2
    assert playlist_target_duration(playlist.replace(b"\n", b"\r\n")) == 2
    assert playlist_target_duration(b"#EXTM3U\n#EXTINF:2.0,\nseg.ts\n") is None
    assert playlist_target_duration(b"#EXTM3U\n#EXT-X-TARGETDURATION:two\n") is None


def test_target_duration_of_every_prefix_is_the_value_or_none() -> None:
    playlist = (FIXTURES / "index.m3u8").read_bytes()
    cut = playlist.index(b"#EXT-X-TARGETDURATION:2") + len(b"#EXT-X-TARGETDURATION:2")
    for end in range(len(playlist) + 1):
        assert playlist_target_duration(playlist[:end]) == (2 if end >= cut else None)


@given(st.binary(max_size=400))
def test_target_duration_of_arbitrary_bytes_never_raises(data: bytes) -> None:
    value = playlist_target_duration(data)
    assert value is None or value >= 0


def test_playlist_is_fresh_for_half_its_target_duration() -> None:
    playlist = (FIXTURES / "index.m3u8").read_bytes()
    assert fresh_until("index.m3u8", 200, playlist, 100.0) == 101.0
    assert fresh_until("index.m3u8", 200, b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n", 0.0) == 3.0
    huge = b"#EXTM3U\n#EXT-X-TARGETDURATION:999999\n"
    assert fresh_until("index.m3u8", 200, huge, 0.0) == MAX_PLAYLIST_LIFETIME


def test_segments_are_immutable() -> None:
    segment = (FIXTURES / "seg-000000.ts").read_bytes()
    assert fresh_until("seg-000000.ts", 200, segment, 5.0) == math.inf


@pytest.mark.parametrize("status", [204, 206, 301, 404, 500, 502, 503])
def test_errors_and_partial_answers_are_not_cached(status: int) -> None:
    assert fresh_until("seg-000000.ts", status, b"", 0.0) is None
    assert fresh_until("index.m3u8", status, b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n", 0.0) is None


def test_playlists_without_target_and_unknown_objects_are_not_cached() -> None:
    assert fresh_until("index.m3u8", 200, b"#EXTM3U\n", 0.0) is None
    assert fresh_until("index.m3u8", 200, b"#EXTM3U\n#EXT-X-TARGETDURATION:0\n", 0.0) is None
    assert fresh_until("notes.txt", 200, b"hello", 0.0) is None
