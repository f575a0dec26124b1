from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamit.discovery.location import StreamLocation
from streamit.discovery.memory import MemoryRegistry
from streamit.errors import InvalidInput


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def location(slug: str = "cam", node: str = "origin-a", url: str = "http://127.0.0.1:8081") -> StreamLocation:
    return StreamLocation(slug, url, node, datetime(2024, 5, 1, tzinfo=UTC), {"viewers": "3"})


async def test_register_lookup_and_expiry_without_sleeping() -> None:
    clock = FakeClock()
    registry = MemoryRegistry(clock=clock)
    await registry.register(location(), ttl=10)
    assert await registry.lookup("cam") == location()
    clock.now += 9.9
    assert await registry.lookup("cam") == location()
    clock.now += 0.1
    assert await registry.lookup("cam") is None
    assert await registry.list() == []


async def test_refresh_extends_only_the_owners_entry() -> None:
    clock = FakeClock()
    registry = MemoryRegistry(clock=clock)
    await registry.register(location(), ttl=10)
    clock.now += 8
    assert await registry.refresh("cam", "origin-a", ttl=10)
    assert not await registry.refresh("cam", "origin-b", ttl=10)
    clock.now += 8
    assert await registry.lookup("cam") == location()
    clock.now += 2
    assert not await registry.refresh("cam", "origin-a", ttl=10)
    assert await registry.lookup("cam") is None
    assert not await registry.refresh("unknown", "origin-a", ttl=10)


async def test_unregister_only_by_owner() -> None:
    registry = MemoryRegistry()
    await registry.register(location(), ttl=10)
    await registry.unregister("cam", "origin-b")
    assert await registry.lookup("cam") is not None
    await registry.unregister("cam", "origin-a")
    assert await registry.lookup("cam") is None
    await registry.unregister("cam", "origin-a")


async def test_register_replaces_another_nodes_entry() -> None:
    registry = MemoryRegistry()
    await registry.register(location(), ttl=10)
    moved = location(node="origin-b", url="http://127.0.0.1:8082")
    await registry.register(moved, ttl=10)
    assert await registry.lookup("cam") == moved
    assert not await registry.refresh("cam", "origin-a", ttl=10)


async def test_list_is_sorted_and_skips_expired() -> None:
    clock = FakeClock()
    registry = MemoryRegistry(clock=clock)
    await registry.register(location("b"), ttl=5)
    await registry.register(location("a"), ttl=10)
    await registry.register(location("c"), ttl=1)
    assert [entry.slug for entry in await registry.list()] == ["a", "b", "c"]
    clock.now += 2
    assert [entry.slug for entry in await registry.list()] == ["a", "b"]
    await registry.close()
    assert await registry.list() == []


async def test_lookup_of_non_slug_is_none() -> None:
    assert await MemoryRegistry().lookup("../etc") is None


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
async def test_ttl_must_be_positive(ttl: float) -> None:
    registry = MemoryRegistry()
    with pytest.raises(InvalidInput):
        await registry.register(location(), ttl=ttl)
    with pytest.raises(InvalidInput):
        await registry.refresh("cam", "origin-a", ttl=ttl)
