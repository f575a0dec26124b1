"""LL-HLS through the edge: directives passed upstream, blocking requests and hinted parts coalesced.

A real origin application (its LL-HLS state fed frames by the test) sits behind the real edge
application; both run in this event loop through httpx's ASGI transport, so the origin's own request
counters show what reached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from streamit.discovery import StreamLocation
from streamit.edge import create_edge_app, fresh_until
from streamit.edge.cache import IMMUTABLE, playlist_part_target
from streamit.edge.proxy import EdgeProxy, ll_directives
from streamit.errors import InvalidInput
from streamit.origin import SegmentStoreRegistry, create_origin_router
from streamit.origin.parts import LiveLlHls, LlHlsStoreRegistry
from tests.origin.test_ll_routes import Feeder, parts_listed, preload_hint

ORIGIN = "http://origin.test"
STARTED = datetime(2026, 1, 1, tzinfo=UTC)
VIEWERS = 200


class OneStream:
    """A resolver that knows one stream (the registries themselves are tested in tests/discovery)."""

    async def lookup(self, slug: str) -> StreamLocation | None:
        return StreamLocation("show", ORIGIN, "origin-a", STARTED, {}) if slug == "show" else None


@dataclass
class Setup:
    live: LiveLlHls
    feeder: Feeder
    origin_metrics: CollectorRegistry
    proxy: EdgeProxy
    edge: httpx.AsyncClient

    def origin_count(self, kind: str, outcome: str = "served") -> float:
        value = self.origin_metrics.get_sample_value(
            "streamit_hls_requests_total", {"kind": kind, "outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    ll = LlHlsStoreRegistry(target_duration=Fraction(2), part_target=Fraction(334, 1000), playlist_length=6)
    live = ll.open("show")
    metrics = CollectorRegistry()
    origin = FastAPI()
    origin.include_router(
        create_origin_router(
            SegmentStoreRegistry(tmp_path), segment_duration=2.0, metrics=metrics, ll_stores=ll
        )
    )
    upstream = httpx.AsyncClient(transport=httpx.ASGITransport(app=origin))
    app = create_edge_app(OneStream(), client=upstream, node="edge-test", max_cache_bytes=64 * 1024 * 1024)
    edge = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge", timeout=30)
    feeder = Feeder(live)
    feeder.until(1, 0)
    yield Setup(live, feeder, metrics, app.state.edge, edge)
    await edge.aclose()
    await upstream.aclose()


async def wait_until_held(setup: Setup, viewers: int) -> None:
    """Until every viewer's request waits at the edge and the one upstream request waits at the origin."""
    async with asyncio.timeout(30):
        while setup.proxy.held < viewers or setup.live.waiting < 1:
            await asyncio.sleep(0.01)


async def test_viewers_waiting_for_the_same_part_cause_one_upstream_request_per_part(setup: Setup) -> None:
    for _ in range(3):
        hint = setup.live.packager.next_part
        assert hint is not None
        msn, part = hint
        before = setup.origin_count("ll_playlist")
        path = f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"
        requests = [asyncio.create_task(setup.edge.get(path)) for _ in range(VIEWERS)]
        await wait_until_held(setup, VIEWERS)
        assert setup.live.waiting == 1  # one blocking request reached the origin
        setup.feeder.until(msn, part)
        responses = await asyncio.wait_for(asyncio.gather(*requests), 30)
        assert {r.status_code for r in responses} == {200}
        assert all(f"part-{msn:06d}-{part}.m4s" in parts_listed(r.text) for r in responses)
        assert sorted(r.headers["x-cache"] for r in responses).count("MISS") == 1
        assert setup.origin_count("ll_playlist") == before + 1
        # A later viewer with the same question is answered from the cache.
        late = await setup.edge.get(path)
        assert late.headers["x-cache"] == "HIT" and late.text == responses[0].text
        assert setup.origin_count("ll_playlist") == before + 1
    assert setup.proxy.held == 0


async def test_viewers_waiting_for_the_hinted_part_cause_one_upstream_request(setup: Setup) -> None:
    hinted = preload_hint(setup.live.playlist())
    before = setup.origin_count("ll_object")
    requests = [asyncio.create_task(setup.edge.get(f"/hls/show/{hinted}")) for _ in range(VIEWERS)]
    await wait_until_held(setup, VIEWERS)
    while hinted not in parts_listed(setup.live.playlist()):
        setup.feeder.step()
    responses = await asyncio.wait_for(asyncio.gather(*requests), 30)
    assert {r.status_code for r in responses} == {200}
    assert {r.content for r in responses} == {setup.live.object(hinted)}
    assert setup.origin_count("ll_object") == before + 1
    again = await setup.edge.get(f"/hls/show/{hinted}")
    assert again.headers["x-cache"] == "HIT" and "immutable" in again.headers["cache-control"]


async def test_init_and_parts_are_cached_as_immutable(setup: Setup) -> None:
    names = ["init.mp4", *parts_listed(setup.live.playlist())[:3], "seg-000000.m4s"]
    for name in names:
        first = await setup.edge.get(f"/hls/show/{name}")
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
        second = await setup.edge.get(f"/hls/show/{name}")
        assert second.headers["x-cache"] == "HIT" and second.content == setup.live.object(name)
    assert setup.origin_count("ll_object") == len(names)


async def test_only_the_directives_go_upstream_in_canonical_form(setup: Setup) -> None:
    msn, part = setup.live.packager.next_part or (0, 0)
    setup.feeder.until(msn, part)
    first = await setup.edge.get(f"/hls/show/ll.m3u8?_HLS_part={part}&cachebuster=1&_HLS_msn={msn}")
    second = await setup.edge.get(f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}&cachebuster=2")
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    delta = await setup.edge.get("/hls/show/ll.m3u8?_HLS_skip=YES")
    assert delta.status_code == 200 and delta.headers["x-cache"] == "MISS"  # a different question


@pytest.mark.parametrize("query", ["_HLS_msn=zz", "_HLS_part=1", "_HLS_skip=maybe"])
async def test_malformed_directives_are_400_without_asking_the_origin(setup: Setup, query: str) -> None:
    response = await setup.edge.get(f"/hls/show/ll.m3u8?{query}")
    assert response.status_code == 400
    assert setup.origin_count("ll_playlist", "refused") == 0


async def test_waiters_per_key_are_capped(setup: Setup) -> None:
    setup.proxy.max_held_per_key = 3
    msn, part = setup.live.packager.next_part or (0, 0)
    path = f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    held = [asyncio.create_task(setup.edge.get(path)) for _ in range(3)]
    await wait_until_held(setup, 3)
    refused = await setup.edge.get(path)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    setup.feeder.until(msn, part)
    assert {r.status_code for r in await asyncio.wait_for(asyncio.gather(*held), 30)} == {200}


async def test_an_origin_503_reaches_the_viewer_with_retry_after(setup: Setup) -> None:
    setup.live.hold_limit = 0.2
    msn, part = setup.live.packager.next_part or (0, 0)
    response = await setup.edge.get(f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part={part + 3}")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_canonical_directives() -> None:
    assert ll_directives(b"") == ""
    assert ll_directives(b"_HLS_skip=v2&_HLS_part=3&_HLS_msn=7&x=1") == "_HLS_msn=7&_HLS_part=3&_HLS_skip=YES"
    with pytest.raises(InvalidInput):
        ll_directives(b"_HLS_msn=1&_HLS_msn=2")
    with pytest.raises(InvalidInput):
        ll_directives("_HLS_msn=١".encode())  # a non-ASCII digit is not a decimal-integer


LL_PLAYLIST = (
    b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.334\n#EXTINF:2,\nseg-000000.m4s\n"
)


def test_freshness_of_ll_hls_objects() -> None:
    assert playlist_part_target(LL_PLAYLIST) == pytest.approx(0.334)
    assert fresh_until("ll.m3u8", 200, LL_PLAYLIST, 100.0) == pytest.approx(100.167)
    assert fresh_until("ll.m3u8", 200, LL_PLAYLIST, 100.0, blocking=True) == 102.0
    assert fresh_until("part-000001-2.m4s", 200, b"moof", 100.0) == IMMUTABLE
    assert fresh_until("init.mp4", 200, b"ftyp", 100.0) == IMMUTABLE
    # A classic playlist keeps its rule: half a target duration.
    assert fresh_until("index.m3u8", 200, b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n", 100.0) == 101.0
