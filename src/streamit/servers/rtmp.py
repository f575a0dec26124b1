"""The asyncio RTMP server: a thin pump between TCP sockets and :class:`~streamit.rtmp.RtmpConnection`.

A protocol object per connection (no task per read, no per-read timeout objects): bytes go into the
sans-I/O connection, its events go to the ingest session, and its replies go out.  While the session
awaits the database for a publish, reading pauses, so events stay in order and TCP applies backpressure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, cast

from streamit.errors import ProtocolError
from streamit.rtmp import RtmpConnection
from streamit.servers.ingest import IngestService, IngestSession

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
# Replies to a publisher are small; a peer that does not read them for this long is dead or hostile.
WRITE_HIGH_WATER = 1024 * 1024


class RtmpProtocol(asyncio.Protocol):
    """One RTMP connection."""

    def __init__(self, server: RtmpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn = RtmpConnection(max_message_size=server.max_message_size)
        self.session: IngestSession | None = None
        self.peer = "?"
        self.last_activity = self.loop.time()
        self.handshaken = False
        self._pending: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = self.transport.get_extra_info("peername")
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.session = self.server.ingest.session(self.peer, self.conn, self.close)
        self.server.connections.add(self)
        self._watchdog = self.loop.call_later(HANDSHAKE_TIMEOUT, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        try:
            self.conn.receive_data(data, self.last_activity)
        except ProtocolError as exc:
            # Events parsed before the bad bytes are still handled, then the connection is dropped.
            self._handle_events()
            self._fail(exc)
            return
        self._handle_events()

    def _handle_events(self) -> None:
        session = self.session
        assert session is not None
        while self._pending is None and not session.closed:
            event = self.conn.next_event()
            if event is None:
                break
            work = session.handle(event)
            if work is not None:
                self._await(work)
        self._flush()

    def _await(self, work: Coroutine[Any, Any, None]) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        self._pending = self.loop.create_task(work)
        self._pending.add_done_callback(self._resume)

    def _resume(self, task: asyncio.Task[None]) -> None:
        self._pending = None
        if not task.cancelled() and task.exception() is not None:
            log.error("rtmp session from %s failed", self.peer, exc_info=task.exception())
            self.close()
            return
        if self.transport is None or self.transport.is_closing():
            return
        self._handle_events()
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
            if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                log.warning("rtmp connection from %s does not read its replies; closing", self.peer)
                transport.abort()

    def _fail(self, exc: ProtocolError) -> None:
        assert self.session is not None
        self.session.connection_lost(exc)
        self.close()

    def close(self) -> None:
        """Write pending replies (a refusal's onStatus must reach the peer), then close."""
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _check_idle(self) -> None:
        idle = self.loop.time() - self.last_activity
        limit = IDLE_TIMEOUT if self.conn.bytes_received > 3073 else HANDSHAKE_TIMEOUT
        if idle >= limit:
            log.info("rtmp connection from %s idle for %.0f s; closing", self.peer, idle)
            self.close()
            return
        self._watchdog = self.loop.call_later(limit - idle, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._pending is not None:
            self._pending.cancel()
        if exc is not None:
            log.info("rtmp connection from %s lost: %s", self.peer, exc)
        if self.session is not None:
            self.session.connection_lost(None)
        self.transport = None


class RtmpServer:
    """Accepts RTMP connections and hands their events to the ingest service."""

    def __init__(self, ingest: IngestService, *, max_message_size: int) -> None:
        self.ingest = ingest
        self.max_message_size = max_message_size
        self.connections: set[RtmpProtocol] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RtmpProtocol(self), host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("RTMP listening on %s:%d", host, bound)
        return bound

    async def close(self) -> None:
        """Stop accepting, end every publish and close every connection."""
        if self._server is not None:
            self._server.close()
        await self.ingest.shutdown()
        for connection in list(self.connections):
            connection.close()
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
