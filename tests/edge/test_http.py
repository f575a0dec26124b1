"""The edge's own HTTP/1.1 server: parsing, keep-alive, pipelining, limits, and parity with the ASGI app.

Most tests talk to a real :class:`EdgeHttpServer` over loopback sockets, with a real origin (uvicorn)
behind it.  The parser tests also drive the protocol object directly with a recording transport, so that
bytes can be fed exactly one at a time and random bytes can be thrown at it by hypothesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from streamit.discovery import StreamLocation
from streamit.edge import create_edge_app
from streamit.edge.http import MAX_QUEUED, EdgeHttpProtocol, EdgeHttpServer
from streamit.edge.proxy import EdgeProxy, create_edge_proxy
from streamit.servers.http import MAX_REQUEST_HEAD
from tests.edge.test_proxy import (
    PLAYLIST,
    PLAYLIST_PATH,
    SEGMENT,
    SEGMENT_PATH,
    CountingOrigin,
    Registry,
    located,
    origin_app,
    serving,
)

BIG_PATH = "/hls/show/seg-000002.ts"
BIG = bytes(range(256)) * 4096  # 1 MiB


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = field(repr=False)


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """One HTTP/1.1 response: Content-Length, chunked or close-delimited body."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.lower()] = value.strip()
    if head or status in (204, 304):
        return Response(status, headers, b"", raw)
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    elif headers.get("transfer-encoding") == "chunked":
        chunks = []
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 10))[:-2], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), 10)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await asyncio.wait_for(reader.read(), 10)
    return Response(status, headers, body, raw)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 10) -> bool:
    """Whether the server closes the connection (EOF) within ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionResetError:
        return True


def get(path: str, *, method: str = "GET", version: str = "1.1", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: edge\r\n{extra}\r\n".encode()


@dataclass
class Edge:
    server: EdgeHttpServer
    proxy: EdgeProxy
    origin: CountingOrigin
    registry: Registry
    url: str

    @property
    def port(self) -> int:
        return self.server.port

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def exchange(self, data: bytes, *, head: bool = False) -> Response:
        async with self.connect() as (reader, writer):
            writer.write(data)
            return await read_response(reader, head=head)


EdgeFactory = Callable[..., Awaitable[Edge]]


@pytest.fixture
async def edge_factory(tmp_path: Path) -> AsyncIterator[EdgeFactory]:
    """Starts edges (each with its own proxy) in front of one real origin holding ``show``."""
    origin = origin_app(tmp_path / "origin", segment_delay=0.1)
    (tmp_path / "origin" / "show" / "seg-000002.ts").write_bytes(BIG)
    servers: list[EdgeHttpServer] = []
    async with serving(origin) as origin_url, httpx.AsyncClient() as upstream:
        registry = Registry()
        registry.streams["show"] = located("show", origin_url)

        async def start(**options: Any) -> Edge:
            proxy_options = {k: options.pop(k) for k in ("max_object_bytes",) if k in options}
            proxy = create_edge_proxy(registry, client=upstream, **proxy_options)
            server = EdgeHttpServer(proxy, **options)
            await server.start("127.0.0.1", 0)
            servers.append(server)
            return Edge(server, proxy, origin, registry, origin_url)

        yield start
        for server in servers:
            await server.stop(grace=2)


@pytest.fixture
async def edge(edge_factory: EdgeFactory) -> Edge:
    return await edge_factory()


# Parity with the ASGI application the in-process proxy tests use


async def test_answers_carry_the_same_headers_as_the_asgi_app(edge: Edge) -> None:
    app = create_edge_app(edge.registry, client=edge.proxy.client)
    asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
    ignored = {"date", "server"}
    for path in (PLAYLIST_PATH, SEGMENT_PATH, "/hls/nope/index.m3u8", "/hls/show/seg-000099.ts"):
        for expected in ("MISS", "HIT"):
            ours = await edge.exchange(get(path))
            theirs = await asgi.get(path)
            assert ours.status == theirs.status_code
            assert ours.body == theirs.content
            if ours.status == 200:
                assert ours.headers["x-cache"] == expected
            theirs_headers = {k: v for k, v in theirs.headers.items() if k not in ignored}
            assert {k: v for k, v in ours.headers.items() if k not in ignored} == theirs_headers
            assert "date" in ours.headers
    await asgi.aclose()


async def test_a_hit_carries_cache_headers_cors_and_length(edge: Edge) -> None:
    await edge.exchange(get(SEGMENT_PATH))
    hit = await edge.exchange(get(SEGMENT_PATH))
    assert hit.status == 200 and hit.body == SEGMENT
    assert hit.headers["x-cache"] == "HIT" and hit.headers["age"] == "0"
    assert hit.headers["via"] == "1.1 streamit-edge"
    assert hit.headers["content-type"] == "video/mp2t"
    assert "immutable" in hit.headers["cache-control"]
    assert hit.headers["access-control-allow-origin"] == "*"
    assert hit.headers["content-length"] == str(len(SEGMENT))
    assert edge.origin.count(SEGMENT_PATH) == 1


# Keep-alive, pipelining, HEAD, HTTP/1.0


async def test_keep_alive_serves_many_requests_on_one_connection(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        for path, body in ((PLAYLIST_PATH, PLAYLIST), (PLAYLIST_PATH, PLAYLIST), (SEGMENT_PATH, SEGMENT)):
            writer.write(get(path))
            response = await read_response(reader)
            assert response.status == 200 and response.body == body
            assert "connection" not in response.headers
        writer.write(get("/healthz", extra="Connection: close\r\n"))
        last = await read_response(reader)
        assert last.status == 200 and last.headers["connection"] == "close"
        assert await closed_by_peer(reader)


async def test_pipelined_requests_are_answered_in_order(edge: Edge) -> None:
    await edge.exchange(get(PLAYLIST_PATH))  # the playlist is a hit from now on
    paths = [SEGMENT_PATH, PLAYLIST_PATH, "/healthz", "/nowhere", "/hls/show/seg-000001.ts", PLAYLIST_PATH]
    async with edge.connect() as (reader, writer):
        # The slow miss comes first: the hits behind it must wait for it.
        writer.write(b"".join(get(path) for path in paths))
        responses = [await read_response(reader) for _ in paths]
    assert [r.status for r in responses] == [200, 200, 200, 404, 200, 200]
    assert responses[0].body == SEGMENT and responses[0].headers["x-cache"] == "MISS"
    assert responses[1].body == PLAYLIST and responses[1].headers["x-cache"] == "HIT"
    assert responses[2].body == b'{"status":"ok"}'
    assert responses[4].headers["x-cache"] == "MISS" and responses[5].headers["x-cache"] == "HIT"


async def test_head_gives_the_length_without_a_body(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        for expected in ("MISS", "HIT"):
            writer.write(get(SEGMENT_PATH, method="HEAD"))
            head = await read_response(reader, head=True)
            assert head.status == 200 and head.headers["x-cache"] == expected
            assert head.headers["content-length"] == str(len(SEGMENT))
        # No body was sent: the next answer starts right after the last head.
        writer.write(get("/healthz"))
        assert (await read_response(reader)).body == b'{"status":"ok"}'
    assert edge.origin.count(SEGMENT_PATH) == 1


async def test_http10_closes_unless_asked_to_keep_alive(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        writer.write(get(PLAYLIST_PATH, version="1.0"))
        response = await read_response(reader)
        assert response.status == 200 and response.body == PLAYLIST
        assert response.headers["connection"] == "close"
        assert await closed_by_peer(reader)
    async with edge.connect() as (reader, writer):
        for _ in range(2):
            writer.write(get(PLAYLIST_PATH, version="1.0", extra="Connection: keep-alive\r\n"))
            response = await read_response(reader)
            assert response.status == 200 and response.headers["connection"] == "keep-alive"


async def test_bodies_too_large_to_buffer_are_streamed(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_object_bytes=64 * 1024)
    async with edge.connect() as (reader, writer):
        for _ in range(2):
            writer.write(get(BIG_PATH))
            response = await read_response(reader)
            assert response.status == 200 and response.body == BIG
            assert response.headers["x-cache"] == "MISS"
            assert response.headers["content-length"] == str(len(BIG))
    async with edge.connect() as (reader, writer):
        writer.write(get(BIG_PATH, version="1.0"))
        response = await read_response(reader)
        assert response.body == BIG and await closed_by_peer(reader)
    assert len(edge.proxy.cache) == 0


async def test_bodies_of_unknown_length_are_relayed_chunked(edge_factory: EdgeFactory) -> None:
    async def chunky_origin(scope: Scope, receive: Receive, send: Send) -> None:
        """An origin that streams segments without a Content-Length (chunked on the wire)."""
        assert scope["type"] == "http"

        async def pieces() -> AsyncIterator[bytes]:
            for offset in range(0, len(BIG), 100_000):
                yield BIG[offset : offset + 100_000]

        await StreamingResponse(pieces(), media_type="video/mp2t")(scope, receive, send)

    edge = await edge_factory(max_object_bytes=64 * 1024)
    async with serving(chunky_origin) as url:
        edge.registry.streams["chunky"] = located("chunky", url)
        async with edge.connect() as (reader, writer):
            for _ in range(2):
                writer.write(get("/hls/chunky/seg-1.ts"))
                response = await read_response(reader)
                assert response.status == 200 and response.body == BIG
                assert response.headers["transfer-encoding"] == "chunked"
                assert "content-length" not in response.headers
        async with edge.connect() as (reader, writer):
            # HTTP/1.0 has no chunked coding: the body ends with the connection, keep-alive or not.
            writer.write(get("/hls/chunky/seg-1.ts", version="1.0", extra="Connection: keep-alive\r\n"))
            response = await read_response(reader)
            assert response.body == BIG and response.headers["connection"] == "close"
            assert "transfer-encoding" not in response.headers


async def test_a_request_body_is_skipped(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        writer.write(get("/healthz", extra="Content-Length: 5\r\n") + b"hello" + get("/healthz"))
        for _ in range(2):
            assert (await read_response(reader)).status == 200


# Routing


@pytest.mark.parametrize(
    ("request_bytes", "status", "allow"),
    [
        (get("/nowhere"), 404, None),
        (get("/hls/show"), 404, None),
        (get("/hls/show/a/b.ts"), 404, None),
        (get("/hls/show/..%2Fsecret.ts"), 404, None),
        (get("/hls/show/secret.txt"), 404, None),
        (get(PLAYLIST_PATH, method="POST", extra="Content-Length: 0\r\n"), 405, "GET, HEAD, OPTIONS"),
        (get(PLAYLIST_PATH, method="DELETE"), 405, "GET, HEAD, OPTIONS"),
        (get("/healthz", method="PUT", extra="Content-Length: 0\r\n"), 405, "GET, HEAD"),
        (get("/metrics", method="OPTIONS"), 405, "GET, HEAD"),
        (get("/nowhere", method="POST", extra="Content-Length: 0\r\n"), 404, None),
    ],
)
async def test_other_paths_and_methods(
    edge: Edge, request_bytes: bytes, status: int, allow: str | None
) -> None:
    response = await edge.exchange(request_bytes)
    assert response.status == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("allow") == allow
    assert edge.registry.lookups == 0 and edge.origin.paths == []


async def test_preflight_health_and_metrics(edge: Edge) -> None:
    preflight = await edge.exchange(get(PLAYLIST_PATH, method="OPTIONS"))
    assert preflight.status == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert (await edge.exchange(get("/healthz"))).body == b'{"status":"ok"}'
    await edge.exchange(get(SEGMENT_PATH))
    await edge.exchange(get(SEGMENT_PATH))
    await edge.exchange(get(SEGMENT_PATH, method="HEAD"), head=True)
    metrics = (await edge.exchange(get("/metrics"))).body.decode()
    assert 'streamit_edge_requests_total{cache="HIT"} 2.0' in metrics
    assert 'streamit_edge_requests_total{cache="MISS"} 1.0' in metrics
    assert 'streamit_edge_upstream_fetches_total{kind="segment"} 1.0' in metrics


async def test_absolute_form_targets_are_understood(edge: Edge) -> None:
    response = await edge.exchange(get(f"http://edge{PLAYLIST_PATH}?x=1"))
    assert response.status == 200 and response.body == PLAYLIST


# Limits


async def test_a_head_over_the_cap_is_431_whole_or_trickled(edge: Edge) -> None:
    big_header = f"X-Filler: {'a' * MAX_REQUEST_HEAD}\r\n"
    response = await edge.exchange(get("/healthz", extra=big_header))
    assert response.status == 431 and response.headers["connection"] == "close"
    async with edge.connect() as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Filler: ")
        for _ in range(MAX_REQUEST_HEAD // 1024 + 2):
            writer.write(b"a" * 1024)
            await writer.drain()
        response = await read_response(reader)
        assert response.status == 431 and await closed_by_peer(reader)


async def test_a_head_just_under_the_cap_is_served(edge: Edge) -> None:
    base = len(get("/healthz", extra="X-Filler: \r\n"))
    response = await edge.exchange(get("/healthz", extra=f"X-Filler: {'a' * (MAX_REQUEST_HEAD - base)}\r\n"))
    assert response.status == 200


async def test_malformed_requests_are_400_and_closed(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        writer.write(get(PLAYLIST_PATH) + b"NOT HTTP AT ALL\r\n\r\n")
        assert (await read_response(reader)).status == 200  # answered before the bad one
        bad = await read_response(reader)
        assert bad.status == 400 and bad.headers["connection"] == "close"
        assert await closed_by_peer(reader)


async def test_an_upgrade_is_answered_then_closed(edge: Edge) -> None:
    async with edge.connect() as (reader, writer):
        writer.write(get("/healthz", extra="Connection: Upgrade\r\nUpgrade: websocket\r\n") + b"\x00\x01")
        assert (await read_response(reader)).status == 200
        assert await closed_by_peer(reader)


async def test_a_slow_head_is_cut_off(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(head_timeout=1.0, keepalive_timeout=30.0)
    async with edge.connect() as (reader, writer):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with contextlib.suppress(ConnectionError):
            for byte in get("/healthz", extra="X-Slow: " + "a" * 100 + "\r\n"):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
                if reader.at_eof():
                    break
        assert await closed_by_peer(reader)
        assert loop.time() - started < 8


async def test_an_idle_connection_is_closed(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(keepalive_timeout=1.0)
    async with edge.connect() as (reader, writer):
        writer.write(get("/healthz"))
        assert (await read_response(reader)).status == 200
        assert await closed_by_peer(reader, timeout=5)
    assert await wait_for(lambda: not edge.server.connections)


async def test_connections_over_the_cap_get_503(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_connections=2)
    async with edge.connect() as (r1, w1), edge.connect() as (r2, w2):
        for reader, writer in ((r1, w1), (r2, w2)):
            writer.write(get("/healthz"))
            assert (await read_response(reader)).status == 200
        async with edge.connect() as (r3, _):
            refused = await read_response(r3)
            assert refused.status == 503 and await closed_by_peer(r3)
        w1.close()
        assert await wait_for(lambda: len(edge.server.connections) == 1)
        assert (await edge.exchange(get("/healthz"))).status == 200
        w2.write(get("/healthz"))
        assert (await read_response(r2)).status == 200


async def test_a_viewer_that_does_not_read_is_not_buffered_for(edge: Edge) -> None:
    await edge.exchange(get(BIG_PATH))  # cached: every request below is a 1 MiB hit
    requests = 400
    async with edge.connect() as (reader, writer):
        writer.write(get(BIG_PATH) * requests)
        await asyncio.sleep(1.0)
        (connection,) = edge.server.connections
        assert connection.transport is not None
        # Reading stopped once the write buffer filled: at most one parsed chunk of requests is held.
        assert connection.reading_paused
        assert connection.transport.get_write_buffer_size() < 64 * len(BIG)
        assert len(connection.queue) < requests
        for _ in range(requests):
            response = await read_response(reader)
            assert response.status == 200 and len(response.body) == len(BIG)
    assert edge.origin.count(BIG_PATH) == 1


async def test_a_failing_connection_does_not_affect_others(edge: Edge) -> None:
    class Broken:
        async def lookup(self, slug: str) -> StreamLocation | None:
            raise RuntimeError("a bug")

    async with edge.connect() as (reader, writer):
        writer.write(get("/healthz"))
        assert (await read_response(reader)).status == 200
        edge.proxy.locations.resolver = Broken()
        edge.proxy.locations.forget("show")
        logger = logging.getLogger("streamit.edge.http")
        logger.disabled = True  # the traceback is expected
        try:
            failed = await edge.exchange(get("/hls/show/index.m3u8"))
        finally:
            logger.disabled = False
        assert failed.status == 500 and failed.headers["connection"] == "close"
        writer.write(get("/healthz"))
        assert (await read_response(reader)).status == 200


async def test_stop_lets_answers_under_way_finish(edge: Edge) -> None:
    async with edge.connect() as (idle_reader, _), edge.connect() as (reader, writer):
        writer.write(get(SEGMENT_PATH))  # a 0.1 s miss
        await asyncio.sleep(0.02)
        await edge.server.stop(grace=5)
        response = await read_response(reader)
        assert response.status == 200 and response.body == SEGMENT
        assert response.headers["connection"] == "close"
        assert await closed_by_peer(reader) and await closed_by_peer(idle_reader)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", edge.port)


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
    return True


# The protocol object driven directly: exact byte boundaries, and random bytes


class RecordingTransport(asyncio.Transport):
    """Collects what the protocol writes; closing is recorded, not performed."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.writes = 0
        self.closing = False
        self.paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        self.written.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.writes += 1
        self.written.append(b"".join(list_of_data))

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0

    @property
    def output(self) -> bytes:
        return b"".join(self.written)


class StaticCache:
    """A resolver knowing ``show`` at a closed origin: only cache hits and errors can be answered."""

    async def lookup(self, slug: str) -> StreamLocation | None:
        return located("show", "http://127.0.0.1:9") if slug == "show" else None


@contextlib.asynccontextmanager
async def direct_protocol() -> AsyncIterator[tuple[EdgeHttpProtocol, RecordingTransport, EdgeProxy]]:
    async with httpx.AsyncClient() as client:
        proxy = create_edge_proxy(StaticCache(), client=client)
        location = await proxy.locations.lookup("show")
        assert location is not None
        from streamit.edge.cache import CachedObject
        from streamit.edge.proxy import cache_key

        now = proxy.clock()
        headers = (("content-type", "application/vnd.apple.mpegurl"), ("cache-control", "max-age=1"))
        proxy.cache.put(
            cache_key(location, "index.m3u8"),
            CachedObject(status=200, headers=headers, body=PLAYLIST, stored_at=now, expires_at=now + 3600),
        )
        server = EdgeHttpServer(proxy)
        protocol = EdgeHttpProtocol(server)
        transport = RecordingTransport()
        protocol.connection_made(transport)
        try:
            yield protocol, transport, proxy
        finally:
            if not protocol.closed:
                protocol.connection_lost(None)
            if protocol.worker is not None:
                await protocol.worker


async def settle(protocol: EdgeHttpProtocol) -> None:
    async with asyncio.timeout(10):
        while protocol.worker is not None:
            await asyncio.sleep(0.001)


def split_responses(output: bytes) -> list[bytes]:
    """Status lines of the responses in ``output`` (bodies here never contain ``HTTP/1.1 ``)."""
    return re.findall(rb"HTTP/1\.1 [0-9]{3} [^\r]*", output)


@pytest.mark.parametrize("step", [1, 2, 7, 10_000])
async def test_requests_parse_whole_or_one_byte_at_a_time(step: int) -> None:
    requests = (
        get(PLAYLIST_PATH)
        + get(PLAYLIST_PATH, method="HEAD")
        + get("/healthz", extra="Content-Length: 3\r\n")
        + b"abc"
        + b"GET /hls/show/index.m3u8?_x=1 HTTP/1.1\r\nHost: edge\r\nAccept: */*\r\nX-Long: "
        + b"b" * 300
        + b"\r\n\r\n"
    )
    trailing = b"GET /healthz HTTP/1.1\r\nHost: ed"  # the start of a request still on its way
    async with direct_protocol() as (protocol, transport, _):
        data = requests + trailing
        for offset in range(0, len(data), step):
            protocol.data_received(data[offset : offset + step])
        await settle(protocol)
        assert split_responses(transport.output) == [b"HTTP/1.1 200 OK"] * 4
        assert transport.output.count(PLAYLIST) == 2  # two GETs; the HEAD answer has none
        assert not transport.closing
        protocol.data_received(b"ge\r\n\r\n")
        assert split_responses(transport.output)[-1] == b"HTTP/1.1 200 OK"


async def test_a_hit_is_answered_with_one_write_before_data_received_returns() -> None:
    async with direct_protocol() as (protocol, transport, _):
        protocol.data_received(get(PLAYLIST_PATH))
        assert transport.writes == 1 and protocol.worker is None
        head, _, body = transport.output.partition(b"\r\n\r\n")
        assert body == PLAYLIST and b"\r\nx-cache: HIT\r\n" in head


async def test_answers_after_a_close_request_are_not_given() -> None:
    async with direct_protocol() as (protocol, transport, _):
        protocol.data_received(get(PLAYLIST_PATH, extra="Connection: close\r\n") + get(PLAYLIST_PATH))
        assert len(split_responses(transport.output)) == 1 and transport.closing


async def test_a_long_pipeline_stops_reading_until_answered() -> None:
    async with direct_protocol() as (protocol, transport, _):
        # Unknown streams need the (async) registry: each waits behind the previous one.
        protocol.data_received(get("/hls/other/index.m3u8") * (MAX_QUEUED + 4))
        assert transport.paused and len(protocol.queue) == MAX_QUEUED + 4
        await settle(protocol)
        assert not transport.paused
        assert split_responses(transport.output) == [b"HTTP/1.1 404 Not Found"] * (MAX_QUEUED + 4)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", get(PLAYLIST_PATH), b"GET /hls/show/index.m3u8 HTTP/1.1\r\n"]),
    noise=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=20),
)
def test_random_bytes_never_raise_out_of_the_protocol(prefix: bytes, noise: bytes, cuts: list[int]) -> None:
    async def run() -> None:
        errors: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = errors.append  # type: ignore[method-assign]
        logger = logging.getLogger("streamit.edge.http")
        logger.addHandler(handler)
        try:
            async with direct_protocol() as (protocol, transport, _):
                data = prefix + noise
                offset = 0
                for cut in [*cuts, len(data)]:
                    protocol.data_received(data[offset : offset + cut])
                    offset += cut
                await settle(protocol)
                for status in split_responses(transport.output):
                    assert int(status.split(b" ")[1]) in (200, 204, 400, 404, 405, 431, 502)
        finally:
            logger.removeHandler(handler)
        assert [r for r in errors if r.levelno >= logging.ERROR] == []

    asyncio.run(run())


async def test_a_failure_while_answering_inline_is_500_for_that_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_hit(slug: str, name: str, query: bytes = b"") -> None:
        raise RuntimeError("a bug")

    async with direct_protocol() as (protocol, transport, proxy), direct_protocol() as (other, other_out, _):
        proxy.hit = broken_hit  # type: ignore[method-assign,assignment]
        with caplog.at_level(logging.ERROR, logger="streamit.edge.http"):
            protocol.data_received(get(PLAYLIST_PATH) + get(PLAYLIST_PATH))
        assert split_responses(transport.output) == [b"HTTP/1.1 500 Internal Server Error"]
        assert transport.closing and "a bug" in caplog.text
        other.data_received(get(PLAYLIST_PATH))
        assert split_responses(other_out.output) == [b"HTTP/1.1 200 OK"]
