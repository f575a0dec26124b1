"""Fixtures that run the real ``streamit serve`` process and real ffmpeg publishers."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from redis.exceptions import RedisError

from tests.conftest import IN_CI, require_tool

pytestmark = pytest.mark.interop

TESTSRC = [
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=30",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000",
]
ENCODE_1S_GOP = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-tune",
    "zerolatency",
    "-pix_fmt",
    "yuv420p",
    "-g",
    "30",
    "-keyint_min",
    "30",
    "-sc_threshold",
    "0",
    "-b:v",
    "800k",
    "-c:a",
    "aac",
    "-b:a",
    "96k",
]


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StreamInfo:
    """What ``streamit streams create --json`` printed."""

    id: str
    slug: str
    stream_key: str
    publish_url: str
    playback_url: str


@dataclass
class Server:
    """A running ``streamit serve`` process."""

    process: subprocess.Popen[bytes]
    rtmp_port: int
    http_port: int
    data_dir: Path
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamit",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--http-port",
                str(self.http_port),
                "--rtmp-port",
                str(self.rtmp_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def create_stream(self, title: str, slug: str | None = None) -> StreamInfo:
        args = ["streams", "create", title, "--json"]
        if slug:
            args += ["--slug", slug]
        return StreamInfo(**json.loads(self.cli(*args)))

    def create_token(self, name: str = "tests") -> str:
        token: str = json.loads(self.cli("tokens", "create", "--name", name, "--json"))["token"]
        return token

    def owner_get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(f"{self.http}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stream_json(self, slug: str) -> dict[str, object]:
        response = httpx.get(f"{self.http}/api/v1/streams/{slug}", timeout=5)
        response.raise_for_status()
        data: dict[str, object] = response.json()
        return data


@pytest.fixture
def ffmpeg() -> str:
    return require_tool("ffmpeg")


@pytest.fixture
def ffprobe() -> str:
    return require_tool("ffprobe")


def start_server(
    data_dir: Path, log_path: Path, rtmp_port: int, http_port: int, env: dict[str, str] | None = None
) -> Server:
    """Start ``streamit serve`` and wait until it answers ``/healthz``; ``env`` adds settings."""
    env = {**os.environ, "STREAMIT_LOG_LEVEL": "INFO", **(env or {})}
    command = [sys.executable, "-m", "streamit", "serve", "--data-dir", str(data_dir)]
    command += ["--rtmp-port", str(rtmp_port), "--http-port", str(http_port)]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    srv = Server(process, rtmp_port, http_port, data_dir, log_path)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"streamit serve exited early:\n{srv.log()}")
        try:
            if httpx.get(f"{srv.http}/healthz", timeout=1).status_code == 200:
                return srv
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"streamit serve did not become healthy:\n{srv.log()}")
        time.sleep(0.1)


def stop_server(srv: Server, timeout: float = 15) -> None:
    """SIGTERM, as an operator or a service manager would; fail if it does not stop in time."""
    if srv.process.poll() is not None:
        return
    srv.process.send_signal(signal.SIGTERM)
    try:
        srv.process.wait(timeout)
    except subprocess.TimeoutExpired:
        srv.process.kill()
        srv.process.wait()
        pytest.fail(f"streamit serve did not stop on SIGTERM:\n{srv.log()}")


@pytest.fixture
def server(tmp_path: Path, ffmpeg: str) -> Iterator[Server]:
    """``streamit serve`` on free ports with its own data directory."""
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port())
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


class Publisher:
    """An ffmpeg publisher process; its stderr goes to a file so that failures can be shown."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file
            )

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def errors(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class PublisherFactory:
    """Starts ffmpeg publishers and kills any still running when the test ends."""

    def __init__(self, ffmpeg: str, directory: Path) -> None:
        self.ffmpeg = ffmpeg
        self.directory = directory
        self.started: list[Publisher] = []

    def start(self, args: list[str]) -> Publisher:
        publisher = Publisher([self.ffmpeg, *args], self.directory / f"ffmpeg-{len(self.started)}.log")
        self.started.append(publisher)
        return publisher

    def generated(
        self, url: str, *, seconds: float, extra: list[str] | None = None, realtime: bool = True
    ) -> Publisher:
        """Publish a generated 640x360 H.264/AAC stream with a 1 s GOP."""
        args = ["-hide_banner", "-loglevel", "error"]
        if realtime:
            args.append("-re")
        args += [*TESTSRC, "-t", str(seconds), *ENCODE_1S_GOP, *(extra or []), "-f", "flv", url]
        return self.start(args)

    def copy(self, clip: Path, url: str) -> Publisher:
        """Publish a pre-encoded clip in real time without re-encoding."""
        return self.start(
            ["-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "flv", url]
        )


@pytest.fixture
def publishers(ffmpeg: str, tmp_path: Path) -> Iterator[PublisherFactory]:
    factory = PublisherFactory(ffmpeg, tmp_path)
    yield factory
    for publisher in factory.started:
        publisher.stop()


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pre-encoded 8 s FLV clip (640x360, 1 s GOP) for stream-copy publishers."""
    ffmpeg = require_tool("ffmpeg")
    path = tmp_path_factory.mktemp("clip") / "clip.flv"
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            *TESTSRC,
            "-t",
            "8",
            *ENCODE_1S_GOP,
            "-f",
            "flv",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is truthy or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except (httpx.TransportError, OSError):
            pass
        time.sleep(interval)
    return False


REDIS_URL = os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class RedisTarget:
    """The real Redis of the machine, with a key prefix private to one test."""

    url: str
    prefix: str
    admin: redis.Redis


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    """Skips (fails under CI) without Redis; deletes every key under its prefix afterwards."""
    admin = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        admin.ping()
    except (RedisError, OSError):
        admin.close()
        message = f"Redis at {REDIS_URL} does not answer PING (set STREAMIT_TEST_REDIS_URL)"
        if IN_CI:
            pytest.fail(message + "; under CI=true a Redis server is required")
        pytest.skip(message)
    prefix = f"streamit-test-{secrets.token_hex(6)}:"
    try:
        yield RedisTarget(REDIS_URL, prefix, admin)
    finally:
        keys = list(admin.scan_iter(match=prefix + "*", count=1000))
        if keys:
            admin.delete(*keys)
        admin.close()


def ffprobe_codecs(ffprobe: str, path: Path) -> set[str]:
    """The codec names ffprobe finds in ``path``."""
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return {stream["codec_name"] for stream in json.loads(result.stdout)["streams"]}
