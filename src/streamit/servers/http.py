"""HTTP for ``serve``, ``origin`` and ``api``: uvicorn in our event loop, with bounded request heads.

(The edge answers cache hits with its own server, :mod:`streamit.edge.http`, and shares
:data:`MAX_REQUEST_HEAD`.)

uvicorn's fast parser (httptools) buffers a request head of any size; a client sending megabytes of
headers would make the process hold them.  :class:`BoundedHttpToolsProtocol` answers 431 and closes once
the head passes :data:`MAX_REQUEST_HEAD`.
"""

from __future__ import annotations

from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from streamit.config import Settings

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


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses request heads over :data:`MAX_REQUEST_HEAD` bytes.

    Two counts, because httptools hands over a header only once it is complete: the bytes received while
    a head is open (a huge header still arriving), and the sizes of the URL and headers parsed (a huge head
    that arrived in one read).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._received = 0
        self._parsed = 0
        self._too_large = False

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_REQUEST_HEAD:
            self._too_large = True
            raise HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._received = 0
        self._parsed = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_TOO_LARGE)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._received += len(data)
        super().data_received(data)
        # Checked after parsing: bytes of a body that arrived with the end of the head do not count.
        if self._in_head and self._received > MAX_REQUEST_HEAD and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()


def http_config(
    app: ASGIApp, settings: Settings, *, lifespan: Literal["auto", "on", "off"] = "off"
) -> uvicorn.Config:
    """uvicorn settings for ``app`` on the configured HTTP address, with Streamit's limits."""
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        http=BoundedHttpToolsProtocol,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        limit_concurrency=settings.http_max_connections,
    )
