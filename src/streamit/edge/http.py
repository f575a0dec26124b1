"""The edge's HTTP/1.1 server: asyncio protocol + httptools, cache hits answered inside ``data_received``.

Profiling the edge under uvicorn + Starlette showed a cache hit spending most of its time in the per-request
ASGI machinery (two socket writes per response, scope and message dicts, middleware layers), not in the
cache.  Here a hit is answered synchronously, while the request bytes are parsed, with one
``transport.write`` of a response whose header block was encoded when the object was cached.  Everything
else (misses, held LL-HLS requests, errors, ``/healthz``, ``/metrics``, preflights) is answered by
:meth:`EdgeProxy.serve` or inline, and written by the same connection in request order.

Connection rules, all bounded:

* keep-alive by default in HTTP/1.1, on request in HTTP/1.0 (RFC 9112 §9.3); ``Connection: close`` honoured;
  pipelined requests are answered in order (RFC 9112 §9.3.2), reading pauses while too many wait;
* a request head (request line + headers) is at most :data:`MAX_REQUEST_HEAD` bytes, else 431 and close;
* a request must arrive whole within ``head_timeout`` of its first byte (slowloris), and an idle
  keep-alive connection is closed after ``keepalive_timeout``; deadlines are swept once a second;
* at most ``max_connections`` connections, any further one is answered 503 and closed;
* when the socket's write buffer passes its high-water mark, reading stops and streamed bodies wait for it
  to drain (for at most ``send_timeout``), so a slow viewer never makes the edge buffer without bound;
* a failure in one connection is logged and closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final, NamedTuple, cast
from urllib.parse import unquote

import httptools
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response, StreamingResponse

from streamit.edge.cache import CachedObject
from streamit.edge.proxy import EdgeProxy
from streamit.origin.routes import MEDIA_CORS
from streamit.servers.http import MAX_REQUEST_HEAD

log = logging.getLogger(__name__)

KEEPALIVE_TIMEOUT = 5.0
"""Seconds an idle keep-alive connection stays open (uvicorn's default, which the edge had before)."""
HEAD_TIMEOUT = 10.0
"""Seconds a request may take to arrive, from its first byte to its last."""
SEND_TIMEOUT = 30.0
"""Seconds a response may wait for the viewer to read what was already sent."""
MAX_QUEUED = 16
"""Pipelined requests waiting for an answer before the connection stops reading."""
MAX_REMEMBERED_TARGETS = 4096
"""HLS request targets whose parse is remembered (all forgotten at once when full)."""
MAX_REMEMBERED_TARGET = 256
"""Longer targets are parsed every time, so remembered ones hold at most about a MiB."""
SMALL_BODY = 64 * 1024
"""Bodies up to this size are copied behind their head and sent in one write; larger ones use writelines."""

_CRLF: Final = b"\r\n"
_HIT_TAIL: Final = b"x-cache: HIT\r\nage: "
_CLOSE: Final = b"connection: close\r\n"
_KEEP_ALIVE: Final = b"connection: keep-alive\r\n"
_CHUNKED: Final = b"transfer-encoding: chunked\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"
# Framing is ours: a handler's own values for these would contradict what this server sends.
_FRAMING_HEADERS: Final = frozenset({b"connection", b"transfer-encoding", b"keep-alive", b"date"})
_HLS_METHODS: Final = b"GET, HEAD, OPTIONS"
_OPS_METHODS: Final = b"GET, HEAD"


class HeadTooLarge(Exception):
    """Raised from a parser callback when a request head passes :data:`MAX_REQUEST_HEAD`: parsing stops."""


class ConnectionGone(Exception):
    """The viewer left, or did not read, while a response was being sent."""


class Request(NamedTuple):
    """What the server keeps of one parsed request: no headers, only what the answer depends on."""

    method: bytes
    target: bytes
    keep_alive: bool
    http10: bool

    @property
    def head(self) -> bool:
        """Whether this is a ``HEAD`` request (the answer has no body)."""
        return self.method == b"HEAD"


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """A request only :meth:`EdgeProxy.serve` can answer."""

    slug: str
    name: str
    query: bytes


_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, encoded once per status."""
    line = _status_lines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        _status_lines[status] = line
    return line


def header_lines(raw_headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes:
    """A response's headers as HTTP/1.1 lines, without the framing headers this server sets itself."""
    return b"".join(
        name + b": " + value + _CRLF for name, value in raw_headers if name.lower() not in _FRAMING_HEADERS
    )


def simple_response(
    status: int, body: bytes, content_type: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, bytes, bytes]:
    """Status, encoded header lines (with content-type and -length) and body of a small inline answer."""
    headers = ((b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra)
    return status, header_lines(headers), body


def problem(
    status: int, detail: str, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, bytes, bytes]:
    """An RFC 9457 problem+json answer of this server's own."""
    title = HTTPStatus(status).phrase
    body = json.dumps({"title": title, "status": status, "detail": detail}).encode()
    return simple_response(status, body, b"application/problem+json", extra)


_CORS: Final = tuple((name.lower().encode(), value.encode()) for name, value in MEDIA_CORS.items())
_PREFLIGHT: Final = (204, header_lines(_CORS), b"")
_HEALTHY: Final = simple_response(200, b'{"status":"ok"}', b"application/json")
_NOT_FOUND: Final = problem(404, "no such resource")
_HLS_NOT_ALLOWED: Final = problem(405, "method not allowed", ((b"allow", _HLS_METHODS),))
_OPS_NOT_ALLOWED: Final = problem(405, "method not allowed", ((b"allow", _OPS_METHODS),))
_BAD_TARGET: Final = problem(400, "malformed request target")


def _final(status: int, detail: str) -> bytes:
    """A whole response sent just before the connection is closed."""
    code, headers, body = problem(status, detail)
    return status_line(code) + headers + _CLOSE + _CRLF + body


BAD_REQUEST: Final = _final(400, "malformed HTTP request")
HEAD_TOO_LARGE: Final = _final(431, "request header fields too large")
OVERLOADED: Final = _final(503, "too many connections")
INTERNAL_ERROR: Final = _final(500, "the edge failed to answer")


class DateHeader:
    """The ``date`` header line (RFC 9110 §6.6.1), formatted at most once per second."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        """``date: <IMF-fixdate>\\r\\n`` for the current second."""
        second = int(self.clock())
        if second != self._second:
            self._second = second
            self._line = b"date: " + formatdate(second, usegmt=True).encode() + _CRLF
        return self._line


class EdgeHttpServer:
    """Serves an :class:`EdgeProxy` over HTTP/1.1; see the module docstring for the rules it keeps."""

    def __init__(
        self,
        proxy: EdgeProxy,
        *,
        max_connections: int = 10_000,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.proxy = proxy
        self.max_connections = max_connections
        self.keepalive_timeout = keepalive_timeout
        self.head_timeout = head_timeout
        self.send_timeout = send_timeout
        self.date = DateHeader()
        self.connections: set[EdgeHttpProtocol] = set()
        self.hls_targets: dict[bytes, ProxyRequest] = {}
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._emptied = asyncio.Event()

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host``:``port`` (port 0: any free port, see :attr:`port`); raises :class:`OSError`."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: EdgeHttpProtocol(self), host, port, backlog=4096)
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep())

    @property
    def port(self) -> int:
        """The port listened on (or last listened on, once stopped)."""
        if self._port is None:
            raise RuntimeError("the server was not started")
        return self._port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle connections, let answers under way finish for ``grace`` seconds.

        Connections still busy after ``grace`` are aborted and their pending work cancelled.
        """
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        if self.connections:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._emptied.wait()
        workers = [c.worker for c in self.connections if c.worker is not None]
        for connection in list(self.connections):
            connection.abort()
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(BaseException):
                await worker
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            await self._server.wait_closed()

    def remember_target(self, target: bytes, request: ProxyRequest) -> None:
        """Remember how an HLS request target parses: viewers ask for the same few URLs over and over."""
        if len(target) > MAX_REMEMBERED_TARGET:
            return
        if len(self.hls_targets) >= MAX_REMEMBERED_TARGETS:
            self.hls_targets.clear()
        self.hls_targets[target] = request

    def admit(self, connection: EdgeHttpProtocol) -> bool:
        """Count a new connection in, unless the server is full or stopping."""
        if self.stopping or len(self.connections) >= self.max_connections:
            return False
        self.connections.add(connection)
        return True

    def release(self, connection: EdgeHttpProtocol) -> None:
        """Forget a closed connection."""
        self.connections.discard(connection)
        if not self.connections:
            self._emptied.set()

    async def _sweep(self) -> None:
        # One pass a second over every connection's deadline: cheaper than a timer per request.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for connection in list(self.connections):
                if connection.deadline <= now:
                    connection.expire()


class EdgeHttpProtocol(asyncio.Protocol):
    """One viewer connection; httptools calls the ``on_*`` methods while :meth:`data_received` parses."""

    def __init__(self, server: EdgeHttpServer) -> None:
        self.server = server
        self.proxy = server.proxy
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.deadline = math.inf
        self.closed = False
        self.done = False  # no further request is read: the last one asked to close, or parsing failed
        self.failure: bytes | None = None  # sent once the queued requests are answered, then close
        self.write_paused = False
        self.reading_paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self._url: list[bytes] = []
        self._in_head = True
        self._in_message = False
        self._received = 0
        self._parsed = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection or answer 503 and close it."""
        self.transport = cast(asyncio.Transport, transport)
        if not self.server.admit(self):
            self.closed = True
            self.transport.write(OVERLOADED)
            self.transport.close()
            return
        self.deadline = self.loop.time() + self.server.keepalive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake a response waiting to write; forget the connection."""
        self.closed = True
        self.writable.set()
        self.server.release(self)

    def pause_writing(self) -> None:
        """The write buffer is above its high-water mark: stop reading requests until it drains."""
        self.write_paused = True
        self.writable.clear()
        self._pause_reading()

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark."""
        self.write_paused = False
        self.writable.set()
        if self.worker is None:
            self._resume_reading()

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; every complete request is answered or queued before this returns."""
        if self.done or self.closed:
            return
        if self._in_head:
            self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # A protocol switch (RFC 9110 §7.8) or CONNECT: not offered; answer what was asked, then close.
            self._finish()
        except httptools.HttpParserCallbackError as exc:
            # httptools reports an exception raised by a callback as a parser error, the original as context.
            if isinstance(exc.__context__, HeadTooLarge):
                self._fail(HEAD_TOO_LARGE)
            else:
                log.error("edge connection failed while answering", exc_info=exc.__context__)
                self._fail(INTERNAL_ERROR)
        except httptools.HttpParserError:
            self._fail(BAD_REQUEST)
        except Exception:
            log.exception("edge connection failed while parsing")
            self.abort()
        else:
            # Checked after parsing: bytes of a body that arrived with the end of the head do not count.
            if self._in_head and self._received > MAX_REQUEST_HEAD and not self.done:
                self._fail(HEAD_TOO_LARGE)

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A request starts: it must be whole within the head timeout."""
        self._url.clear()
        self._in_head = True
        self._in_message = True
        self._parsed = 0
        self.deadline = self.loop.time() + self.server.head_timeout

    def on_url(self, url: bytes) -> None:
        """A piece of the request target (httptools may split it)."""
        self._count(len(url))
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header: only its size matters, httptools itself tracks the framing ones."""
        # _count inlined: this runs for every header of every request.
        self._parsed += len(name) + len(value) + 4
        if self._parsed > MAX_REQUEST_HEAD:
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        """The head is whole; what follows is a body, which is not read into memory."""
        self._in_head = False

    def on_message_complete(self) -> None:
        """Answer the request now if nothing is ahead of it and the answer needs no waiting, else queue it."""
        self._in_head = True
        self._in_message = False
        self._received = 0
        self._parsed = 0
        if self.done or self.closed:
            return
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        request = Request(
            parser.get_method(), b"".join(self._url), keep_alive, parser.get_http_version() == "1.0"
        )
        if not keep_alive:
            self.done = True
        self.deadline = math.inf
        if self.worker is None and not self.write_paused and self._answer_now(request) is None:
            self._answered(request)
            return
        self.queue.append(request)
        if self.worker is None:
            self.worker = self.loop.create_task(self._work())
        if len(self.queue) >= MAX_QUEUED:
            self._pause_reading()

    # answering

    def _answer_now(self, request: Request) -> ProxyRequest | None:
        """Write the answer to ``request`` if it needs no waiting; else what to ask the proxy."""
        method = request.method
        if method == b"GET" or method == b"HEAD":
            known = self.server.hls_targets.get(request.target)
            if known is not None:
                cached = self.proxy.hit(known.slug, known.name, known.query)
                if cached is None:
                    return known
                self._write_hit(request, cached)
                return None
        return self._route(request)

    def _route(self, request: Request) -> ProxyRequest | None:
        """:meth:`_answer_now` for a target not seen lately: parse and route it."""
        target = request.target
        if target[:1] == b"/" and b"#" not in target:
            raw_path, _, query = target.partition(b"?")
        else:
            try:
                url = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                self._write_simple(request, _BAD_TARGET)
                return None
            raw_path, query = url.path or b"/", url.query or b""
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        method = request.method
        if path.startswith("/hls/"):
            slug, slash, name = path[5:].partition("/")
            shaped = slash == "/" and "/" not in name
            if method == b"GET" or method == b"HEAD":
                if not shaped:
                    self._write_simple(request, _NOT_FOUND)
                    return None
                known = ProxyRequest(slug, name, query)
                self.server.remember_target(target, known)
                cached = self.proxy.hit(slug, name, query)
                if cached is None:
                    return known
                self._write_hit(request, cached)
                return None
            if not (shaped and slug and name):
                self._write_simple(request, _NOT_FOUND)
            elif method == b"OPTIONS":
                self._write_simple(request, _PREFLIGHT)
            else:
                self._write_simple(request, _HLS_NOT_ALLOWED)
            return None
        if path == "/healthz" or path == "/metrics":
            if method != b"GET" and method != b"HEAD":
                self._write_simple(request, _OPS_NOT_ALLOWED)
            elif path == "/healthz":
                self._write_simple(request, _HEALTHY)
            else:
                body = generate_latest(self.proxy.metrics.registry)
                self._write_simple(request, simple_response(200, body, CONTENT_TYPE_LATEST.encode()))
            return None
        self._write_simple(request, _NOT_FOUND)
        return None

    def _connection_line(self, request: Request) -> bytes:
        if not request.keep_alive or self.server.stopping:
            return _CLOSE
        return _KEEP_ALIVE if request.http10 else b""

    def _write_hit(self, request: Request, cached: CachedObject) -> None:
        age = str(cached.age(self.proxy.clock())).encode()
        head = b"".join(
            (
                status_line(cached.status),
                cached.header_block,
                _HIT_TAIL,
                age,
                _CRLF,
                self.server.date.line(),
                self._connection_line(request),
                _CRLF,
            )
        )
        self._write(head, b"" if request.head else cached.body)

    def _write_simple(self, request: Request, response: tuple[int, bytes, bytes]) -> None:
        status, headers, body = response
        head = b"".join(
            (status_line(status), headers, self.server.date.line(), self._connection_line(request), _CRLF)
        )
        self._write(head, b"" if request.head else body)

    def _write(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if len(body) <= SMALL_BODY:
            self.transport.write(head + body)
        else:
            # One writev on uvloop, without copying the body behind the head.
            self.transport.writelines((head, body))

    def _answered(self, request: Request) -> None:
        """After an answer: close if the request or the server said so, else wait for the next request."""
        if not request.keep_alive or self.server.stopping:
            self._close()
        elif not self._in_message:
            self.deadline = self.loop.time() + self.server.keepalive_timeout

    async def _work(self) -> None:
        """Answer the queued requests in order, then whatever made the connection stop reading."""
        sending = False
        try:
            while self.queue and not self._closing():
                request = self.queue[0]
                if self.write_paused:
                    await self._drained()
                pending = self._answer_now(request)
                if pending is not None:
                    response = await self.proxy.serve(
                        pending.slug, pending.name, head=request.head, query=pending.query
                    )
                    sending = True
                    await self._send(request, response)
                    sending = False
                self.queue.popleft()
                if not request.keep_alive or self.server.stopping:
                    self._close()
                    return
            if self.failure is not None:
                self._send_final(self.failure)
            elif self.done:
                self._close()
        except ConnectionGone:
            self.abort()
        except Exception:
            log.exception("edge connection failed while answering")
            if sending or self.closed:
                self.abort()
            else:
                self._send_final(INTERNAL_ERROR)
        finally:
            self.worker = None
            if not self.closed:
                if not self.write_paused:
                    self._resume_reading()
                if not self._in_message:
                    self.deadline = self.loop.time() + self.server.keepalive_timeout

    async def _send(self, request: Request, response: Response) -> None:
        """Write a proxy answer: a whole body at once, a streamed one as it comes (waiting for the viewer)."""
        status = response.status_code
        raw = response.raw_headers
        bodyless = request.head or status < 200 or status in (204, 304)
        if not isinstance(response, StreamingResponse):
            try:
                if self.closed:
                    raise ConnectionGone
                head = self._head(request, status, raw, b"")
                self._write(head, b"" if bodyless else bytes(response.body))
            finally:
                if response.background is not None:
                    await response.background()
            return
        iterator = response.body_iterator
        try:
            if self.closed:
                raise ConnectionGone
            sized = any(name == b"content-length" for name, _ in raw)
            chunked = not bodyless and not sized and not request.http10
            framing = _CHUNKED if chunked else b""
            if not bodyless and not sized and request.http10:
                # HTTP/1.0 has no chunked coding: the end of the body is the end of the connection.
                request = Request(request.method, request.target, False, True)
            assert self.transport is not None
            self.transport.write(self._head(request, status, raw, framing))
            if bodyless:
                return
            async for chunk in iterator:
                data = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode("utf-8")
                if self.closed:
                    raise ConnectionGone
                if not data:
                    continue
                if chunked:
                    self.transport.writelines((b"%x\r\n" % len(data), data, _CRLF))
                else:
                    self.transport.write(data)
                if self.write_paused:
                    await self._drained()
            if chunked:
                self.transport.write(_LAST_CHUNK)
            if not request.keep_alive:
                self._close()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if response.background is not None:
                await response.background()

    def _head(self, request: Request, status: int, raw: list[tuple[bytes, bytes]], framing: bytes) -> bytes:
        return b"".join(
            (
                status_line(status),
                header_lines(raw),
                framing,
                self.server.date.line(),
                self._connection_line(request),
                _CRLF,
            )
        )

    async def _drained(self) -> None:
        try:
            async with asyncio.timeout(self.server.send_timeout):
                await self.writable.wait()
        except TimeoutError:
            raise ConnectionGone from None
        if self.closed:
            raise ConnectionGone

    # connection state

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_REQUEST_HEAD:
            raise HeadTooLarge

    def _fail(self, response: bytes) -> None:
        """Stop reading; answer the requests already queued, then send ``response`` and close."""
        if self.done or self.closed:
            return
        self.done = True
        self.failure = response
        if self.worker is None:
            self._send_final(response)

    def _finish(self) -> None:
        """Stop reading; close once the requests already queued are answered."""
        self.done = True
        if self.worker is None:
            self._close()

    def _send_final(self, response: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(response)
        self._close()

    def _close(self) -> None:
        self.done = True
        self.deadline = math.inf
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _closing(self) -> bool:
        return self.closed or self.transport is None or self.transport.is_closing()

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent bytes."""
        self.done = True
        self.deadline = math.inf
        if self.transport is not None:
            self.transport.abort()

    def expire(self) -> None:
        """The idle or head deadline passed: close (nothing is owed to the viewer)."""
        log.debug("closing an edge connection: %s", "idle" if not self._in_message else "request too slow")
        self._close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the answer under way."""
        if self.worker is None:
            self._close()
        else:
            self.done = True

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()
            # The viewer cannot be blamed for a request we are not reading.
            if self._in_message:
                self.deadline = math.inf

    def _resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()
            if self._in_message:
                self.deadline = self.loop.time() + self.server.head_timeout
