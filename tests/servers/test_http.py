"""The HTTP server's fast path for HLS objects, over real sockets: the same answers as the ASGI route, in
order with the app's answers on a pipelined connection, keep-alive and close honoured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from streamit.app import EmbeddedUvicorn
from streamit.config import Settings
from streamit.origin import SegmentStoreRegistry, create_origin_router
from streamit.origin.routes import FastResponse, HlsResponder
from streamit.servers.http import http_config

PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.ts\n"
SEGMENT = bytes([0x47]) + bytes(range(187)) * 700  # bigger than one write's join limit


class Origin:
    """A running HTTP server with the origin routes, a slow API route, and optionally the fast path."""

    def __init__(
        self,
        root: Path,
        *,
        fast: bool,
        keep_alive_timeout: float | None = None,
        shutdown_timeout: int = 5,
    ) -> None:
        self.metrics = CollectorRegistry()
        self.responder = HlsResponder(SegmentStoreRegistry(root), segment_duration=2.0, metrics=self.metrics)
        app = FastAPI()
        app.include_router(
            create_origin_router(self.responder.stores, segment_duration=2.0, responder=self.responder)
        )

        @app.get("/api/slow")
        async def slow() -> dict[str, str]:
            await asyncio.sleep(0.2)
            return {"answer": "slow"}

        self.forever_started = asyncio.Event()

        @app.get("/api/forever")
        async def forever() -> dict[str, str]:
            self.forever_started.set()
            await asyncio.Event().wait()
            return {"answer": "never"}

        @app.post("/api/echo")
        async def echo(request: Request) -> dict[str, object]:
            body = await request.body()
            return {"length": len(body), "test": request.headers.get("x-test"), "path": request.url.path}

        settings = Settings(
            http_host="127.0.0.1", http_port=0, data_dir=root, http_shutdown_timeout=shutdown_timeout
        )
        self.fast_targets: list[bytes] = []
        config = http_config(app, settings, fast_path=self._fast if fast else None)
        if keep_alive_timeout is not None:
            config.timeout_keep_alive = keep_alive_timeout  # type: ignore[assignment]
        self.server = EmbeddedUvicorn(config)
        self.port = 0

    def _fast(self, target: bytes) -> FastResponse | None:
        self.fast_targets.append(target)
        return self.responder.fast(target)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task

    def served(self, kind: str) -> float:
        value = self.metrics.get_sample_value(
            "streamit_hls_requests_total", {"kind": kind, "outcome": "served"}
        )
        return value or 0.0


@pytest.fixture
def hls_root(tmp_path: Path) -> Path:
    root = tmp_path / "hls"
    (root / "show").mkdir(parents=True)
    (root / "show" / "index.m3u8").write_bytes(PLAYLIST)
    (root / "show" / "seg-000000.ts").write_bytes(SEGMENT)
    return root


@pytest.fixture
async def origins(hls_root: Path) -> AsyncIterator[tuple[Origin, Origin]]:
    fast, plain = Origin(hls_root, fast=True), Origin(hls_root, fast=False)
    await fast.start()
    await plain.start()
    yield fast, plain
    await fast.stop()
    await plain.stop()


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("name", ["index.m3u8", "seg-000000.ts", "missing.ts", "..%2Fsecret"])
async def test_fast_path_answers_like_the_route(
    origins: tuple[Origin, Origin], method: str, name: str
) -> None:
    fast, plain = origins
    async with httpx.AsyncClient(trust_env=False) as client:
        a = await client.request(method, f"http://127.0.0.1:{fast.port}/hls/show/{name}")
        b = await client.request(method, f"http://127.0.0.1:{plain.port}/hls/show/{name}")
    assert comparable(a) == comparable(b)
    if name == "index.m3u8":
        assert a.status_code == 200 and (method == "HEAD" or a.content == PLAYLIST)
        assert a.headers["content-length"] == str(len(PLAYLIST))


async def test_fast_answers_are_counted(origins: tuple[Origin, Origin]) -> None:
    fast, _ = origins
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(3):
            assert (await client.get(f"http://127.0.0.1:{fast.port}/hls/show/index.m3u8")).status_code == 200
        assert (await client.get(f"http://127.0.0.1:{fast.port}/hls/show/seg-000000.ts")).content == SEGMENT
        assert (await client.get(f"http://127.0.0.1:{fast.port}/hls/show/nope.ts")).status_code == 404
    assert fast.served("playlist") == 3
    assert fast.served("segment") == 1
    assert len(fast.fast_targets) == 5  # the 404 too was offered to the fast path, which declined
    missing = fast.metrics.get_sample_value(
        "streamit_hls_requests_total", {"kind": "segment", "outcome": "not_found"}
    )
    assert missing == 1  # answered by the route


async def read_responses(
    reader: asyncio.StreamReader, count: int
) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    responses = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status, *lines = head.rstrip(b"\r\n").split(b"\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), 5)
        responses.append((status, headers, body))
    return responses


async def test_pipelined_requests_are_answered_in_order(origins: tuple[Origin, Origin]) -> None:
    fast, _ = origins
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    requests = [
        b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n",
        b"GET /api/slow HTTP/1.1\r\nHost: o\r\n\r\n",  # the app takes 0.2 s over this one
        b"GET /hls/show/seg-000000.ts HTTP/1.1\r\nHost: o\r\n\r\n",
        b"HEAD /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n",
    ]
    writer.write(b"".join(requests[:3]))
    await writer.drain()
    answers = await read_responses(reader, 3)
    assert [a[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
    # The segment waited behind the app's answer: it was not taken by the fast path out of turn.
    assert fast.fast_targets == [b"/hls/show/index.m3u8", b"/api/slow"]
    assert answers[0][2] == PLAYLIST
    assert answers[1][2] == b'{"answer":"slow"}'
    assert answers[2][2] == SEGMENT
    # Keep-alive: the connection answers again, a HEAD without a body.
    writer.write(requests[3])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK") and f"content-length: {len(PLAYLIST)}".encode() in head
    writer.write(requests[0])
    (_, _, body), *_ = await read_responses(reader, 1)
    assert body == PLAYLIST
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
        b"GET /hls/show/index.m3u8 HTTP/1.0\r\n\r\n",
    ],
)
async def test_close_is_honoured(origins: tuple[Origin, Origin], request_bytes: bytes) -> None:
    fast, _ = origins
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(request_bytes)
    (status, headers, body), *_ = await read_responses(reader, 1)
    assert status == b"HTTP/1.1 200 OK" and body == PLAYLIST
    assert headers[b"connection"] == b"close"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()
    assert fast.served("playlist") == 1


async def test_requests_with_a_body_go_to_the_app(origins: tuple[Origin, Origin]) -> None:
    fast, _ = origins
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\nabc")
    (status, _, body), *_ = await read_responses(reader, 1)
    assert status == b"HTTP/1.1 200 OK" and body == PLAYLIST
    assert fast.served("playlist") == 1
    assert fast.fast_targets == []
    writer.close()
    await writer.wait_closed()


async def test_the_app_sees_the_whole_request(origins: tuple[Origin, Origin]) -> None:
    """The scope built late (only for the app) has the headers, and ``Expect: 100-continue`` is honoured."""
    fast, _ = origins
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(
        b"POST /api/echo HTTP/1.1\r\nHost: o\r\nX-Test: yes\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    writer.write(b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n")
    (status, _, body), (_, _, playlist) = await read_responses(reader, 2)
    assert status == b"HTTP/1.1 200 OK"
    assert body == b'{"length":5,"test":"yes","path":"/api/echo"}'
    assert playlist == PLAYLIST
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_idle_keep_alive_connections_are_closed(hls_root: Path, fast_path: bool) -> None:
    """One keep-alive timer per connection: busy connections stay open, idle ones close after the timeout."""
    origin = Origin(hls_root, fast=fast_path, keep_alive_timeout=0.4)
    await origin.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", origin.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Requests 0.15 s apart for longer than the timeout: the connection is never idle for long.
        for _ in range(6):
            writer.write(b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n")
            (_, _, body), *_ = await read_responses(reader, 1)
            assert body == PLAYLIST
            await asyncio.sleep(0.15)
        assert loop.time() - started > 0.8
        idle_from = loop.time()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server once idle
        assert loop.time() - idle_from > 0.2
        writer.close()
    finally:
        await origin.stop()


async def test_a_slow_answer_is_not_cut_by_the_keep_alive_timer(hls_root: Path) -> None:
    origin = Origin(hls_root, fast=True, keep_alive_timeout=0.1)
    await origin.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", origin.port)
        writer.write(b"GET /hls/show/index.m3u8 HTTP/1.1\r\nHost: o\r\n\r\n")
        await read_responses(reader, 1)  # the timer is armed
        writer.write(b"GET /api/slow HTTP/1.1\r\nHost: o\r\n\r\n")  # answered after 0.2 s
        (_, _, body), *_ = await read_responses(reader, 1)
        assert body == b'{"answer":"slow"}'
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await origin.stop()


async def test_a_stop_cancels_a_request_that_never_ends(hls_root: Path) -> None:
    """A request still running ``http_shutdown_timeout`` after the stop is cancelled: the server stops."""
    origin = Origin(hls_root, fast=True, shutdown_timeout=1)
    await origin.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", origin.port)
    writer.write(b"GET /api/forever HTTP/1.1\r\nHost: o\r\n\r\n")
    await asyncio.wait_for(origin.forever_started.wait(), 5)
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    await asyncio.wait_for(origin.stop(), 5)
    assert 1 <= loop.time() - stopping < 4
    assert not (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
