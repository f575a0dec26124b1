"""The disk fills up under a live stream: it keeps being served from memory, ``/readyz`` says why, and no
playlist is ever corrupt.

The data directory is a small tmpfs of its own (needs root, as on the CI machine); a ballast file fills it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.interop.conftest import (
    PublisherFactory,
    Server,
    StreamInfo,
    ffprobe_codecs,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.interop


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def disk_server(tmp_path: Path, small_disk: Path, ffmpeg: str) -> Iterator[Server]:
    env = {"STREAMIT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}"}
    srv = start_server(small_disk / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full."""
    with path.open("wb") as ballast:
        try:
            while True:
                ballast.write(bytes(64 * 1024))
                ballast.flush()
        except OSError:
            pass


def test_full_disk_keeps_the_stream_served_from_memory(
    disk_server: Server, small_disk: Path, publishers: PublisherFactory, ffprobe: str, tmp_path: Path
) -> None:
    srv = disk_server
    info = create_stream(srv, tmp_path)
    publisher = publishers.generated(srv.rtmp_url(info.stream_key), seconds=45)

    def playlist() -> m3u8.M3U8 | None:
        response = httpx.get(f"{srv.http}/hls/full/index.m3u8", timeout=5)
        return m3u8.loads(response.text) if response.status_code == 200 else None

    assert wait_for(lambda: (p := playlist()) is not None and len(p.segments) >= 2, 20), srv.log()
    assert httpx.get(f"{srv.http}/readyz", timeout=5).status_code == 200

    fill(small_disk / "ballast")
    assert wait_for(lambda: httpx.get(f"{srv.http}/readyz", timeout=5).status_code == 503, 10), srv.log()
    readiness = httpx.get(f"{srv.http}/readyz", timeout=5).json()
    assert readiness["status"] == "degraded" and "full" in readiness["detail"], readiness
    assert "No space left on device" in readiness["detail"]

    # Viewers keep getting new, decodable segments while nothing can be written.
    first = playlist()
    assert first is not None
    newest = first.segments[-1].uri
    assert wait_for(lambda: (p := playlist()) is not None and p.segments[-1].uri != newest, 10)
    during = playlist()
    assert during is not None
    for number, segment in enumerate(during.segments[-2:]):
        response = httpx.get(f"{srv.http}/hls/full/{segment.uri}", timeout=5)
        assert response.status_code == 200
        (tmp_path / f"during-{number}.ts").write_bytes(response.content)
        assert ffprobe_codecs(ffprobe, tmp_path / f"during-{number}.ts") >= {"h264", "aac"}
    assert srv.log().count("stream full: cannot write to") == 1  # logged once, not once per segment
    assert publisher.poll() is None

    # The playlist on disk was never left half-written.
    on_disk = (small_disk / "data" / "hls" / "full" / "index.m3u8").read_text()
    assert on_disk.startswith("#EXTM3U") and on_disk.endswith("\n")
    assert m3u8.loads(on_disk).segments

    (small_disk / "ballast").unlink()
    assert wait_for(lambda: httpx.get(f"{srv.http}/readyz", timeout=5).status_code == 200, 15), srv.log()
    assert "writing to" in srv.log() and "works again" in srv.log()
    publisher.stop()
    assert wait_for(lambda: (p := playlist()) is not None and p.is_endlist, 10)
    time.sleep(0.5)
    assert srv.stream_json("full")["status"] == "ENDED"


def create_stream(srv: Server, tmp_path: Path) -> StreamInfo:
    """``streams create`` against the server's SQLite catalogue, which lies outside the small disk."""
    catalogue = f"sqlite+aiosqlite:///{tmp_path / 'catalogue.db'}"
    output = srv.cli("streams", "create", "Full", "--slug", "full", "--json", "--database-url", catalogue)
    return StreamInfo(**json.loads(output))
