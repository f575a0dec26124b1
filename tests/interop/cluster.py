"""Real ``streamit`` cluster processes for interop tests: origins, edges and the API, plus a private Redis.

Every node is its own ``python -m streamit <role>`` process with its own port and log file, sharing one
Redis key prefix and cluster secret (and, when given, one database).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import IN_CI
from tests.interop.conftest import RedisTarget, StreamInfo, free_port, wait_for

TTL = 3.0
"""Registry TTL of test clusters: short, so an origin's death shows within seconds."""


@dataclass
class Node:
    """A ``streamit`` process (origin, edge or api) with its log file."""

    process: subprocess.Popen[bytes]
    http_port: int
    log_path: Path
    rtmp_port: int = 0
    data_dir: Path | None = None
    database_url: str | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def create_stream(self, slug: str) -> StreamInfo:
        """``streamit streams create`` against this origin's database."""
        assert self.data_dir is not None
        command = [sys.executable, "-m", "streamit", "streams", "create", "Show", "--slug", slug, "--json"]
        command += ["--data-dir", str(self.data_dir), "--rtmp-port", str(self.rtmp_port)]
        if self.database_url is not None:
            command += ["--database-url", self.database_url]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return StreamInfo(**json.loads(result.stdout))

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def metric(self, name: str, **labels: str) -> float:
        """One sample of this node's ``/metrics`` (0 when the series does not exist yet)."""
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        series = f"{name}{{{wanted}}}" if labels else name
        for line in httpx.get(f"{self.http}/metrics", timeout=5).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM; the exit status, or a failure if it does not stop in time."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"did not stop on SIGTERM:\n{self.log()}")


class Cluster:
    """Starts ``streamit`` roles sharing one Redis prefix and secret; kills whatever still runs at the end."""

    def __init__(self, directory: Path, target: RedisTarget, database_url: str | None = None) -> None:
        self.directory = directory
        self.target = target
        self.database_url = database_url
        self.secret = secrets.token_urlsafe(24)
        self.flags = ["--redis-url", target.url, "--cluster-secret", self.secret]
        self.flags += ["--redis-prefix", target.prefix]
        self.nodes: list[Node] = []

    def _start(
        self, name: str, args: list[str], http_port: int, rtmp_port: int = 0, data_dir: Path | None = None
    ) -> Node:
        env = {**os.environ, "STREAMIT_LOG_LEVEL": "INFO", "STREAMIT_NODE_ID": name}
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamit", *args, *self.flags],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        node = Node(process, http_port, log_path, rtmp_port, data_dir, self.database_url)
        self.nodes.append(node)
        healthy = wait_for(
            lambda: (
                node.process.poll() is not None
                or httpx.get(f"{node.http}/healthz", timeout=1).status_code == 200
            ),
            30,
        )
        assert healthy and node.process.poll() is None, node.log()
        return node

    def _database_flags(self) -> list[str]:
        return [] if self.database_url is None else ["--database-url", self.database_url]

    def origin(self, name: str) -> Node:
        data_dir = self.directory / name
        http_port, rtmp_port = free_port(), free_port()
        args = ["origin", "--data-dir", str(data_dir), "--http-port", str(http_port)]
        args += ["--rtmp-port", str(rtmp_port), "--public-url", f"http://127.0.0.1:{http_port}"]
        args += ["--discovery-ttl", str(TTL), *self._database_flags()]
        return self._start(name, args, http_port, rtmp_port, data_dir)

    def edge(self, name: str) -> Node:
        http_port = free_port()
        return self._start(name, ["edge", "--http-port", str(http_port)], http_port)

    def api(self, name: str, playback_url: str) -> Node:
        data_dir = self.directory / name
        http_port = free_port()
        args = ["api", "--data-dir", str(data_dir), "--http-port", str(http_port)]
        args += ["--public-url", f"http://127.0.0.1:{http_port}", "--playback-url", playback_url]
        args += ["--discovery-ttl", str(TTL), *self._database_flags()]
        return self._start(name, args, http_port, data_dir=data_dir)

    def logs(self) -> str:
        return "\n".join(f"--- {node.log_path.name}\n{node.log()}" for node in self.nodes)

    def kill_all(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


def registered(target: RedisTarget, slug: str) -> dict[str, object] | None:
    """The registry entry of ``slug`` as stored in Redis (its signed JSON), or None."""
    raw = target.admin.hget(f"{target.prefix}stream:{slug}", "entry")
    if raw is None:
        return None
    entry: dict[str, object] = json.loads(raw)
    return entry


PG_ENV = "STREAMIT_TEST_DATABASE_URL"


async def _admin(url: str, statement: str) -> None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL database for a cluster (skips without one; fails under CI=true)."""
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        message = f"cluster tests need PostgreSQL: set {PG_ENV}=postgresql+asyncpg://user@host:port/db"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"streamit_cluster_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class PrivateRedis:
    """A ``redis-server`` of this test alone (no persistence), so that it can be restarted for real."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (apt-get install redis-server)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        probe = [shutil.which("redis-cli") or "redis-cli", "-p", str(self.port), "ping"]
        assert wait_for(lambda: subprocess.run(probe, capture_output=True).stdout.strip() == b"PONG", 10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
