"""Fixtures for discovery tests: a real Redis under a per-test key prefix, and polling helpers."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import IN_CI

REDIS_ENV = "STREAMIT_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A reachable Redis, a key prefix private to one test, and an admin client for inspecting it."""

    url: str
    prefix: str
    admin: Redis


async def _answers_ping(url: str) -> bool:
    client: Redis = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


@pytest.fixture
async def redis_target() -> AsyncIterator[RedisTarget]:
    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS_URL)
    if not await _answers_ping(url):
        message = f"Redis at {url} does not answer PING (set {REDIS_ENV})"
        if IN_CI:
            pytest.fail(message + "; under CI=true a Redis server is required")
        pytest.skip(message)
    prefix = f"streamit-test-{secrets.token_hex(6)}:"
    admin: Redis = Redis.from_url(url)
    try:
        yield RedisTarget(url, prefix, admin)
    finally:
        keys = [key async for key in admin.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.02
) -> float:
    """Seconds until ``check()`` is true; fails the test if it is still false after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await check():
            return loop.time() - started
        if loop.time() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
