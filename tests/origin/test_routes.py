"""Origin HTTP routes: content types, caching, CORS on media only, 404s, no traversal."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from streamit.hls import PlaylistUpdated, Segment, SegmentReady
from streamit.origin import SegmentStoreRegistry, create_origin_router

PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nseg-000000.ts\n"


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    registry = SegmentStoreRegistry(tmp_path)
    segment = Segment(
        sequence=0,
        name="seg-000000.ts",
        duration=Fraction(2),
        program_date_time=datetime(2026, 1, 1, tzinfo=UTC),
        discontinuity=False,
        data=b"\x47" + bytes(187),
    )
    registry.open("show").apply([SegmentReady(segment), PlaylistUpdated(PLAYLIST)])
    (tmp_path / "secret.txt").write_text("secret")
    app = FastAPI()
    app.include_router(create_origin_router(registry, segment_duration=2.0))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://origin")


async def test_playlist(client: httpx.AsyncClient) -> None:
    response = await client.get("/hls/show/index.m3u8")
    assert response.status_code == 200
    assert response.text == PLAYLIST
    assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert response.headers["cache-control"] == "public, max-age=1"
    assert response.headers["access-control-allow-origin"] == "*"


async def test_segment(client: httpx.AsyncClient) -> None:
    response = await client.get("/hls/show/seg-000000.ts")
    assert response.status_code == 200
    assert response.content[0] == 0x47 and len(response.content) == 188
    assert response.headers["content-type"] == "video/mp2t"
    assert "immutable" in response.headers["cache-control"]
    head = await client.head("/hls/show/seg-000000.ts")
    assert head.status_code == 200 and head.headers["content-length"] == "188"


async def test_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options("/hls/show/index.m3u8")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/hls/nope/index.m3u8",
        "/hls/show/seg-000099.ts",
        "/hls/show/..%2F..%2Fsecret.txt",
        "/hls/..%2F/secret.txt",
        "/hls/show/%2e%2e/secret.txt",
        "/hls/show/index.m3u8.tmp",
    ],
)
async def test_unknown_or_escaping_paths_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "secret" not in response.text


async def test_requests_are_counted_by_kind_and_outcome(tmp_path: Path) -> None:
    stores = SegmentStoreRegistry(tmp_path)
    segment = Segment(
        sequence=0,
        name="seg-000000.ts",
        duration=Fraction(2),
        program_date_time=datetime(2026, 1, 1, tzinfo=UTC),
        discontinuity=False,
        data=b"\x47" + bytes(187),
    )
    stores.open("show").apply([SegmentReady(segment), PlaylistUpdated(PLAYLIST)])
    metrics = CollectorRegistry()
    app = FastAPI()
    app.include_router(create_origin_router(stores, segment_duration=2.0, metrics=metrics))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://origin") as client:
        for path in ("/hls/show/index.m3u8", "/hls/show/seg-000000.ts", "/hls/show/seg-000000.ts"):
            assert (await client.get(path)).status_code == 200
        assert (await client.get("/hls/gone/index.m3u8")).status_code == 404
        assert (await client.get("/hls/show/seg-000009.ts")).status_code == 404

    def count(kind: str, outcome: str) -> float | None:
        return metrics.get_sample_value("streamit_hls_requests_total", {"kind": kind, "outcome": outcome})

    assert count("playlist", "served") == 1
    assert count("segment", "served") == 2
    assert count("playlist", "not_found") == 1
    assert count("segment", "not_found") == 1
