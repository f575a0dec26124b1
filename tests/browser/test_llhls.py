"""LL-HLS in a real browser: hls.js (``lowLatencyMode: true``) in Debian's Chromium plays ``ll.m3u8``.

* through a real ``streamit edge`` in front of a real ``streamit origin`` (Redis discovery), from a bare
  player page;
* on the watch page of ``streamit serve``, which prefers the LL-HLS playlist when hls.js is there.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import REPO_ROOT, PageLog
from tests.interop.cluster import Cluster
from tests.interop.conftest import (
    PublisherFactory,
    RedisTarget,
    Server,
    redis_target,  # noqa: F401  (the fixture, for the cluster)
    wait_for,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.interop

HLS_JS = REPO_ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"
PLAYER_PAGE = """<!doctype html>
<meta charset="utf-8"><title>LL-HLS</title>
<video id="video" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
const video = document.getElementById("video");
window.player = { fatal: [], parts: 0 };
const hls = new Hls({ lowLatencyMode: true });
hls.on(Hls.Events.ERROR, (_e, data) => { if (data.fatal) { window.player.fatal.push(data.details); } });
hls.on(Hls.Events.FRAG_LOADED, (_e, data) => { if (data.part) { window.player.parts += 1; } });
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
hls.loadSource(new URLSearchParams(location.search).get("src"));
hls.attachMedia(video);
window.hls = hls;
</script>
"""


def ll_ready(url: str) -> bool:
    response = httpx.get(url, timeout=5)
    return response.status_code == 200 and response.text.count("#EXTINF") >= 2


def assert_plays_three_seconds(page: Page) -> None:
    current = "document.getElementById('video').currentTime"
    page.wait_for_function(f"() => {current} > 0.5", timeout=40_000, polling=250)
    start: float = page.evaluate(f"() => {current}")
    page.wait_for_function(f"() => {current} >= {start + 3}", timeout=30_000, polling=250)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def player_page(tmp_path: Path) -> Iterator[str]:
    """The bare player page and hls.js, served over loopback HTTP (Chromium lets a loopback page, not one
    from a public or opaque origin, fetch from the loopback edge: Private Network Access)."""
    directory = tmp_path / "player"
    directory.mkdir()
    (directory / "player.html").write_text(PLAYER_PAGE)
    shutil.copyfile(HLS_JS, directory / "hls.min.js")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/player.html"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def cluster(tmp_path: Path, redis_target: RedisTarget) -> Iterator[Cluster]:  # noqa: F811
    started = Cluster(tmp_path, redis_target)
    yield started
    started.kill_all()


def test_hls_js_low_latency_plays_through_an_edge(
    page: Page, page_log: PageLog, cluster: Cluster, publishers: PublisherFactory, player_page: str
) -> None:
    origin = cluster.origin("origin-a")
    edge = cluster.edge("edge-1")
    info = origin.create_stream("show")
    publishers.generated(origin.rtmp_url(info.stream_key), seconds=90)
    playlist = f"{edge.http}/hls/show/ll.m3u8"
    assert wait_for(lambda: ll_ready(playlist), 40), cluster.logs()

    page.goto(f"{player_page}?src={playlist}")
    try:
        assert_plays_three_seconds(page)
    except Exception:
        pytest.fail(f"{page.evaluate('() => window.player')} {page_log.console_errors}\n{cluster.logs()}")
    state = page.evaluate(
        "({fatal: window.player.fatal, parts: window.player.parts, low: hls.lowLatencyMode})"
    )
    assert state["fatal"] == []
    assert state["low"] is True and state["parts"] > 0  # it played parts, not only whole segments
    # Blocking reloads went through the edge: its upstream counter saw LL playlist fetches.
    assert edge.metric("streamit_edge_upstream_fetches_total", kind="ll_playlist") > 0
    assert not page_log.unexpected_console_errors(allow=("favicon.ico",)), page_log.console_errors


def test_watch_page_prefers_the_ll_hls_playlist(
    page: Page, page_log: PageLog, server: Server, publishers: PublisherFactory
) -> None:
    info = server.create_stream("Low latency", slug="low")
    publishers.generated(server.rtmp_url(info.stream_key), seconds=90)
    assert wait_for(lambda: ll_ready(f"{server.http}/hls/low/ll.m3u8"), 40), server.log()
    page.goto(f"{server.http}/watch/low")
    assert_plays_three_seconds(page)
    video = page.locator("#video")
    assert video.get_attribute("data-player-engine") == "hls.js"
    assert video.get_attribute("data-player-source") == "ll-hls"
    assert video.get_attribute("data-last-fatal-error") is None
    assert not page_log.unexpected_console_errors(), page_log.console_errors
