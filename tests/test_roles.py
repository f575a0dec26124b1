"""``streamit edge`` and ``streamit discovery``: CLI hand-off, and both roles in-process on real Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from redis.exceptions import RedisError

from streamit.cli import main
from streamit.config import Settings
from streamit.discovery import RedisRegistry, StreamLocation
from streamit.roles import run_discovery, run_edge
from tests.conftest import IN_CI
from tests.interop.conftest import free_port

REDIS_URL = os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIVE_PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n0.ts\n"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "CLUSTER_SECRET", "CONFIG", "HTTP_PORT", "NODE_ID"):
        monkeypatch.delenv(f"STREAMIT_{name}", raising=False)


@pytest.fixture
def handed_off(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Replace both roles by recorders: these tests check the CLI's hand-off, not the roles."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recorder(role: str) -> Any:
        async def record(*args: Any, **kwargs: Any) -> None:
            calls.append((role, args, kwargs))

        return record

    monkeypatch.setattr("streamit.roles.run_edge", recorder("edge"))
    monkeypatch.setattr("streamit.roles.run_discovery", recorder("discovery"))
    return calls


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (["edge", "--cluster-secret", "s"], "--redis-url"),
        (["edge", "--redis-url", "redis://127.0.0.1"], "--cluster-secret"),
        (["discovery", "--hls-dir", "x", "--origin-url", "http://o", "--cluster-secret", "s"], "--redis-url"),
        (
            ["discovery", "--hls-dir", "x", "--origin-url", "http://o", "--redis-url", "redis://r"],
            "--cluster-secret",
        ),
        (
            ["discovery", "--origin-url", "http://o", "--redis-url", "redis://r", "--cluster-secret", "s"],
            "--hls-dir",
        ),
    ],
)
def test_missing_cluster_settings_are_usage_errors(
    args: list[str], missing: str, handed_off: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert missing in result.output
    assert handed_off == []


def test_edge_hands_settings_secret_and_prefix_to_the_role(
    handed_off: list[tuple[str, tuple[Any, ...], dict[str, Any]]],
) -> None:
    result = CliRunner().invoke(
        main,
        ["edge", "--http-port", "8123", "--redis-url", "redis://r:1/0", "--redis-prefix", "t:"],
        env={"STREAMIT_CLUSTER_SECRET": "from-env"},
    )
    assert result.exit_code == 0, result.output
    [(role, (settings, secret), kwargs)] = handed_off
    assert role == "edge" and secret == "from-env" and kwargs == {"redis_prefix": "t:"}
    assert isinstance(settings, Settings)
    assert settings.http_port == 8123 and settings.redis_url == "redis://r:1/0"


def test_discovery_hands_folder_origin_and_node_to_the_role(
    tmp_path: Path, handed_off: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "discovery",
            "--hls-dir",
            str(tmp_path),
            "--origin-url",
            "http://origin:8080",
            "--node",
            "n1",
            "--redis-url",
            "redis://r",
            "--cluster-secret",
            "flag",
        ],
        env={"STREAMIT_CLUSTER_SECRET": "env-loses"},
    )
    assert result.exit_code == 0, result.output
    [(role, (settings, hls_dir, origin_url, secret), kwargs)] = handed_off
    assert role == "discovery" and hls_dir == tmp_path and origin_url == "http://origin:8080"
    assert secret == "flag" and kwargs == {"node": "n1", "redis_prefix": "streamit:"}
    assert settings.redis_url == "redis://r"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix private to one test in a reachable Redis; its keys are deleted afterwards."""
    admin: Redis = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await admin.ping()
    except (RedisError, OSError):
        await admin.aclose()
        message = f"Redis at {REDIS_URL} does not answer PING (set STREAMIT_TEST_REDIS_URL)"
        if IN_CI:
            pytest.fail(message + "; under CI=true a Redis server is required")
        pytest.skip(message)
    prefix = f"streamit-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        keys = [key async for key in admin.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


async def eventually_location(registry: RedisRegistry, slug: str, *, present: bool) -> StreamLocation | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        location = await registry.lookup(slug)
        if (location is not None) == present:
            return location
        await asyncio.sleep(0.05)
    pytest.fail(f"registry entry for {slug!r} {'never appeared' if present else 'stayed'}")


async def test_discovery_registers_a_playlist_and_withdraws_it_when_stopped(
    tmp_path: Path, redis_prefix: str
) -> None:
    (tmp_path / "cam").mkdir()
    (tmp_path / "cam" / "index.m3u8").write_bytes(LIVE_PLAYLIST)
    settings = Settings(redis_url=REDIS_URL)
    stop = asyncio.Event()
    role = asyncio.create_task(
        run_discovery(
            settings,
            tmp_path,
            "http://origin.test:8080/",
            "secret",
            node="watcher-1",
            redis_prefix=redis_prefix,
            stop=stop,
            rescan_interval=0.1,
        )
    )
    registry = RedisRegistry(REDIS_URL, secret="secret", prefix=redis_prefix)
    try:
        location = await eventually_location(registry, "cam", present=True)
        assert location is not None
        assert location.origin_url == "http://origin.test:8080" and location.node == "watcher-1"
        assert location.metadata["playlist"] == "cam/index.m3u8"
        # Another secret cannot read (or have written) the entry.
        stranger = RedisRegistry(REDIS_URL, secret="other", prefix=redis_prefix)
        assert await stranger.lookup("cam") is None
        await stranger.close()
        stop.set()
        await asyncio.wait_for(role, 10)
        assert await registry.lookup("cam") is None
    finally:
        role.cancel()
        await registry.close()


async def test_edge_serves_until_stopped_and_404s_unknown_streams(redis_prefix: str) -> None:
    port = free_port()
    settings = Settings(redis_url=REDIS_URL, http_host="127.0.0.1", http_port=port)
    stop, ready = asyncio.Event(), asyncio.Event()
    role = asyncio.create_task(
        run_edge(settings, "secret", redis_prefix=redis_prefix, stop=stop, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            missing = await client.get("/hls/nobody/index.m3u8")
            assert missing.status_code == 404 and missing.headers["x-cache"] == "MISS"
        stop.set()
        await asyncio.wait_for(role, 10)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    finally:
        role.cancel()
