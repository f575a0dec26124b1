"""The asyncio RTMP server: a thin pump between TCP sockets and :class:`~streamit.rtmp.RtmpConnection`.

A protocol object per connection (no task per read, no per-read timeout objects): bytes go into the
sans-I/O connection, its events go to the ingest session, and its replies go out.  While the session
awaits the database for a publish, reading pauses, so events stay in order and TCP applies backpressure.

Admission is bounded: connections in total and per IP (:class:`~streamit.servers.limits.ConnectionLimiter`),
an absolute deadline for the handshake, and an idle timeout afterwards.  The same server listens for RTMPS
(RTMP over TLS) on a second port when a certificate is configured.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from streamit.config import Settings
from streamit.errors import ConfigError, ProtocolError
from streamit.rtmp import RtmpConnection
from streamit.servers.ingest import IngestService, IngestSession
from streamit.servers.limits import ConnectionLimiter

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
# C0 + C1 + C2 (RTMP 1.0 §5.2): once this much arrived, the handshake is over.
_HANDSHAKE_BYTES = 1 + 1536 + 1536
# Replies to a publisher are small; a peer that does not read them for this long is dead or hostile.
WRITE_HIGH_WATER = 1024 * 1024
# While a stream is published, reading pauses this long after each read so that the next read carries
# several RTMP messages: an encoder writes ~100 small packets a second and every wake-up of the event loop
# costs more than parsing them.  The kernel buffers the bytes meanwhile, and the rests of all connections end
# together (ReadPacer).  100 ms: measured with ten 3 Mbit/s publishers, 13 % less CPU per stream than 50 ms;
# a frame waits at most 100 ms (on average 50), against LL-HLS parts of 334 ms.
READ_COALESCE = 0.1
# Not before the first segment is out, so coalescing never delays the moment a stream becomes watchable.
COALESCE_AFTER = 3.0


class RtmpProtocol(asyncio.Protocol):
    """One RTMP connection."""

    def __init__(self, server: RtmpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn = RtmpConnection(max_message_size=server.max_message_size)
        self.session: IngestSession | None = None
        self.peer = "?"
        self.ip = "?"
        self.accepted_at = self.loop.time()
        self.last_activity = self.accepted_at
        self.admitted = False
        self._pending: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._resting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = self.transport.get_extra_info("peername")
        self.ip = str(peername[0]) if isinstance(peername, tuple) else str(peername)
        self.peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        refusal = self.server.limiter.admit(self.ip)
        if refusal is not None:
            self.server.refused_connections += 1
            log.warning("rtmp connection from %s refused: %s", self.peer, refusal)
            self.transport.abort()
            return
        self.admitted = True
        self.session = self.server.ingest.session(self.peer, self.conn, self.close)
        self.server.connections.add(self)
        self._watchdog = self.loop.call_later(self.server.handshake_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        self.last_activity = self.loop.time()
        try:
            self.conn.receive_data(data, self.last_activity)
        except ProtocolError as exc:
            # Events parsed before the bad bytes are still handled, then the connection is dropped.
            self._handle_events()
            self._fail(exc)
            return
        self._handle_events()
        self._coalesce_reads()

    def _coalesce_reads(self) -> None:
        session = self.session
        transport = self.transport
        publish = session.publish if session is not None else None
        if (
            self.server.read_coalesce <= 0
            or publish is None
            # The first segment is not held back: how soon a stream can be watched counts more than CPU.
            or self.loop.time() - publish.started < self.server.coalesce_after
            or self._pending is not None
            or self._resting
            or transport is None
            or transport.is_closing()
        ):
            return
        transport.pause_reading()
        self._resting = True
        self.server.pacer.rest(self, self.loop)

    def read_again(self) -> None:
        """The rest is over (called by the server's :class:`ReadPacer`): read again."""
        self._resting = False
        transport = self.transport
        if self._pending is None and transport is not None and not transport.is_closing():
            transport.resume_reading()

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
        if not self.transport.is_closing() and not self._resting:
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
        now = self.loop.time()
        if self.conn.bytes_received < _HANDSHAKE_BYTES:
            # An absolute deadline: a peer trickling one byte at a time must not hold the slot forever.
            late = now - self.accepted_at - self.server.handshake_timeout
            if late >= 0:
                log.info("rtmp connection from %s did not finish the handshake in time; closing", self.peer)
                self.server.timed_out_connections += 1
                self.abort()
                return
            self._watchdog = self.loop.call_later(-late, self._check_idle)
            return
        idle = now - self.last_activity
        limit = self.server.idle_timeout
        if idle >= limit:
            log.info("rtmp connection from %s idle for %.0f s; closing", self.peer, idle)
            self.server.timed_out_connections += 1
            self.close()
            return
        self._watchdog = self.loop.call_later(limit - idle, self._check_idle)

    def abort(self) -> None:
        """Drop the connection at once, without flushing (a hostile or dead peer)."""
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        self.admitted = False
        self.server.limiter.release(self.ip)
        self.server.connections.discard(self)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._resting:
            self.server.pacer.forget(self)
            self._resting = False
        if self._pending is not None:
            self._pending.cancel()
        if exc is not None:
            log.info("rtmp connection from %s lost: %s", self.peer, exc)
        if self.session is not None:
            self.session.connection_lost(None)
        self.transport = None


class ReadPacer:
    """Ends the rests of all resting connections together, on one shared timer.

    A connection that rests gets its turn at the pacer's next tick, at most ``rest`` seconds later.  With a
    timer per connection, N publishers cost N timer wake-ups and N socket wake-ups per rest; ticking together,
    their sockets become readable together and one pass of the event loop reads them all, one after the
    other, while the interpreter's caches are warm (measured at N = 30: a third less CPU per stream, half the
    context switches).
    """

    def __init__(self, rest: float) -> None:
        self.rest_seconds = rest
        self._resting: dict[RtmpProtocol, None] = {}
        self._tick: asyncio.TimerHandle | None = None
        self.ticks = 0
        """Ticks so far (each ended the rests of every connection resting then)."""

    def __len__(self) -> int:
        return len(self._resting)

    def rest(self, protocol: RtmpProtocol, loop: asyncio.AbstractEventLoop) -> None:
        """Call ``protocol.read_again()`` at the next tick."""
        self._resting[protocol] = None
        if self._tick is None:
            self._tick = loop.call_later(self.rest_seconds, self._end_rests)

    def forget(self, protocol: RtmpProtocol) -> None:
        """``protocol`` is gone: no call for it."""
        self._resting.pop(protocol, None)

    def _end_rests(self) -> None:
        self._tick = None
        self.ticks += 1
        resting, self._resting = self._resting, {}
        for protocol in resting:
            protocol.read_again()

    def close(self) -> None:
        """Stop ticking (the server is closing)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._resting.clear()


class RtmpServer:
    """Accepts RTMP connections and hands their events to the ingest service."""

    def __init__(
        self,
        ingest: IngestService,
        *,
        max_message_size: int,
        max_connections: int = 1000,
        max_connections_per_ip: int = 50,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        read_coalesce: float = READ_COALESCE,
        coalesce_after: float = COALESCE_AFTER,
    ) -> None:
        self.ingest = ingest
        self.read_coalesce = read_coalesce
        self.pacer = ReadPacer(read_coalesce)
        self.coalesce_after = coalesce_after
        """Seconds into a publish before its reads are coalesced (its first segment is then out)."""
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.limiter = ConnectionLimiter(max_total=max_connections, max_per_ip=max_connections_per_ip)
        self.connections: set[RtmpProtocol] = set()
        self.refused_connections = 0
        self.timed_out_connections = 0
        self._servers: list[asyncio.Server] = []

    @classmethod
    def from_settings(cls, ingest: IngestService, settings: Settings) -> RtmpServer:
        """A server with the limits of ``settings``.

        With LL-HLS on, reads rest at most a third of a part, so that the rest never delays a part by much.
        """
        coalesce = settings.rtmp_read_coalesce
        if settings.hls_low_latency:
            coalesce = min(coalesce, settings.hls_part_duration / 3)
        return cls(
            ingest,
            max_message_size=settings.rtmp_max_message_size,
            max_connections=settings.rtmp_max_connections,
            max_connections_per_ip=settings.rtmp_max_connections_per_ip,
            handshake_timeout=settings.rtmp_handshake_timeout,
            idle_timeout=settings.rtmp_idle_timeout,
            read_coalesce=coalesce,
            coalesce_after=settings.hls_segment_duration + 1.0,
        )

    async def start(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> int:
        """Listen on ``host:port`` (RTMPS when ``tls`` is given); returns the bound port (for port 0).

        Can be called once for RTMP and once more for RTMPS; both share the limits and the ingest.
        """
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: RtmpProtocol(self),
            host,
            port,
            ssl=tls,
            # The TLS handshake shares the RTMP handshake's deadline.
            ssl_handshake_timeout=self.handshake_timeout if tls is not None else None,
        )
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", "RTMPS" if tls is not None else "RTMP", host, bound)
        return bound

    async def close(self) -> None:
        """Stop accepting, end every publish and close every connection."""
        for server in self._servers:
            server.close()
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
        for server in self._servers:
            await server.wait_closed()
        self.pacer.close()


def tls_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """The server-side TLS context of RTMPS; :class:`ConfigError` when the files are missing or unusable."""
    if cert_file is None or key_file is None:
        raise ConfigError("RTMPS needs tls_cert_file and tls_key_file (STREAMIT_TLS_CERT_FILE/KEY_FILE)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the RTMPS certificate {cert_file} / key {key_file}: {exc}") from exc
    return context
