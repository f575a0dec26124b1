from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from streamit.discovery.location import StreamLocation
from streamit.discovery.memory import MemoryRegistry
from streamit.discovery.redis_registry import RedisRegistry
from streamit.discovery.registrar import OriginRegistrar
from streamit.errors import InvalidInput
from tests.discovery.conftest import RedisTarget, eventually

STARTED = datetime(2024, 5, 1, 12, tzinfo=UTC)
ORIGIN = "http://127.0.0.1:8081"
REGISTRAR_LOG = "streamit.discovery.registrar"


class CountingRegistry(MemoryRegistry):
    """A memory registry that counts calls and can be switched off like a lost Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls: dict[str, int] = {"register": 0, "refresh": 0, "unregister": 0}

    def _check(self, name: str) -> None:
        if self.down:
            raise ConnectionError("registry is down")
        self.calls[name] += 1

    async def register(self, location: StreamLocation, ttl: float) -> None:
        self._check("register")
        await super().register(location, ttl)

    async def refresh(self, slug: str, node: str, ttl: float) -> bool:
        self._check("refresh")
        return await super().refresh(slug, node, ttl)

    async def unregister(self, slug: str, node: str) -> None:
        self._check("unregister")
        await super().unregister(slug, node)


@contextlib.asynccontextmanager
async def running(registrar: OriginRegistrar) -> AsyncIterator[None]:
    task = asyncio.create_task(registrar.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def registered(registry: MemoryRegistry | RedisRegistry, slug: str) -> StreamLocation | None:
    return await registry.lookup(slug)


async def test_publish_registers_heartbeats_and_unpublish_removes() -> None:
    registry = CountingRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN + "/", node="origin-a", ttl=0.3)
    async with running(registrar):
        registrar.publish("cam", started_at=STARTED, metadata={"viewers": "1"})

        async def present() -> bool:
            return await registry.lookup("cam") is not None

        assert await eventually(present, timeout=0.5) < 0.1
        location = await registry.lookup("cam")
        assert location == StreamLocation("cam", ORIGIN, "origin-a", STARTED, {"viewers": "1"})
        # Three TTLs later the entry is still there only because of heartbeats every ttl / 3.
        await asyncio.sleep(0.9)
        assert await registry.lookup("cam") is not None
        assert 6 <= registry.calls["refresh"] <= 12
        assert registry.calls["register"] == 1

        registrar.publish("cam", started_at=STARTED, metadata={"viewers": "5"})

        async def updated() -> bool:
            found = await registry.lookup("cam")
            return found is not None and found.metadata["viewers"] == "5"

        await eventually(updated, timeout=0.5)

        registrar.unpublish("cam")

        async def absent() -> bool:
            return await registry.lookup("cam") is None

        assert await eventually(absent, timeout=0.5) < 0.1
        assert registrar.live == frozenset()


async def test_entry_is_gone_without_heartbeats() -> None:
    registry = CountingRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=0.3)
    async with running(registrar):
        registrar.publish("cam", started_at=STARTED, metadata={})
        await eventually(lambda: _is_present(registry, "cam"), timeout=0.5)
    await asyncio.sleep(0.4)
    assert await registry.lookup("cam") is None


async def _is_present(registry: MemoryRegistry | RedisRegistry, slug: str) -> bool:
    return await registry.lookup(slug) is not None


async def test_vanished_entry_is_registered_again_within_a_heartbeat() -> None:
    registry = CountingRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=0.6)
    async with running(registrar):
        registrar.publish("cam", started_at=STARTED, metadata={})
        await eventually(lambda: _is_present(registry, "cam"), timeout=0.5)
        await registry.close()  # like a Redis restart without persistence
        assert await eventually(lambda: _is_present(registry, "cam"), timeout=1.0) <= 0.3


async def test_registry_outage_is_logged_once_and_recovered(caplog: pytest.LogCaptureFixture) -> None:
    registry = CountingRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=0.3)
    with caplog.at_level(logging.INFO, logger=REGISTRAR_LOG):
        async with running(registrar):
            registry.down = True
            registrar.publish("a", started_at=STARTED, metadata={})
            registrar.publish("b", started_at=STARTED, metadata={})
            await asyncio.sleep(0.5)
            assert await registry.list() == []
            registry.down = False
            took = await eventually(lambda: _both(registry), timeout=1.0)
            assert took <= 0.2
            registrar.unpublish("a")
            registry.down = True
            await asyncio.sleep(0.3)
            registry.down = False
            # Both entries expired during the outage; b comes back, a does not.
            await eventually(lambda: _is_present(registry, "b"), timeout=1.0)
            await asyncio.sleep(0.1)
            assert await registry.lookup("a") is None
            assert registry.calls["unregister"] == 1
    messages = [record.getMessage() for record in caplog.records if record.name == REGISTRAR_LOG]
    assert sum("unavailable" in message for message in messages) == 2
    assert sum("reachable again" in message for message in messages) == 2


async def _both(registry: MemoryRegistry) -> bool:
    return [entry.slug for entry in await registry.list()] == ["a", "b"]


async def _is_absent(registry: MemoryRegistry | RedisRegistry, slug: str) -> bool:
    return await registry.lookup(slug) is None


async def test_unpublish_does_not_remove_another_origins_entry() -> None:
    registry = MemoryRegistry()
    first = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=5)
    second = OriginRegistrar(registry, origin_url="http://127.0.0.1:8082", node="origin-b", ttl=5)
    async with running(first), running(second):
        first.publish("cam", started_at=STARTED, metadata={})
        await eventually(lambda: _is_present(registry, "cam"), timeout=0.5)
        second.publish("cam", started_at=STARTED, metadata={})

        async def moved() -> bool:
            found = await registry.lookup("cam")
            return found is not None and found.node == "origin-b"

        await eventually(moved, timeout=0.5)
        first.unpublish("cam")
        await asyncio.sleep(0.1)
        found = await registry.lookup("cam")
        assert found is not None and found.origin_url == "http://127.0.0.1:8082"


async def test_withdraw_all_unregisters_everything() -> None:
    registry = MemoryRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=5)
    async with running(registrar):
        for slug in ("a", "b", "c"):
            registrar.publish(slug, started_at=STARTED, metadata={})
        await eventually(lambda: _count(registry, 3), timeout=0.5)
    await registrar.withdraw_all()
    assert await registry.list() == []


async def _count(registry: MemoryRegistry, expected: int) -> bool:
    return len(await registry.list()) == expected


def test_invalid_construction_and_publish_are_refused() -> None:
    registry = MemoryRegistry()
    with pytest.raises(InvalidInput):
        OriginRegistrar(registry, origin_url="ftp://x", node="n")
    with pytest.raises(InvalidInput):
        OriginRegistrar(registry, origin_url=ORIGIN, node="n", ttl=0)
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="n")
    assert (registrar.origin_url, registrar.node, registrar.ttl) == (ORIGIN, "n", 10.0)
    with pytest.raises(InvalidInput):
        registrar.publish("../x", started_at=STARTED, metadata={})
    assert registrar.live == frozenset()


async def test_redis_connections_killed_mid_stream(redis_target: RedisTarget) -> None:
    name = f"streamit-test-{secrets.token_hex(4)}"
    registry = RedisRegistry(redis_target.url, secret="s", prefix=redis_target.prefix, client_name=name)
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=0.9)
    try:
        async with running(registrar):
            registrar.publish("cam", started_at=STARTED, metadata={})
            await eventually(lambda: _is_present(registry, "cam"), timeout=1.0)
            for _ in range(3):
                clients = await redis_target.admin.client_list()
                ours = [client["id"] for client in clients if client.get("name") == name]
                assert ours
                for client_id in ours:
                    await redis_target.admin.client_kill_filter(_id=client_id)
                # Data lost as well, as after a restart without persistence.
                await redis_target.admin.delete(f"{redis_target.prefix}stream:cam")
                took = await eventually(lambda: _is_present(registry, "cam"), timeout=2.0)
                assert took <= 0.3 + 0.2  # one heartbeat (ttl / 3) and some slack
    finally:
        await registry.close()


class SwitchableProxy:
    """A TCP proxy to Redis on a fixed port that can be closed (connection refused) and opened again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()
        self._tasks.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.update({writer, up_writer})
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


async def test_closed_port_then_real_redis(
    redis_target: RedisTarget, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(redis_target.url)
    proxy = SwitchableProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    url = f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}"
    registry = RedisRegistry(url, secret="s", prefix=redis_target.prefix, timeout=0.5)
    direct = RedisRegistry(redis_target.url, secret="s", prefix=redis_target.prefix)
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a", ttl=0.9)
    try:
        with caplog.at_level(logging.INFO, logger=REGISTRAR_LOG):
            async with running(registrar):
                registrar.publish("cam", started_at=STARTED, metadata={})
                await asyncio.sleep(0.8)  # several failed rounds against the closed port
                assert await direct.lookup("cam") is None
                await proxy.open()
                assert await eventually(lambda: _is_present(direct, "cam"), timeout=2.0) <= 0.3 + 0.2

                async def recovered() -> bool:
                    return any("reachable again" in record.getMessage() for record in caplog.records)

                # The entry is written early in a round: the outage ends with the round (a second outage
                # inside the same round would be the first one going on).
                await eventually(recovered, timeout=2.0)
                await proxy.close()  # Redis gone mid-stream: established connections drop too
                await direct.close()
                direct = RedisRegistry(redis_target.url, secret="s", prefix=redis_target.prefix)
                await redis_target.admin.delete(f"{redis_target.prefix}stream:cam")
                await asyncio.sleep(0.8)
                await proxy.open()
                assert await eventually(lambda: _is_present(direct, "cam"), timeout=2.0) <= 0.3 + 0.2
        messages = [record.getMessage() for record in caplog.records if record.name == REGISTRAR_LOG]
        assert sum("unavailable" in message for message in messages) == 2
    finally:
        await proxy.close()
        await registry.close()
        await direct.close()
