"""Native ingest with an operator's ``on_publish`` callback: a real HTTP receiver allows, renames, refuses."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import PublisherFactory, Server, free_port, start_server, stop_server, wait_for

pytestmark = pytest.mark.interop


class Receiver:
    """An operator's callback endpoint: answers with the status and headers it is told to."""

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {}
        self.calls: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = dict(urllib.parse.parse_qsl(body))
                form["path"] = self.path
                receiver.calls.append(form)
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked_server(tmp_path: Path, receiver: Receiver, ffmpeg: str) -> Iterator[Server]:
    env = {
        "STREAMIT_ON_PUBLISH_URL": f"{receiver.url}/on_publish",
        "STREAMIT_ON_PUBLISH_DONE_URL": f"{receiver.url}/on_publish_done",
    }
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def test_on_publish_allows_and_on_publish_done_follows(
    hooked_server: Server, receiver: Receiver, publishers: PublisherFactory
) -> None:
    info = hooked_server.create_stream("Hooked", slug="hooked")
    publisher = publishers.generated(hooked_server.rtmp_url(info.stream_key), seconds=4)
    assert publisher.wait(30) == 0, publisher.errors()
    assert wait_for(lambda: len(receiver.calls) == 2, timeout=5)
    publish, done = receiver.calls
    assert publish["path"] == "/on_publish" and publish["call"] == "publish" and publish["app"] == "live"
    assert publish["name"] == info.stream_key and publish["type"] == "live"
    assert publish["addr"] == "127.0.0.1" and publish["tcurl"].startswith("rtmp://127.0.0.1:")
    assert done["path"] == "/on_publish_done" and done["call"] == "publish_done"
    assert hooked_server.stream_json("hooked")["status"] == "ENDED"


def test_on_publish_redirect_renames_the_public_slug(
    hooked_server: Server, receiver: Receiver, publishers: PublisherFactory
) -> None:
    info = hooked_server.create_stream("Before", slug="before")
    receiver.status = 302
    receiver.headers = {"Location": "after"}
    publisher = publishers.generated(hooked_server.rtmp_url(info.stream_key), seconds=30)
    playlist = f"{hooked_server.http}/hls/after/index.m3u8"
    assert wait_for(lambda: httpx.get(playlist, timeout=5).status_code == 200, timeout=20)
    assert hooked_server.stream_json("after")["status"] == "LIVE"
    assert httpx.get(f"{hooked_server.http}/api/v1/streams/before", timeout=5).status_code == 404
    assert not (hooked_server.data_dir / "hls" / "before").exists()
    publisher.stop()


@pytest.mark.parametrize("status", [403, 500])
def test_on_publish_refusal_refuses_the_publish(
    hooked_server: Server, receiver: Receiver, publishers: PublisherFactory, status: int
) -> None:
    info = hooked_server.create_stream("Refused", slug="refused")
    receiver.status = status
    publisher = publishers.generated(hooked_server.rtmp_url(info.stream_key), seconds=5)
    assert publisher.wait(20) != 0
    assert hooked_server.stream_json("refused")["status"] == "DRAFT"
    assert "refused by on_publish" in hooked_server.log()
    assert info.stream_key not in hooked_server.log()
