"""The edge over real HTTP: a real origin (uvicorn) behind the edge app, counting every origin request."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from streamit.discovery import MemoryRegistry, StreamLocation
from streamit.edge import create_edge_app
from streamit.edge.proxy import EdgeProxy, upstream_url
from streamit.origin import SegmentStoreRegistry, create_origin_router

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edge"
PLAYLIST = (FIXTURES / "index.m3u8").read_bytes()
SEGMENT = (FIXTURES / "seg-000000.ts").read_bytes()
SEGMENT_PATH = "/hls/show/seg-000000.ts"
PLAYLIST_PATH = "/hls/show/index.m3u8"
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def located(
    slug: str,
    origin_url: str,
    *,
    node: str = "origin-a",
    started_at: datetime = STARTED,
    metadata: Mapping[str, str] | None = None,
) -> StreamLocation:
    return StreamLocation(slug, origin_url, node, started_at, metadata or {})


class Registry:
    """A discovery registry stand-in that counts lookups (the real ones are tested in tests/discovery)."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamLocation] = {}
        self.lookups = 0

    async def lookup(self, slug: str) -> StreamLocation | None:
        self.lookups += 1
        return self.streams.get(slug)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingOrigin:
    """ASGI wrapper recording the path of every request; segments can be slowed to make requests overlap."""

    def __init__(self, app: ASGIApp, *, segment_delay: float = 0.0) -> None:
        self.app = app
        self.paths: list[str] = []
        self.segment_delay = segment_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
            if self.segment_delay and scope["path"].endswith(".ts"):
                await asyncio.sleep(self.segment_delay)
        await self.app(scope, receive, send)

    def count(self, path: str) -> int:
        return self.paths.count(path)


class QuietServer(uvicorn.Server):
    """uvicorn inside the test's event loop, leaving signal handling alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, lifespan: Literal["on", "off"] = "off") -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def origin_app(root: Path, *, segment_delay: float = 0.0) -> CountingOrigin:
    """A real origin over a directory holding ffmpeg's playlist and segments for the stream ``show``."""
    (root / "show").mkdir(parents=True)
    for name in ("index.m3u8", "seg-000000.ts", "seg-000001.ts"):
        shutil.copy(FIXTURES / name, root / "show" / name)
    app = FastAPI()
    app.include_router(create_origin_router(SegmentStoreRegistry(root), segment_duration=2.0))
    return CountingOrigin(app, segment_delay=segment_delay)


def free_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Setup:
    origin: CountingOrigin
    origin_url: str
    registry: Registry
    clock: Clock
    upstream: httpx.AsyncClient

    def edge(
        self, *, max_cache_bytes: int = 256 * 1024 * 1024, max_object_bytes: int | None = None
    ) -> tuple[httpx.AsyncClient, EdgeProxy]:
        app = create_edge_app(
            self.registry,
            client=self.upstream,
            clock=self.clock,
            max_cache_bytes=max_cache_bytes,
            max_object_bytes=max_object_bytes,
        )
        viewer = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
        proxy: EdgeProxy = app.state.edge
        return viewer, proxy


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    origin = origin_app(tmp_path / "a", segment_delay=0.1)
    async with serving(origin) as url, httpx.AsyncClient() as upstream:
        registry = Registry()
        registry.streams["show"] = located("show", url)
        yield Setup(origin, url, registry, Clock(), upstream)


async def test_playlist_and_segment_pass_through(setup: Setup) -> None:
    viewer, _ = setup.edge()
    playlist = await viewer.get(PLAYLIST_PATH)
    assert playlist.status_code == 200
    assert playlist.content == PLAYLIST
    assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert playlist.headers["cache-control"] == "public, max-age=1"
    assert playlist.headers["access-control-allow-origin"] == "*"
    assert playlist.headers["x-cache"] == "MISS"
    assert playlist.headers["via"] == "1.1 streamit-edge"
    segment = await viewer.get(SEGMENT_PATH)
    assert segment.status_code == 200 and segment.content == SEGMENT
    assert segment.headers["content-type"] == "video/mp2t"
    assert "immutable" in segment.headers["cache-control"]
    assert segment.headers["content-length"] == str(len(SEGMENT))
    again = await viewer.get(SEGMENT_PATH)
    assert again.content == SEGMENT
    assert again.headers["x-cache"] == "HIT" and again.headers["age"] == "0"
    assert setup.origin.paths == [PLAYLIST_PATH, SEGMENT_PATH]


async def test_head_gives_the_length_without_a_body(setup: Setup) -> None:
    viewer, _ = setup.edge()
    for expected in ("MISS", "HIT"):
        head = await viewer.head(SEGMENT_PATH)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(SEGMENT))
        assert head.headers["x-cache"] == expected
    assert setup.origin.count(SEGMENT_PATH) == 1


async def test_fifty_concurrent_viewers_cause_one_origin_fetch(setup: Setup) -> None:
    viewer, _ = setup.edge()
    responses = await asyncio.gather(*(viewer.get(SEGMENT_PATH) for _ in range(50)))
    assert all(r.status_code == 200 and r.content == SEGMENT for r in responses)
    outcomes = [r.headers["x-cache"] for r in responses]
    assert outcomes.count("MISS") == 1
    assert set(outcomes) <= {"MISS", "COALESCED", "HIT"} and "COALESCED" in outcomes
    assert setup.origin.count(SEGMENT_PATH) == 1
    assert setup.registry.lookups == 1


async def test_fifty_concurrent_viewers_over_real_http(tmp_path: Path) -> None:
    origin = origin_app(tmp_path, segment_delay=0.1)
    async with serving(origin) as origin_url:
        registry = MemoryRegistry()
        await registry.register(located("show", origin_url), ttl=10.0)
        edge = create_edge_app(registry)  # owns its pooled client, closed by the lifespan
        async with (
            serving(edge, lifespan="on") as edge_url,
            httpx.AsyncClient(base_url=edge_url, limits=httpx.Limits(max_connections=50)) as viewer,
        ):
            responses = await asyncio.gather(*(viewer.get(SEGMENT_PATH) for _ in range(50)))
            metrics = (await viewer.get("/metrics")).text
        assert all(r.status_code == 200 and r.content == SEGMENT for r in responses)
        assert [r.headers["x-cache"] for r in responses].count("MISS") == 1
        assert origin.count(SEGMENT_PATH) == 1
        assert 'streamit_edge_upstream_fetches_total{kind="segment"} 1.0' in metrics
        assert 'streamit_edge_requests_total{cache="MISS"} 1.0' in metrics


async def test_playlist_is_cached_for_half_the_target_duration(setup: Setup) -> None:
    viewer, _ = setup.edge()
    assert (await viewer.get(PLAYLIST_PATH)).headers["x-cache"] == "MISS"
    setup.clock.now += 0.99  # EXT-X-TARGETDURATION:2 → fresh for 1 s
    hit = await viewer.get(PLAYLIST_PATH)
    assert hit.headers["x-cache"] == "HIT" and hit.content == PLAYLIST
    assert setup.origin.count(PLAYLIST_PATH) == 1
    setup.clock.now += 0.01
    assert (await viewer.get(PLAYLIST_PATH)).headers["x-cache"] == "MISS"
    assert setup.origin.count(PLAYLIST_PATH) == 2


async def test_segments_stay_cached(setup: Setup) -> None:
    viewer, _ = setup.edge()
    await viewer.get(SEGMENT_PATH)
    setup.clock.now += 3600
    assert (await viewer.get(SEGMENT_PATH)).headers["x-cache"] == "HIT"
    assert setup.origin.count(SEGMENT_PATH) == 1


async def test_lru_evicts_by_bytes_within_the_cap(setup: Setup) -> None:
    cap = len((FIXTURES / "seg-000001.ts").read_bytes()) + 1000  # one segment and its headers, not two
    viewer, proxy = setup.edge(max_cache_bytes=cap, max_object_bytes=cap)
    second = "/hls/show/seg-000001.ts"
    for path in (SEGMENT_PATH, second, SEGMENT_PATH, SEGMENT_PATH):
        assert (await viewer.get(path)).status_code == 200
        assert proxy.cache.current_bytes <= cap
    assert setup.origin.count(SEGMENT_PATH) == 2 and setup.origin.count(second) == 1
    assert len(proxy.cache) == 1 and proxy.cache.evictions == 2


async def test_unknown_stream_is_404_without_contacting_origins(setup: Setup) -> None:
    viewer, _ = setup.edge()
    for path in ("/hls/nope/index.m3u8", "/hls/nope/seg-000000.ts"):
        response = await viewer.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert setup.origin.paths == []


@pytest.mark.parametrize(
    "path",
    ["/hls/show/secret.txt", "/hls/show/..%2F..%2Fsecret.ts", "/hls/show/index.m3u8.tmp", "/hls/.show/a.ts"],
)
async def test_malformed_names_are_404_without_any_lookup(setup: Setup, path: str) -> None:
    viewer, _ = setup.edge()
    assert (await viewer.get(path)).status_code == 404
    assert setup.registry.lookups == 0 and setup.origin.paths == []


async def test_missing_segment_passes_the_404_through_uncached(setup: Setup) -> None:
    viewer, proxy = setup.edge()
    for _ in range(2):
        response = await viewer.get("/hls/show/seg-000099.ts")
        assert response.status_code == 404 and response.headers["x-cache"] == "MISS"
    assert setup.origin.count("/hls/show/seg-000099.ts") == 2
    assert len(proxy.cache) == 0


async def test_refused_origin_is_502_within_two_seconds(setup: Setup) -> None:
    setup.registry.streams["show"] = located("show", f"http://127.0.0.1:{free_port()}")
    viewer, _ = setup.edge()
    started = time.monotonic()
    response = await viewer.get(SEGMENT_PATH)
    assert response.status_code == 502
    assert time.monotonic() - started < 2.0
    assert response.headers["via"] == "1.1 streamit-edge"


async def test_silent_origin_is_504_within_two_seconds(setup: Setup) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    setup.registry.streams["show"] = located("show", f"http://127.0.0.1:{port}")
    viewer, _ = setup.edge()
    started = time.monotonic()
    responses = await asyncio.gather(*(viewer.get(SEGMENT_PATH) for _ in range(5)))
    assert [r.status_code for r in responses] == [504] * 5
    assert time.monotonic() - started < 2.0
    silent.close()
    await silent.wait_closed()


async def test_dead_origin_fails_over_to_the_new_registration(tmp_path: Path, setup: Setup) -> None:
    origin_a = origin_app(tmp_path / "a2")
    async with serving(origin_a) as url_a:
        setup.registry.streams["show"] = located("show", url_a, node="origin-a")
        viewer, _ = setup.edge()
        assert (await viewer.get(PLAYLIST_PATH)).status_code == 200  # the edge now remembers origin A
    second = "/hls/show/seg-000001.ts"
    origin_b = origin_app(tmp_path / "b")
    async with serving(origin_b) as url_b:
        setup.registry.streams["show"] = located("show", url_b, node="origin-b")
        started = time.monotonic()
        response = await viewer.get(second)
        assert time.monotonic() - started < 2.0
    assert response.status_code == 200 and response.headers["x-cache"] == "MISS"
    assert response.content == (FIXTURES / "seg-000001.ts").read_bytes()
    assert origin_a.count(second) == 0 and origin_b.count(second) == 1


async def test_dead_origin_of_an_unregistered_stream_is_404(tmp_path: Path, setup: Setup) -> None:
    origin_a = origin_app(tmp_path / "a2")
    async with serving(origin_a) as url_a:
        setup.registry.streams["show"] = located("show", url_a)
        viewer, _ = setup.edge()
        assert (await viewer.get(PLAYLIST_PATH)).status_code == 200
    del setup.registry.streams["show"]
    assert (await viewer.get(SEGMENT_PATH)).status_code == 404


async def test_a_new_broadcast_does_not_reuse_cached_segments(setup: Setup) -> None:
    viewer, _ = setup.edge()
    await viewer.get(SEGMENT_PATH)
    later = datetime(2026, 1, 2, tzinfo=UTC)
    setup.registry.streams["show"] = located("show", setup.origin_url, started_at=later)
    setup.clock.now += 1.0  # the remembered location expires
    assert (await viewer.get(SEGMENT_PATH)).headers["x-cache"] == "MISS"
    assert setup.origin.count(SEGMENT_PATH) == 2


async def test_bodies_too_large_to_buffer_are_streamed_through(setup: Setup) -> None:
    viewer, proxy = setup.edge(max_object_bytes=4096)
    for _ in range(2):
        response = await viewer.get(SEGMENT_PATH)
        assert response.status_code == 200 and response.content == SEGMENT
        assert response.headers["content-type"] == "video/mp2t"
        assert response.headers["content-length"] == str(len(SEGMENT))
        assert response.headers["x-cache"] == "MISS"
    assert len(proxy.cache) == 0
    head = await viewer.head(SEGMENT_PATH)
    assert head.status_code == 200 and head.content == b""


async def test_registry_failure_is_503(setup: Setup) -> None:
    class BrokenRegistry:
        async def lookup(self, slug: str) -> StreamLocation | None:
            raise ConnectionError("registry down")

    app = create_edge_app(BrokenRegistry(), client=setup.upstream)
    viewer = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
    assert (await viewer.get(PLAYLIST_PATH)).status_code == 503
    assert setup.origin.paths == []


async def test_preflight_and_health(setup: Setup) -> None:
    viewer, _ = setup.edge()
    preflight = await viewer.options(PLAYLIST_PATH)
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert (await viewer.get("/healthz")).json() == {"status": "ok"}


async def test_metrics_count_hits_misses_and_fetches(setup: Setup) -> None:
    viewer, _ = setup.edge()
    await viewer.get(SEGMENT_PATH)
    await viewer.get(SEGMENT_PATH)
    await viewer.get(PLAYLIST_PATH)
    metrics = (await viewer.get("/metrics")).text
    assert 'streamit_edge_requests_total{cache="HIT"} 1.0' in metrics
    assert 'streamit_edge_requests_total{cache="MISS"} 2.0' in metrics
    assert 'streamit_edge_upstream_fetches_total{kind="segment"} 1.0' in metrics
    assert 'streamit_edge_upstream_fetches_total{kind="playlist"} 1.0' in metrics
    cached = len(SEGMENT) + len(PLAYLIST)
    line = next(ln for ln in metrics.splitlines() if ln.startswith("streamit_edge_cache_bytes "))
    assert cached < float(line.split()[1]) < cached + 2000


@pytest.mark.parametrize(
    ("playlist", "segment_dir"),
    [("cam/index.m3u8", "cam"), ("cam.m3u8", ""), ("Cam.One/index.m3u8", "Cam.One")],
)
async def test_streams_found_by_the_folder_watcher(
    tmp_path: Path, setup: Setup, playlist: str, segment_dir: str
) -> None:
    root = tmp_path / "nginx-hls"
    (root / playlist).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "index.m3u8", root / playlist)
    shutil.copy(FIXTURES / "seg-000000.ts", root / segment_dir / "seg-000000.ts")
    static = FastAPI()
    static.mount("/hls", StaticFiles(directory=root))
    nginx_like = CountingOrigin(static)
    slug = playlist.split("/")[0].removesuffix(".m3u8")
    async with serving(nginx_like) as url:
        setup.registry.streams[slug] = located(
            slug, f"{url}/hls", metadata={"source": "hls-folder", "playlist": playlist}
        )
        viewer, _ = setup.edge()
        assert (await viewer.get(f"/hls/{slug}/index.m3u8")).content == PLAYLIST
        assert (await viewer.get(f"/hls/{slug}/seg-000000.ts")).content == SEGMENT
    segment_path = f"/hls/{segment_dir}/seg-000000.ts" if segment_dir else "/hls/seg-000000.ts"
    assert nginx_like.paths == [f"/hls/{playlist}", segment_path]


@pytest.mark.parametrize("playlist", ["../etc/index.m3u8", "a/b/index.m3u8", "/abs.m3u8", "cam/index.txt"])
def test_unsafe_playlist_metadata_is_ignored(playlist: str) -> None:
    location = located("cam", "http://origin:8080", metadata={"playlist": playlist})
    assert upstream_url(location, "index.m3u8") == "http://origin:8080/hls/cam/index.m3u8"
    assert upstream_url(location, "seg-1.ts") == "http://origin:8080/hls/cam/seg-1.ts"


async def test_origin_and_registry_both_down_is_502(setup: Setup) -> None:
    class FlakyRegistry:
        def __init__(self) -> None:
            self.calls = 0

        async def lookup(self, slug: str) -> StreamLocation | None:
            self.calls += 1
            if self.calls > 1:
                raise ConnectionError("registry down")
            return located(slug, f"http://127.0.0.1:{free_port()}")

    registry = FlakyRegistry()
    app = create_edge_app(registry, client=setup.upstream)
    viewer = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
    response = await viewer.get(SEGMENT_PATH)
    assert response.status_code == 502 and registry.calls == 2


@pytest.mark.parametrize("path", ["/hls/show/seg/000000.ts", "/hls/show/", "/hls//index.m3u8", "/hls/show"])
async def test_paths_of_other_shapes_are_404_without_any_lookup(setup: Setup, path: str) -> None:
    viewer, _ = setup.edge()
    assert (await viewer.get(path)).status_code == 404
    assert setup.registry.lookups == 0 and setup.origin.paths == []
