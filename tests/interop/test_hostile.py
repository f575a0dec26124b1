"""Hostile and broken peers against a real ``streamit serve`` while real ffmpeg publishes.

Garbage, stalled handshakes and an oversized message are closed within their timeouts without delaying
the good stream's segments; key guessing is refused quickly once an address failed too often; a publisher
whose TCP connection is reset mid-stream leaves a valid, ended playlist.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import (
    PublisherFactory,
    Server,
    ffprobe_codecs,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.interop

HANDSHAKE_TIMEOUT = 3.0
IDLE_TIMEOUT = 5.0


@pytest.fixture
def strict_server(tmp_path: Path, ffmpeg: str) -> Iterator[Server]:
    env = {
        "STREAMIT_RTMP_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "STREAMIT_RTMP_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "STREAMIT_RTMP_MAX_CONNECTIONS_PER_IP": "500",
        "STREAMIT_PUBLISH_FAILURE_LIMIT": "3",
    }
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def playlist(srv: Server, slug: str) -> m3u8.M3U8 | None:
    response = httpx.get(f"{srv.http}/hls/{slug}/index.m3u8", timeout=5)
    return m3u8.loads(response.text) if response.status_code == 200 else None


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A plain RTMP 1.0 handshake (§5.2): C0+C1, read S0+S1+S2, echo S1 as C2."""
    writer.write(b"\x03" + struct.pack(">II", 0, 0) + os.urandom(1528))
    server = await reader.readexactly(1 + 1536 + 1536)
    writer.write(server[1:1537])
    await writer.drain()


async def _until_closed(reader: asyncio.StreamReader, limit: float) -> None:
    """Read until the server closes the connection (EOF or a reset), for at most ``limit`` seconds."""
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError, OSError):
        pass


async def _attacker(port: int, kind: str, seed: int) -> tuple[str, float]:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.monotonic()
        if kind == "garbage":
            writer.write(rng.randbytes(rng.randint(1, 5000)))
        elif kind == "garbage-after-handshake":
            await _handshake(reader, writer)
            writer.write(rng.randbytes(rng.randint(1, 5000)))
        elif kind == "stall-after-c0":
            writer.write(b"\x03")
        elif kind == "huge-message":
            await _handshake(reader, writer)
            # fmt 0, csid 3: timestamp 0, length 0xFFFFFF (16 MB), type 9 (video), message stream 1.
            writer.write(b"\x03" + b"\x00\x00\x00" + b"\xff\xff\xff" + b"\x09" + struct.pack("<I", 1))
            writer.write(b"\x17\x01" + bytes(100))
        await writer.drain()
        await _until_closed(reader, HANDSHAKE_TIMEOUT + IDLE_TIMEOUT + 10)
        return kind, time.monotonic() - started
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        return kind, 0.0  # closed while we were still talking
    finally:
        writer.close()


async def _attack(port: int) -> list[tuple[str, float]]:
    kinds = ["garbage"] * 50 + ["garbage-after-handshake"] * 50 + ["stall-after-c0"] * 50 + ["huge-message"]
    return await asyncio.gather(*(_attacker(port, kind, seed) for seed, kind in enumerate(kinds)))


def test_hostile_connections_do_not_disturb_a_good_publisher(
    strict_server: Server, publishers: PublisherFactory, ffprobe: str, tmp_path: Path
) -> None:
    srv = strict_server
    stream = srv.create_stream("Good", slug="good")
    publisher = publishers.generated(srv.rtmp_url(stream.stream_key), seconds=40)
    assert wait_for(lambda: (p := playlist(srv, "good")) is not None and len(p.segments) >= 2, 20), srv.log()
    baseline = rss_kib(srv.process.pid)

    arrivals: list[float] = []
    done = threading.Event()

    def watch_segments() -> None:
        last = None
        while not done.is_set():
            current = playlist(srv, "good")
            newest = current.segments[-1].uri if current is not None and current.segments else None
            if newest != last:
                arrivals.append(time.monotonic())
                last = newest
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_segments)
    watcher.start()
    try:
        results = asyncio.run(_attack(srv.rtmp_port))
        time.sleep(4)  # the good stream keeps going after the attack too
    finally:
        done.set()
        watcher.join()

    by_kind: dict[str, list[float]] = {}
    for kind, seconds in results:
        by_kind.setdefault(kind, []).append(seconds)
    # Garbage is refused at once (a bad version byte or chunk) or, if it happens to parse, idles out.
    assert max(by_kind["garbage"]) < IDLE_TIMEOUT + 3, by_kind["garbage"]
    assert max(by_kind["garbage-after-handshake"]) < IDLE_TIMEOUT + 3, by_kind["garbage-after-handshake"]
    stalls = by_kind["stall-after-c0"]
    assert all(HANDSHAKE_TIMEOUT - 0.5 < s < HANDSHAKE_TIMEOUT + 3 for s in stalls), stalls
    assert by_kind["huge-message"][0] < 2, by_kind["huge-message"]

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) >= 4 and max(gaps) < 2 * 2.0 + 1.5, gaps
    assert rss_kib(srv.process.pid) - baseline < 40 * 1024
    assert publisher.poll() is None, publisher.errors()
    current = playlist(srv, "good")
    assert current is not None
    segment = httpx.get(f"{srv.http}/hls/good/{current.segments[-1].uri}", timeout=5)
    (tmp_path / "after.ts").write_bytes(segment.content)
    assert ffprobe_codecs(ffprobe, tmp_path / "after.ts") >= {"h264", "aac"}
    log = srv.log()
    assert "did not finish the handshake in time" in log
    assert "exceeds" in log  # the 16 MB message was refused by the cap, not buffered


def test_key_guessing_is_refused_quickly(strict_server: Server, publishers: PublisherFactory) -> None:
    srv = strict_server
    stream = srv.create_stream("Guarded", slug="guarded")
    for attempt in range(3):
        guess = publishers.generated(srv.rtmp_url(f"guess-{attempt}"), seconds=5)
        assert guess.wait(30) != 0
    log = srv.log()
    assert log.count("unknown stream key") == 3
    assert "3 refused publishes within 60 s" in log

    started = time.monotonic()
    blocked = publishers.generated(srv.rtmp_url(stream.stream_key), seconds=5)
    assert blocked.wait(30) != 0  # even the right key: this address is blocked for now
    assert time.monotonic() - started < 10
    assert "too many refused publishes from 127.0.0.1" in srv.log()
    assert stream.stream_key not in srv.log()
    assert srv.stream_json("guarded")["status"] == "DRAFT"


class ResettingProxy:
    """Forwards one TCP connection to the server; :meth:`reset` aborts both sides with an RST."""

    def __init__(self, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.target_port = target_port
        self.sockets: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        downstream, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        self.sockets = [downstream, upstream]
        peers = {downstream: upstream, upstream: downstream}
        while not self.stopping.is_set():
            readable, _, _ = select.select(self.sockets, [], [], 0.05)
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                peers[source].sendall(data)

    def reset(self) -> None:
        """Stop forwarding, then close with SO_LINGER 0: the kernel sends RST instead of FIN."""
        self.stopping.set()
        self.thread.join(5)
        for sock in self.sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self.listener.close()


def test_publisher_reset_mid_stream_leaves_an_ended_valid_playlist(
    server: Server, publishers: PublisherFactory, ffprobe: str, tmp_path: Path
) -> None:
    stream = server.create_stream("Reset", slug="reset")
    proxy = ResettingProxy(server.rtmp_port)
    publisher = publishers.generated(f"rtmp://127.0.0.1:{proxy.port}/live/{stream.stream_key}", seconds=60)
    assert wait_for(lambda: (p := playlist(server, "reset")) is not None and len(p.segments) >= 3, 25)
    time.sleep(0.7)  # mid-segment
    proxy.reset()
    reset_at = time.monotonic()

    assert wait_for(lambda: (p := playlist(server, "reset")) is not None and p.is_endlist, 10), server.log()
    assert time.monotonic() - reset_at < 5
    assert "reset by peer" in server.log()  # an RST, not an orderly close
    assert server.stream_json("reset")["status"] == "ENDED"
    ended = playlist(server, "reset")
    assert ended is not None
    for number, segment in enumerate(ended.segments):
        response = httpx.get(f"{server.http}/hls/reset/{segment.uri}", timeout=5)
        assert response.status_code == 200
        path = tmp_path / f"segment-{number}.ts"
        path.write_bytes(response.content)
        assert ffprobe_codecs(ffprobe, path) >= {"h264", "aac"}
    publisher.stop()


def test_oversized_http_request_head_is_refused(strict_server: Server) -> None:
    # A 64 KiB header arriving in one piece is answered 431 once parsed.
    with socket.create_connection(("127.0.0.1", strict_server.http_port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 65536 + b"\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    # A header that never ends is cut off after 16 KiB instead of being buffered: the server closes the
    # connection long before 16 MB went through.
    sent = 0
    with socket.create_connection(("127.0.0.1", strict_server.http_port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while sent < 16 * 1024 * 1024:
                sent += sock.send(b"a" * 65536)
    assert sent < 8 * 1024 * 1024
    assert httpx.get(f"{strict_server.http}/healthz", timeout=5).status_code == 200


def test_connections_per_ip_are_capped(tmp_path: Path, ffmpeg: str) -> None:
    env = {"STREAMIT_RTMP_MAX_CONNECTIONS_PER_IP": "5", "STREAMIT_RTMP_HANDSHAKE_TIMEOUT": "30"}
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    held: list[socket.socket] = []
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", srv.rtmp_port), timeout=5)
            sock.sendall(b"\x03")
            held.append(sock)
        time.sleep(0.3)
        with (
            socket.create_connection(("127.0.0.1", srv.rtmp_port), timeout=5) as extra,
            contextlib.suppress(ConnectionResetError, BrokenPipeError),
        ):
            extra.sendall(b"\x03" + bytes(1536))
            assert extra.recv(4096) == b""  # closed at once, without a handshake reply
        assert wait_for(lambda: "is at its limit of 5 connections" in srv.log(), 5), srv.log()
        for sock in held:
            sock.close()
        held.clear()
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", srv.rtmp_port), timeout=5) as again:
            again.sendall(b"\x03" + bytes(1536))
            assert len(again.recv(4096)) > 0  # admitted again once the others left
    finally:
        for sock in held:
            sock.close()
        stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()
