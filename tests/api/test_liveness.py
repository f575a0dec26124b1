"""OriginLossReaper: LIVE streams whose origin stopped heartbeating become ENDED ("origin lost").

Runs on SQLite and PostgreSQL (the ``db`` fixture) against the in-process registry and, for outages, a
RedisRegistry pointed at a port where no Redis listens.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import pytest

from streamit.api.hooks import NGINX_NODE
from streamit.api.liveness import ORIGIN_LOST, OriginLossReaper
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.discovery import MemoryRegistry, RedisRegistry, StreamLocation
from tests.db.conftest import database_url, db

__all__ = ["database_url", "db"]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def go_live(db: Database, title: str, node: str = "origin-a") -> StreamRecord:
    record, _key = await db.streams.create(title)
    now = datetime.now(UTC)
    await db.streams.mark_live(record.id, now)
    await db.sessions.open(record.id, node=node, remote_addr="192.0.2.7:50000", started_at=now)
    return record


def location(slug: str, node: str = "origin-a") -> StreamLocation:
    return StreamLocation(slug=slug, origin_url="http://origin-a.test:8080", node=node)


async def status(db: Database, slug: str) -> StreamStatus:
    record = await db.streams.get(slug)
    assert record is not None
    return record.status


async def test_registered_stream_stays_live(db: Database) -> None:
    registry = MemoryRegistry()
    record = await go_live(db, "Kept")
    await registry.register(location(record.slug), ttl=10)
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, clock=clock)
    for _ in range(5):
        assert await reaper.sweep() == []
        clock.now += 1
    assert await status(db, record.slug) is StreamStatus.LIVE


async def test_missing_stream_ends_after_grace_with_reason(db: Database) -> None:
    registry = MemoryRegistry()
    record = await go_live(db, "Lost")
    ended: list[str] = []
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, clock=clock, on_end=lambda r: ended.append(r.slug))

    assert await reaper.sweep() == []  # first seen missing: maybe its origin has not registered yet
    clock.now += 0.5
    assert await reaper.sweep() == []
    assert await status(db, record.slug) is StreamStatus.LIVE
    clock.now += 0.5
    result = await reaper.sweep()

    assert [r.slug for r in result] == [record.slug] == ended
    assert result[0].status is StreamStatus.ENDED
    assert await status(db, record.slug) is StreamStatus.ENDED
    sessions = await db.sessions.list_for_stream(record.id)
    assert [(s.end_reason, s.ended_at is not None) for s in sessions] == [(ORIGIN_LOST, True)]


async def test_registration_within_grace_resets_the_clock(db: Database) -> None:
    registry = MemoryRegistry()
    record = await go_live(db, "Late registration")
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, clock=clock)
    await reaper.sweep()
    clock.now += 0.9
    await registry.register(location(record.slug), ttl=10)
    await reaper.sweep()
    await registry.unregister(record.slug, "origin-a")
    clock.now += 0.9
    assert await reaper.sweep() == []  # missing again, but only for a moment
    assert await status(db, record.slug) is StreamStatus.LIVE


async def test_expired_entry_ends_the_stream(db: Database) -> None:
    registry = MemoryRegistry()
    record = await go_live(db, "Expiring")
    await registry.register(location(record.slug), ttl=0.05)
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, clock=clock)
    assert await reaper.sweep() == []
    await asyncio.sleep(0.1)  # the entry's TTL passes without a heartbeat: its origin died
    await reaper.sweep()
    clock.now += 1.0
    assert [r.slug for r in await reaper.sweep()] == [record.slug]


async def test_nginx_sessions_are_left_alone(db: Database) -> None:
    registry = MemoryRegistry()
    record = await go_live(db, "Via nginx", node=NGINX_NODE)
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, clock=clock)
    for _ in range(4):
        assert await reaper.sweep() == []
        clock.now += 1
    assert await status(db, record.slug) is StreamStatus.LIVE
    assert [s.end_reason for s in await db.sessions.list_for_stream(record.id)] == [None]


async def test_drafts_and_ended_streams_are_untouched(db: Database) -> None:
    registry = MemoryRegistry()
    draft, _ = await db.streams.create("Draft")
    ended = await go_live(db, "Over")
    await db.streams.mark_ended(ended.id, datetime.now(UTC))
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=0.0, clock=clock)
    assert await reaper.sweep() == []
    assert await status(db, draft.slug) is StreamStatus.DRAFT


async def test_unreachable_registry_ends_nothing(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    registry = RedisRegistry(f"redis://127.0.0.1:{port}/0", secret="s" * 32, timeout=0.5)
    try:
        record = await go_live(db, "During an outage")
        clock = ManualClock()
        reaper = OriginLossReaper(db, registry, grace=0.0, clock=clock)
        for _ in range(3):
            assert await reaper.sweep() == []
            clock.now += 5
        assert await status(db, record.slug) is StreamStatus.LIVE
        warnings = [r for r in caplog.records if "registry unreachable" in r.getMessage()]
        assert len(warnings) == 1  # logged once per outage, not once per sweep
    finally:
        await registry.close()


class RestartableRegistry(MemoryRegistry):
    """The in-process registry whose store can be wiped as a Redis restart without persistence would."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = "first"

    async def epoch(self) -> str:
        return self.generation

    async def restart(self) -> None:
        await self.close()
        self.generation = "second"


async def test_registry_restart_gives_origins_a_heartbeat_to_re_register(db: Database) -> None:
    registry = RestartableRegistry()
    record = await go_live(db, "Survives a restart")
    await registry.register(location(record.slug), ttl=10)
    clock = ManualClock()
    reaper = OriginLossReaper(db, registry, grace=1.0, heartbeat=3.0, clock=clock)
    assert await reaper.sweep() == []

    await registry.restart()
    for _ in range(7):  # 3.5 s: longer than the grace, shorter than heartbeat + grace
        assert await reaper.sweep() == []
        clock.now += 0.5
    await registry.register(location(record.slug), ttl=10)  # the origin's next heartbeat
    assert await reaper.sweep() == []
    assert await status(db, record.slug) is StreamStatus.LIVE

    await registry.restart()
    registry.generation = "third"
    for _ in range(9):  # nobody re-registers within heartbeat + grace: the origin is gone too
        await reaper.sweep()
        clock.now += 0.5
    assert await status(db, record.slug) is StreamStatus.ENDED


async def test_memory_registry_epoch_is_stable() -> None:
    registry = MemoryRegistry()
    assert await registry.epoch() == await registry.epoch() != await MemoryRegistry().epoch()
