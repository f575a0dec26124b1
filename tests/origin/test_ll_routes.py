"""LL-HLS at the origin: blocking playlist reload, delta updates, preload-hinted parts, 400/503, memory.

The LL-HLS state is fed frames by the test, as ingest would, while requests go through the real routes
(httpx's ASGI transport).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import httpx
import m3u8
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamit.errors import InvalidInput, NotFound
from streamit.fmp4 import parse_fragment
from streamit.media.frame import Frame
from streamit.origin import SegmentStoreRegistry, create_origin_router
from streamit.origin.parts import (
    PART_SEGMENTS,
    LiveLlHls,
    LlHlsStoreRegistry,
    PlaylistRequest,
    parse_playlist_query,
)
from tests.hls.test_parts import AUDIO_CONFIG, VIDEO_CONFIG, stream

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PART_TARGET = Fraction(334, 1000)


class Feeder:
    """Feeds a generated stream (30 fps, 1 s GOP, AAC) into a stream's LL-HLS state, frame by frame."""

    def __init__(self, live: LiveLlHls, seconds: float = 60) -> None:
        self.live = live
        live.on_config(VIDEO_CONFIG)
        live.on_config(AUDIO_CONFIG)
        self.frames: Iterator[Frame] = iter(stream(seconds))

    def step(self) -> None:
        frame = next(self.frames)
        self.live.on_frame(frame, START + timedelta(milliseconds=frame.dts))

    def until(self, msn: int, part: int | None = None) -> None:
        """Feed until the playlist holds part ``part`` of segment ``msn`` (or the whole segment)."""
        while not (self.started() and self.live.has(msn, part)):
            self.step()

    def started(self) -> bool:
        try:
            self.live.playlist()
        except NotFound:
            return False
        return True


def make_app(tmp_path: Path, **kwargs: object) -> tuple[LlHlsStoreRegistry, FastAPI, CollectorRegistry]:
    options: dict[str, object] = {
        "target_duration": Fraction(2),
        "part_target": PART_TARGET,
        "playlist_length": 6,
    }
    options.update(kwargs)
    ll = LlHlsStoreRegistry(**options)  # type: ignore[arg-type]
    metrics = CollectorRegistry()
    app = FastAPI()
    app.include_router(
        create_origin_router(
            SegmentStoreRegistry(tmp_path), segment_duration=2.0, metrics=metrics, ll_stores=ll
        )
    )
    return ll, app, metrics


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://origin", timeout=30)


def parts_listed(text: str) -> list[str]:
    return [
        line.split('URI="')[1].split('"')[0] for line in text.splitlines() if line.startswith("#EXT-X-PART:")
    ]


def preload_hint(text: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith("#EXT-X-PRELOAD-HINT:"))
    return line.split('URI="')[1].split('"')[0]


async def test_unknown_stream_and_no_playlist_yet_are_404(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    async with client_for(app) as client:
        assert (await client.get("/hls/none/ll.m3u8")).status_code == 404
        assert (await client.get("/hls/none/part-000000-0.m4s")).status_code == 404
        ll.open("show")
        assert (await client.get("/hls/show/ll.m3u8")).status_code == 404
        assert (await client.get("/hls/show/init.mp4")).status_code == 404
        assert (await client.get("/hls/show/part-000003-0.m4s")).status_code == 404  # not the hinted one


async def test_playlist_init_parts_and_segments_are_served(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    feeder = Feeder(ll.open("show"))
    feeder.until(2, 0)
    async with client_for(app) as client:
        response = await client.get("/hls/show/ll.m3u8")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["access-control-allow-origin"] == "*"
        playlist = m3u8.loads(response.text)
        assert playlist.server_control.can_block_reload == "YES"
        assert [s.uri for s in playlist.segments][:2] == ["seg-000000.m4s", "seg-000001.m4s"]
        init = await client.get("/hls/show/init.mp4")
        assert init.status_code == 200 and init.headers["content-type"] == "video/mp4"
        assert init.content[4:8] == b"ftyp"
        assert "immutable" in init.headers["cache-control"]
        for name in parts_listed(response.text):
            part = await client.get(f"/hls/show/{name}")
            assert part.status_code == 200 and "immutable" in part.headers["cache-control"]
            assert parse_fragment(part.content).runs
        segment = await client.get("/hls/show/seg-000000.m4s")
        assert segment.status_code == 200 and segment.content[4:8] == b"moof"
        assert (await client.get("/hls/show/seg-000009.m4s")).status_code == 404
        assert (await client.get("/hls/show/..%2Finit.mp4")).status_code == 404


async def test_a_blocking_request_returns_once_its_part_is_produced(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    feeder = Feeder(live)
    feeder.until(1, 0)
    hint = live.packager.next_part
    assert hint is not None
    msn, part = hint
    loop = asyncio.get_running_loop()
    async with client_for(app) as client:
        waiting = asyncio.create_task(client.get(f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # held: the part does not exist yet
        assert live.waiting == 1
        while not live.has(msn, part):
            feeder.step()
        produced = loop.time()
        response = await asyncio.wait_for(waiting, 10)
        answered = loop.time()
        assert response.status_code == 200
        assert f"part-{msn:06d}-{part}.m4s" in parts_listed(response.text)
        assert response.headers["cache-control"] == "public, max-age=2"
        assert answered - produced <= float(PART_TARGET)  # within one part duration of its production
        assert live.waiting == 0
        # Asking for what exists is answered at once.
        again = await asyncio.wait_for(client.get(f"/hls/show/ll.m3u8?_HLS_msn={msn}&_HLS_part=0"), 10)
        assert again.status_code == 200


async def test_a_blocking_request_for_a_whole_segment_waits_for_it(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    feeder = Feeder(live)
    feeder.until(0, 0)
    async with client_for(app) as client:
        waiting = asyncio.create_task(client.get("/hls/show/ll.m3u8?_HLS_msn=1"))
        await asyncio.sleep(0.1)
        feeder.until(0, 4)
        await asyncio.sleep(0.1)
        assert not waiting.done()  # segment 0 is still open: segment 1 is not in the playlist
        feeder.until(1)
        response = await asyncio.wait_for(waiting, 10)
        assert response.status_code == 200 and "seg-000000.m4s" in response.text


@pytest.mark.parametrize(
    "query",
    ["_HLS_msn=9", "_HLS_part=1", "_HLS_msn=x", "_HLS_msn=1&_HLS_msn=2", "_HLS_skip=NO", "_HLS_msn=-1"],
)
async def test_bad_directives_are_400(tmp_path: Path, query: str) -> None:
    ll, app, metrics = make_app(tmp_path)
    Feeder(ll.open("show")).until(0, 0)
    async with client_for(app) as client:
        response = await asyncio.wait_for(client.get(f"/hls/show/ll.m3u8?{query}"), 10)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert metrics.get_sample_value(
        "streamit_hls_requests_total", {"kind": "ll_playlist", "outcome": "refused"}
    )


async def test_two_segments_ahead_is_allowed_three_is_400(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path, target_duration=Fraction(1, 2))
    Feeder(ll.open("show")).until(0, 0)  # segment 0 is the open one
    async with client_for(app) as client:
        too_far = await asyncio.wait_for(client.get("/hls/show/ll.m3u8?_HLS_msn=3"), 10)
        assert too_far.status_code == 400
        held = await asyncio.wait_for(client.get("/hls/show/ll.m3u8?_HLS_msn=2"), 10)
        assert held.status_code == 503  # not produced within 3 × 0.5 s: nothing is fed


async def test_a_request_not_satisfied_in_three_target_durations_is_503(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path, target_duration=Fraction(1, 2), part_target=Fraction(1, 4))
    live = ll.open("show")
    Feeder(live).until(0, 0)
    loop = asyncio.get_running_loop()
    async with client_for(app) as client:
        began = loop.time()
        response = await asyncio.wait_for(client.get("/hls/show/ll.m3u8?_HLS_msn=0&_HLS_part=5"), 10)
        assert loop.time() - began >= 1.5
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert live.waiting == 0


async def test_waiting_requests_per_stream_are_capped(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path, max_waiters=2)
    live = ll.open("show")
    feeder = Feeder(live)
    feeder.until(0, 0)
    async with client_for(app) as client:
        held = [asyncio.create_task(client.get("/hls/show/ll.m3u8?_HLS_msn=0&_HLS_part=2")) for _ in range(2)]
        while live.waiting < 2:
            await asyncio.sleep(0.01)
        busy = await asyncio.wait_for(client.get("/hls/show/ll.m3u8?_HLS_msn=0&_HLS_part=2"), 10)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        busy_part = await asyncio.wait_for(client.get(f"/hls/show/{preload_hint(live.playlist())}"), 10)
        assert busy_part.status_code == 503
        feeder.until(0, 2)
        assert [r.status_code for r in await asyncio.wait_for(asyncio.gather(*held), 10)] == [200, 200]


async def test_the_preload_hinted_part_is_held_until_complete(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    feeder = Feeder(live)
    feeder.until(0, 1)
    hinted = preload_hint(live.playlist())
    async with client_for(app) as client:
        waiting = asyncio.create_task(client.get(f"/hls/show/{hinted}"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        # A part beyond the hinted one is not held: it is a 404 at once.
        msn, index = live.packager.next_part or (0, 0)
        beyond = await asyncio.wait_for(client.get(f"/hls/show/part-{msn:06d}-{index + 1}.m4s"), 10)
        assert beyond.status_code == 404
        while hinted not in parts_listed(live.playlist()):
            feeder.step()
        response = await asyncio.wait_for(waiting, 10)
        assert response.status_code == 200 and response.content == live.object(hinted)
        assert "immutable" in response.headers["cache-control"]


async def test_end_answers_every_waiter_with_the_final_playlist(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    Feeder(live).until(0, 1)
    hinted = preload_hint(live.playlist())
    async with client_for(app) as client:
        playlist = asyncio.create_task(client.get("/hls/show/ll.m3u8?_HLS_msn=1&_HLS_part=0"))
        part = asyncio.create_task(client.get(f"/hls/show/{hinted}"))
        while live.waiting < 2:
            await asyncio.sleep(0.01)
        live.end()
        ended = await asyncio.wait_for(playlist, 10)
        assert ended.status_code == 200 and ended.text.endswith("#EXT-X-ENDLIST\n")
        # The flush at the end made the hinted part.
        assert (await asyncio.wait_for(part, 10)).status_code == 200


async def test_a_replaced_stream_answers_its_waiters(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    Feeder(live).until(0, 0)
    async with client_for(app) as client:
        waiting = asyncio.create_task(client.get("/hls/show/ll.m3u8?_HLS_msn=1&_HLS_part=0"))
        while live.waiting < 1:
            await asyncio.sleep(0.01)
        ll.remove("show")
        assert (await asyncio.wait_for(waiting, 10)).status_code == 200  # its last playlist


async def test_skip_gives_a_delta_update(tmp_path: Path) -> None:
    ll, app, _ = make_app(tmp_path, target_duration=Fraction(1), playlist_length=10)
    live = ll.open("show")
    Feeder(live).until(9, 0)
    async with client_for(app) as client:
        full = await client.get("/hls/show/ll.m3u8")
        delta = await client.get("/hls/show/ll.m3u8?_HLS_skip=YES")
        blocking_delta = await asyncio.wait_for(
            client.get("/hls/show/ll.m3u8?_HLS_msn=9&_HLS_part=0&_HLS_skip=YES"), 10
        )
    assert "#EXT-X-SKIP" not in full.text
    skipped = m3u8.loads(delta.text)
    assert skipped.skip is not None and skipped.skip.skipped_segments >= 1
    assert len(skipped.segments) + skipped.skip.skipped_segments == len(m3u8.loads(full.text).segments)
    assert blocking_delta.text == delta.text


async def test_parts_leave_memory_with_their_segments(tmp_path: Path) -> None:
    ll, _app, _ = make_app(tmp_path, target_duration=Fraction(1), playlist_length=3)
    live = ll.open("show")
    feeder = Feeder(live, seconds=40)
    feeder.until(8)
    at_8 = live.memory_bytes
    feeder.until(30)
    assert live.memory_bytes < 2 * at_8  # bounded by the window, not by the stream's length
    with pytest.raises(NotFound):
        live.object("part-000000-0.m4s")
    with pytest.raises(NotFound):
        live.object("seg-000000.m4s")
    live.object("init.mp4")  # still needed


async def test_restart_keeps_numbering_and_names(tmp_path: Path) -> None:
    ll, _app, _ = make_app(tmp_path)
    live = ll.open("show")
    Feeder(live).until(1, 0)
    live.restart()
    Feeder(live).until(3, 0)  # the new publisher's timestamps start again at 0
    text = live.playlist()
    assert "#EXT-X-DISCONTINUITY" in text and 'URI="init-1.mp4"' in text
    assert live.object("init-1.mp4")[4:8] == b"ftyp"


@given(
    st.lists(st.tuples(st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip", "x"]), st.text(max_size=12)))
)
def test_any_query_parses_or_raises_invalid_input(params: list[tuple[str, str]]) -> None:
    try:
        request = parse_playlist_query(params)
    except InvalidInput:
        return
    assert isinstance(request, PlaylistRequest)
    assert request.part is None or request.msn is not None
    assert (request.msn or 0) >= 0 and (request.part or 0) >= 0


async def test_only_the_newest_segments_keep_their_parts(tmp_path: Path) -> None:
    ll, _app, _ = make_app(tmp_path, target_duration=Fraction(1), playlist_length=8)
    live = ll.open("show")
    feeder = Feeder(live, seconds=40)
    feeder.until(PART_SEGMENTS + 4)
    playlist = live.playlist()
    for name in parts_listed(playlist):  # every part the playlist names is served
        live.object(name)
    with pytest.raises(NotFound):
        live.object("part-000001-0.m4s")  # an old segment's parts are gone ...
    live.object("seg-000001.m4s")  # ... while the segment itself stays in the window


async def test_an_ended_stream_is_released_after_its_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streamit.origin.parts.ENDED_RETENTION", 0.05)
    ll, app, _ = make_app(tmp_path)
    live = ll.open("show")
    Feeder(live, seconds=10).until(2)
    live.end()
    async with client_for(app) as client:
        ended = await client.get("/hls/show/ll.m3u8")
        assert ended.status_code == 200 and "#EXT-X-ENDLIST" in ended.text
        await asyncio.sleep(0.2)
        assert live.memory_bytes == 0
        assert (await client.get("/hls/show/ll.m3u8")).status_code == 404
    live.restart()  # a republish packages again
    Feeder(live, seconds=10).until(1)
    assert live.memory_bytes > 0


async def test_whole_segments_go_to_disk_and_leave_it_with_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "hls"
    (root / "show").mkdir(parents=True)
    (root / "show" / "seg-000000.m4s").write_bytes(b"a previous run")
    ll, app, _ = make_app(tmp_path, target_duration=Fraction(1), playlist_length=3, root=root)
    live = ll.open("show")
    assert not (root / "show" / "seg-000000.m4s").exists()  # never served to this run's viewers
    feeder = Feeder(live, seconds=40)
    feeder.until(12)
    on_disk = sorted(path.name for path in (root / "show").glob("seg-*.m4s"))
    assert on_disk and len(on_disk) <= 3 + 3  # the window and the expiry grace, nothing older
    in_memory = live.memory_bytes
    disk_bytes = sum((root / "show" / name).stat().st_size for name in on_disk)
    assert in_memory < disk_bytes  # memory holds parts of a few segments, not the window
    async with client_for(app) as client:
        response = await client.get(f"/hls/show/{on_disk[-1]}")
        assert response.status_code == 200
        assert response.content == (root / "show" / on_disk[-1]).read_bytes()
        assert (await client.get("/hls/show/seg-000000.m4s")).status_code == 404
    monkeypatch.setattr("streamit.origin.parts.ENDED_RETENTION", 0.0)
    live.end()
    await asyncio.sleep(0.05)
    assert list((root / "show").glob("seg-*.m4s")) == []
