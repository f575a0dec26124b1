"""The asyncio RTMP server: a thin pump between TCP sockets and :class:`~streamit.rtmp.RtmpConnection`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from streamit.errors import ProtocolError
from streamit.rtmp import RtmpConnection
from streamit.servers.ingest import IngestService

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
# Stop reading from a publisher whose replies we cannot write (a dead peer); RTMP replies are small.
WRITE_HIGH_WATER = 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0


class RtmpServer:
    """Accepts RTMP connections and hands their events to the ingest service."""

    def __init__(self, ingest: IngestService, *, max_message_size: int) -> None:
        self.ingest = ingest
        self.max_message_size = max_message_size
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_SIZE)
        sock = self._server.sockets[0]
        bound: int = sock.getsockname()[1]
        log.info("RTMP listening on %s:%d", host, bound)
        return bound

    async def close(self) -> None:
        """Stop accepting, end every publish and close every connection."""
        if self._server is not None:
            self._server.close()
        await self.ingest.shutdown()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        conn = RtmpConnection(max_message_size=self.max_message_size)

        def flush_and_close() -> None:
            # Replies such as a refusal's onStatus must reach the peer before the close (TCP close
            # flushes what the transport already holds).
            pending = conn.data_to_send()
            if pending and not writer.is_closing():
                writer.write(pending)
            writer.close()

        session = self.ingest.session(peer, conn, flush_and_close)
        loop = asyncio.get_running_loop()
        error: BaseException | None = None
        timeout = HANDSHAKE_TIMEOUT
        try:
            while not session.closed:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    log.info("rtmp connection from %s timed out", peer)
                    break
                if not data:
                    break
                timeout = IDLE_TIMEOUT
                conn.receive_data(data, loop.time())
                while (event := conn.next_event()) is not None:
                    await session.handle(event, conn)
                    out = conn.data_to_send()
                    if out and not writer.is_closing():
                        writer.write(out)
                out = conn.data_to_send()
                if out and not writer.is_closing():
                    writer.write(out)
                if writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                    await writer.drain()
        except ProtocolError as exc:
            error = exc
        except (ConnectionError, OSError) as exc:
            log.info("rtmp connection from %s lost: %s", peer, exc)
        except asyncio.CancelledError:
            pass
        finally:
            await session.connection_lost(error)
            out = conn.data_to_send()
            if out and not writer.is_closing():
                writer.write(out)
            writer.close()
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 2)
