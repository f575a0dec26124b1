"""Registry lookups remembered ≤ 1 s (absent streams shorter), coalesced, kept through outages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from streamit.discovery import StreamLocation
from streamit.edge.locations import LocationCache


def located(slug: str, origin_url: str) -> StreamLocation:
    return StreamLocation(slug, origin_url, "origin-a", datetime(2026, 1, 1, tzinfo=UTC))


class Registry:
    def __init__(self) -> None:
        self.streams: dict[str, StreamLocation] = {}
        self.calls = 0
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def lookup(self, slug: str) -> StreamLocation | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConnectionError("registry down")
        return self.streams.get(slug)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_lookups_are_remembered_for_at_most_a_second() -> None:
    registry, clock = Registry(), Clock()
    registry.streams["show"] = located("show", "http://a")
    locations = LocationCache(registry, clock=clock)
    assert (await locations.lookup("show")) == registry.streams["show"]
    registry.streams["show"] = located("show", "http://b")
    clock.now += 0.99
    assert (await locations.lookup("show")).origin_url == "http://a"  # type: ignore[union-attr]
    assert registry.calls == 1
    clock.now += 0.01
    assert (await locations.lookup("show")).origin_url == "http://b"  # type: ignore[union-attr]
    assert registry.calls == 2


async def test_absent_streams_are_remembered_shorter() -> None:
    registry, clock = Registry(), Clock()
    locations = LocationCache(registry, clock=clock, negative_ttl=0.25)
    assert await locations.lookup("nope") is None
    clock.now += 0.2
    assert await locations.lookup("nope") is None
    assert registry.calls == 1
    registry.streams["nope"] = located("nope", "http://a")
    clock.now += 0.05
    assert await locations.lookup("nope") is not None
    assert registry.calls == 2


async def test_forget_and_refresh_ask_the_registry_again() -> None:
    registry, clock = Registry(), Clock()
    registry.streams["show"] = located("show", "http://a")
    locations = LocationCache(registry, clock=clock)
    await locations.lookup("show")
    locations.forget("show")
    await locations.lookup("show")
    await locations.refresh("show")
    assert registry.calls == 3


async def test_concurrent_lookups_make_one_registry_call() -> None:
    registry, clock = Registry(), Clock()
    registry.streams["show"] = located("show", "http://a")
    registry.gate = asyncio.Event()
    locations = LocationCache(registry, clock=clock)
    tasks = [asyncio.create_task(locations.lookup("show")) for _ in range(20)]
    await asyncio.sleep(0)
    registry.gate.set()
    assert len({id(r) for r in await asyncio.gather(*tasks)}) == 1
    assert registry.calls == 1


async def test_registry_outage_keeps_the_last_origin_for_a_grace_period() -> None:
    registry, clock = Registry(), Clock()
    registry.streams["show"] = located("show", "http://a")
    locations = LocationCache(registry, clock=clock, stale_grace=30.0)
    await locations.lookup("show")
    registry.failing = True
    clock.now += 5
    assert (await locations.lookup("show")).origin_url == "http://a"  # type: ignore[union-attr]
    clock.now += 30
    with pytest.raises(ConnectionError):
        await locations.lookup("show")
    with pytest.raises(ConnectionError):
        await locations.lookup("never-seen")


async def test_entries_are_bounded() -> None:
    registry, clock = Registry(), Clock()
    locations = LocationCache(registry, clock=clock, max_entries=3)
    for index in range(10):
        await locations.lookup(f"s{index}")
    registry.calls = 0
    await locations.lookup("s9")
    await locations.lookup("s0")
    assert registry.calls == 1
