"""HTTP for ``serve``, ``origin`` and ``api``: uvicorn in our event loop, with bounded request heads and a
fast path for HLS objects.

(The edge answers cache hits with its own server, :mod:`streamit.edge.http`, and shares
:data:`MAX_REQUEST_HEAD`.)

uvicorn's fast parser (httptools) buffers a request head of any size; a client sending megabytes of
headers would make the process hold them.  :class:`BoundedHttpToolsProtocol` answers 431 and closes once
the head passes :data:`MAX_REQUEST_HEAD`.

A player polls its playlist every few seconds and fetches every segment: on an origin these requests
outnumber all others.  Given a :data:`FastPath` (the origin's
:meth:`~streamit.origin.routes.HlsResponder.fast`), the protocol answers a ``GET``/``HEAD`` it can answer
at once straight from the parser's callbacks — no ASGI scope, task or framework routing — and hands every
other request to uvicorn as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import httptools
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from streamit.config import Settings

if TYPE_CHECKING:
    from streamit.origin.routes import FastResponse

FastPath = Callable[[bytes], "FastResponse | None"]
"""Answers a ``GET``/``HEAD`` request target (path and query as sent) with a 200, or ``None``: not here."""

FAST_PATH_JOIN_LIMIT = 64 * 1024
"""Bodies up to this size are copied behind the head and sent in one write; larger ones are not copied
(the head and the body go out together with ``writelines``)."""

FAST_PATH_MAX_BUFFERED = 4 * 1024 * 1024
"""A client that does not read what it asked for gets no more fast answers (the ASGI path waits for the
socket to drain) once this many bytes wait in the connection's write buffer."""

MAX_REQUEST_HEAD = 16 * 1024
"""Bytes a request line plus headers may take (nginx's default large_client_header_buffers is 4 × 8 KiB)."""

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request header fields too large"
)


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn closes the connection."""


class _NothingToWake:
    """The answered request's stand-in for the event uvicorn sets when a connection is lost."""

    def set(self) -> None:
        """No body is awaited: nothing to wake."""


class _Answered:
    """Stands in for uvicorn's request cycle once the fast path has answered a request in full."""

    __slots__ = ("keep_alive",)
    response_complete = True
    disconnected = False
    message_event = _NothingToWake()

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive


# Never changed once answered (uvicorn only touches an unfinished cycle): one of each serves all connections.
_ANSWERED_KEEP_ALIVE = _Answered(True)
_ANSWERED_CLOSE = _Answered(False)

_rendered_defaults: tuple[object, bytes] = (None, b"")


def _status_and_defaults(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The status line and uvicorn's default headers (``server``, ``date``) of a fast 200, rendered once per
    list: uvicorn replaces the list when the date changes, once a second."""
    global _rendered_defaults
    source, rendered = _rendered_defaults
    if source is not default_headers:
        lines = [b"%s: %s\r\n" % (name, value) for name, value in default_headers]
        rendered = b"HTTP/1.1 200 OK\r\n" + b"".join(lines)
        _rendered_defaults = (default_headers, rendered)
    return rendered


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses request heads over :data:`MAX_REQUEST_HEAD` bytes, and
    answers what ``fast_path`` can answer itself.

    Two counts, because httptools hands over a header only once it is complete: the bytes received while
    a head is open (a huge header still arriving), and the sizes of the URL and headers parsed (a huge head
    that arrived in one read).

    What uvicorn does per request but a fast answer does not need is skipped or deferred: the ASGI scope is
    built (by uvicorn's own ``on_message_begin``) only for a request handed to the app, and the keep-alive
    timer is not cancelled on every read and re-armed after every answer; one timer per connection checks
    when the connection last fell idle and re-arms itself for the rest of the timeout.
    """

    def __init__(self, *args: Any, fast_path: FastPath | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fast_path = fast_path
        self._in_head = True
        self._received = 0
        self._parsed = 0
        self._too_large = False
        # Idle: every answer written and no byte received since (uvicorn's keep-alive timer would be armed).
        self._idle = False
        self._idle_since = 0.0

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_REQUEST_HEAD:
            self._too_large = True
            raise HeadTooLarge

    def on_message_begin(self) -> None:
        # The scope waits for on_headers_complete: a fast answer does not need it.
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # _count inlined: this runs for every header of every request.  ``expect`` is looked at when the
        # request goes to the app.
        self._parsed += len(name) + len(value) + 4
        if self._parsed > MAX_REQUEST_HEAD:
            self._too_large = True
            raise HeadTooLarge
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._fast_path is not None and self._answer_fast(self._fast_path):
            return
        self._begin_scope()
        super().on_headers_complete()

    def _begin_scope(self) -> None:
        """What uvicorn's ``on_message_begin`` and ``on_header`` would have set up for the request."""
        url, headers = self.url, self.headers
        super().on_message_begin()
        self.url = url
        self.headers.extend(headers)  # the list the scope holds
        for name, value in headers:
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True

    def _answer_fast(self, fast_path: FastPath) -> bool:
        """Answer the request whose head just ended without uvicorn's ASGI cycle; False: not possible."""
        cycle = self.cycle
        # In order: only when no earlier (pipelined) request is still being answered by the app.
        if (cycle is not None and not cycle.response_complete) or self.pipeline:
            return False
        parser = self.parser
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return False
        transport = self.transport
        if parser.should_upgrade() or transport.get_write_buffer_size() > FAST_PATH_MAX_BUFFERED:
            return False
        for name, _ in self.headers:
            if name == b"content-length" or name == b"transfer-encoding":
                return False  # a body to read: the ASGI path does that
        response = fast_path(self.url)
        if response is None:
            return False
        keep_alive = parser.should_keep_alive() and parser.get_http_version() != "1.0"
        body = response.body
        head = [
            _status_and_defaults(self.server_state.default_headers),
            b"content-length: %d\r\n" % len(body),
            response.headers,
        ]
        if not keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if method == b"HEAD":
            transport.write(b"".join(head))
        elif len(body) <= FAST_PATH_JOIN_LIMIT:
            head.append(body)
            transport.write(b"".join(head))
        else:
            # One writev(2) on uvloop, the body not copied (two writes would be two sends, two packets).
            transport.writelines((b"".join(head), body))
        if keep_alive:
            self.cycle = _ANSWERED_KEEP_ALIVE  # type: ignore[assignment]
            self.on_response_complete()
        else:
            self.cycle = _ANSWERED_CLOSE  # type: ignore[assignment]
            self.server_state.total_requests += 1
            transport.close()
        return True

    def on_message_complete(self) -> None:
        self._in_head = True
        self._received = 0
        self._parsed = 0
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:
            return  # answered already (uvicorn would return here too)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, without cancelling and re-creating the keep-alive timer for every answer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle = True
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def timeout_keep_alive_handler(self) -> None:
        """Close the connection if it has been idle for the keep-alive timeout, else wait for the rest."""
        self.timeout_keep_alive_task = None
        if self.transport.is_closing() or not self._idle:
            return  # busy: the timer is armed again when the answer under way is written
        remaining = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self.timeout_keep_alive_task = self.loop.call_later(remaining, self.timeout_keep_alive_handler)
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_TOO_LARGE)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        # uvicorn's, without cancelling the keep-alive timer: the connection is merely no longer idle.
        self._idle = False
        if self._in_head:
            self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        # Checked after parsing: bytes of a body that arrived with the end of the head do not count.
        if self._in_head and self._received > MAX_REQUEST_HEAD and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()


def http_config(
    app: ASGIApp,
    settings: Settings,
    *,
    lifespan: Literal["auto", "on", "off"] = "off",
    fast_path: FastPath | None = None,
) -> uvicorn.Config:
    """uvicorn settings for ``app`` on the configured HTTP address, with Streamit's limits; requests that
    ``fast_path`` answers skip the app (see :class:`BoundedHttpToolsProtocol`)."""
    protocol: Any = (
        BoundedHttpToolsProtocol
        if fast_path is None
        else functools.partial(BoundedHttpToolsProtocol, fast_path=fast_path)
    )
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        http=protocol,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        limit_concurrency=settings.http_max_connections,
        timeout_graceful_shutdown=settings.http_shutdown_timeout,
    )
