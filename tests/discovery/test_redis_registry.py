from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime

import pytest

from streamit.discovery.entry import EntrySigner
from streamit.discovery.location import StreamLocation
from streamit.discovery.redis_registry import RedisRegistry
from streamit.errors import RegistryUnavailable
from tests.discovery.conftest import RedisTarget, eventually

SECRET = "cluster-secret"


def location(slug: str = "cam", node: str = "origin-a", url: str = "http://127.0.0.1:8081") -> StreamLocation:
    return StreamLocation(slug, url, node, datetime(2024, 5, 1, 12, tzinfo=UTC), {"video_codec": "h264"})


async def open_registry(target: RedisTarget, secret: str = SECRET) -> RedisRegistry:
    return RedisRegistry(target.url, secret=secret, prefix=target.prefix)


async def test_register_lookup_refresh_unregister(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    try:
        assert await registry.lookup("cam") is None
        await registry.register(location(), ttl=10)
        assert await registry.lookup("cam") == location()
        key = f"{redis_target.prefix}stream:cam"
        assert 9000 < await redis_target.admin.pttl(key) <= 10000
        assert await registry.refresh("cam", "origin-a", ttl=30)
        assert 29000 < await redis_target.admin.pttl(key) <= 30000
        assert not await registry.refresh("cam", "origin-b", ttl=60)
        await registry.unregister("cam", "origin-b")
        assert await registry.lookup("cam") == location()
        await registry.unregister("cam", "origin-a")
        assert await registry.lookup("cam") is None
        assert not await registry.refresh("cam", "origin-a", ttl=10)
    finally:
        await registry.close()


async def test_entries_expire_with_their_ttl(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    try:
        await registry.register(location(), ttl=0.2)
        assert await registry.lookup("cam") is not None

        async def gone() -> bool:
            return await registry.lookup("cam") is None

        assert await eventually(gone, timeout=2) >= 0.1
    finally:
        await registry.close()


async def test_takeover_by_another_origin(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    try:
        await registry.register(location(), ttl=10)
        moved = location(node="origin-b", url="http://127.0.0.1:8082")
        await registry.register(moved, ttl=10)
        assert await registry.lookup("cam") == moved
        assert not await registry.refresh("cam", "origin-a", ttl=10)
        await registry.unregister("cam", "origin-a")
        assert await registry.lookup("cam") == moved
    finally:
        await registry.close()


async def test_list_across_many_entries(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    try:
        for index in range(250):
            await registry.register(location(f"s{index:03d}"), ttl=10)
        # A key of another test's prefix and junk under ours are not entries.
        await redis_target.admin.set(f"{redis_target.prefix}other", b"x")
        await redis_target.admin.hset(f"{redis_target.prefix}stream:bad slug", mapping={"entry": b"{}"})
        listed = await registry.list()
        assert [entry.slug for entry in listed] == [f"s{index:03d}" for index in range(250)]
    finally:
        await registry.close()


async def test_prefixes_isolate_clusters(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    other = RedisRegistry(redis_target.url, secret=SECRET, prefix=redis_target.prefix + "[x]*")
    try:
        await registry.register(location("a"), ttl=10)
        await other.register(location("b"), ttl=10)
        assert [entry.slug for entry in await registry.list()] == ["a"]
        assert [entry.slug for entry in await other.list()] == ["b"]
        assert await other.lookup("a") is None
    finally:
        await registry.close()
        await other.close()


async def test_entries_signed_with_another_secret_are_ignored_and_logged(
    redis_target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    registry = await open_registry(redis_target)
    intruder = await open_registry(redis_target, secret="not-the-cluster-secret")
    try:
        await intruder.register(location(url="http://evil.example"), ttl=10)
        with caplog.at_level(logging.WARNING, logger="streamit.discovery.redis_registry"):
            assert await registry.lookup("cam") is None
            assert await registry.list() == []
            assert await registry.lookup("cam") is None
        warnings = [record for record in caplog.records if "ignoring registry entry" in record.getMessage()]
        assert len(warnings) == 1
        assert await intruder.lookup("cam") is not None
    finally:
        await registry.close()
        await intruder.close()


async def test_tampered_or_moved_entries_are_ignored(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    admin = redis_target.admin
    key = f"{redis_target.prefix}stream:cam"
    try:
        await registry.register(location(), ttl=10)
        entry: object = await admin.hget(key, "entry")
        assert isinstance(entry, bytes)
        await admin.hset(key, "entry", entry.replace(b"127.0.0.1:8081", b"10.0.0.9:8081"))
        assert await registry.lookup("cam") is None

        # A validly signed entry copied under another slug is not an entry for that slug.
        await registry.register(location(), ttl=10)
        fields = await admin.hgetall(key)
        for field, value in fields.items():
            await admin.hset(f"{redis_target.prefix}stream:other", field, value)
        assert await registry.lookup("other") is None
        assert [entry.slug for entry in await registry.list()] == ["cam"]

        # The owner field drives atomic refresh/unregister; it must agree with the signed entry.
        await admin.hset(key, "node", "origin-z")
        assert await registry.lookup("cam") is None
    finally:
        await registry.close()


async def test_lookup_of_non_slug_never_touches_redis(redis_target: RedisTarget) -> None:
    registry = RedisRegistry("redis://127.0.0.1:1/0", secret=SECRET, prefix=redis_target.prefix)
    try:
        assert await registry.lookup("a*") is None
        assert not await registry.refresh("a*", "n", ttl=1)
        await registry.unregister("a*", "n")
    finally:
        await registry.close()


async def test_unreachable_redis_raises_connection_error_quickly() -> None:
    registry = RedisRegistry("redis://127.0.0.1:1/0", secret=SECRET, timeout=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(RegistryUnavailable):
            await registry.lookup("cam")
        with pytest.raises(RegistryUnavailable):
            await registry.register(location(), ttl=10)
        with pytest.raises(RegistryUnavailable):
            await registry.list()
    finally:
        await registry.close()
    assert loop.time() - started < 3


def test_signer_matches_what_redis_stores() -> None:
    entry, mac = EntrySigner(SECRET).sign(location())
    assert len(mac) == 64
    assert EntrySigner(SECRET).verify(entry, mac) == location()


async def test_writes_survive_killed_connections(redis_target: RedisTarget) -> None:
    name = f"streamit-test-{secrets.token_hex(4)}"
    registry = RedisRegistry(redis_target.url, secret=SECRET, prefix=redis_target.prefix, client_name=name)
    try:
        await registry.register(location("a"), ttl=10)
        for slug in ("b", "c"):
            for client in await redis_target.admin.client_list():
                if client.get("name") == name:
                    await redis_target.admin.client_kill_filter(_id=client["id"])
            await registry.register(location(slug), ttl=10)
        assert [entry.slug for entry in await registry.list()] == ["a", "b", "c"]
    finally:
        await registry.close()


async def test_epoch_is_the_servers_run_id(redis_target: RedisTarget) -> None:
    registry = await open_registry(redis_target)
    try:
        epoch = await registry.epoch()
        info = await redis_target.admin.info("server")
        assert epoch == info["run_id"] and len(epoch) == 40
        assert await registry.epoch() == epoch
    finally:
        await registry.close()
