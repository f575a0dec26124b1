"""The database goes away under a running ``streamit serve`` (PostgreSQL behind a TCP relay we cut).

New publishes fail closed with a clear RTMP status and log line; the stream already live keeps producing
segments; once the database is back, publishing works again.
"""

from __future__ import annotations

import contextlib
import json
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
from sqlalchemy.engine import make_url

from tests.interop.cluster import postgres_url
from tests.interop.conftest import (
    PublisherFactory,
    Server,
    StreamInfo,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

__all__ = ["postgres_url"]

pytestmark = pytest.mark.interop


class Relay:
    """Forwards TCP connections from a local port to ``target``; :meth:`cut` resets them all and refuses
    new ones until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        self.stopping.clear()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stopping.is_set():
            readable, _, _ = select.select([self.listener], [], [], 0.05)
            if not readable:
                continue
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self.stopping.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.05)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        # One side closed: pass the close on, as a direct connection would.
                        with contextlib.suppress(OSError):
                            peers[source].shutdown(socket.SHUT_RDWR)
                        return
                    peers[source].sendall(data)
        except OSError:
            return

    def cut(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        if self.listener is not None:
            self.listener.close()
        time.sleep(0.2)  # pumps notice the stop flag
        with self.lock:
            for sock in self.connections:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                except OSError:
                    pass
            self.connections.clear()


@pytest.fixture
def relayed_server(tmp_path: Path, ffmpeg: str, postgres_url: str) -> Iterator[tuple[Server, Relay]]:
    parsed = make_url(postgres_url)
    relay = Relay((parsed.host or "127.0.0.1", parsed.port or 5432))
    url = parsed.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    env = {"STREAMIT_DATABASE_URL": url}
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    srv.database_url = url  # type: ignore[attr-defined]
    yield srv, relay
    relay.cut()
    stop_server(srv, timeout=30)


def create_stream(srv: Server, database_url: str, slug: str) -> StreamInfo:
    output = srv.cli("streams", "create", slug, "--slug", slug, "--json", "--database-url", database_url)
    return StreamInfo(**json.loads(output))


def newest_segment(srv: Server, slug: str) -> str | None:
    response = httpx.get(f"{srv.http}/hls/{slug}/index.m3u8", timeout=5)
    if response.status_code != 200:
        return None
    segments = m3u8.loads(response.text).segments
    return segments[-1].uri if segments else None


def test_publishes_fail_closed_while_live_streams_go_on(
    relayed_server: tuple[Server, Relay], publishers: PublisherFactory
) -> None:
    srv, relay = relayed_server
    database: str = srv.database_url  # type: ignore[attr-defined]
    live = create_stream(srv, database, "already-live")
    waiting = create_stream(srv, database, "waiting")
    publisher = publishers.generated(srv.rtmp_url(live.stream_key), seconds=60)
    assert wait_for(lambda: newest_segment(srv, "already-live") is not None, 20), srv.log()

    relay.cut()
    cut_at = time.monotonic()
    refused = publishers.generated(srv.rtmp_url(waiting.stream_key), seconds=10)
    assert refused.wait(30) != 0
    assert time.monotonic() - cut_at < 25
    assert wait_for(lambda: "database error" in srv.log(), 5), srv.log()
    assert waiting.stream_key not in srv.log()

    # The live stream was never interrupted: its segments keep coming during the outage.
    seen = set()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        seen.add(newest_segment(srv, "already-live"))
        time.sleep(0.2)
    assert len(seen - {None}) >= 3, seen
    assert publisher.poll() is None, publisher.errors()

    relay.restore()
    again = publishers.generated(srv.rtmp_url(waiting.stream_key), seconds=30)
    assert wait_for(lambda: newest_segment(srv, "waiting") is not None, 30), srv.log()
    assert again.poll() is None, again.errors()
