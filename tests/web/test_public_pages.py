"""HTTP-level tests of the public pages: status codes, security headers, escaping, vendor files."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database, KeyVault, MediaInfo, StreamRecord
from streamit.web import install_web
from streamit.web.public import format_uptime
from streamit.web.templating import TEMPLATES_DIR
from streamit.web.vendor import MISSING_HLS_JS, VendorAssets, source_checkout_node_modules
from tests.conftest import IN_CI

HOSTILE_TITLE = '<script>alert("pwned")</script> & "friends"'


@dataclass
class Site:
    """The API app with the web pages installed, on a fresh SQLite catalogue."""

    client: httpx.AsyncClient
    db: Database
    settings: Settings

    async def live_stream(self, title: str, slug: str, **media: Any) -> StreamRecord:
        record, _key = await self.db.streams.create(title, slug=slug, description="")
        started = datetime.now(UTC) - timedelta(minutes=3, seconds=7)
        record = await self.db.streams.mark_live(record.id, started)
        if media:
            await self.db.streams.update_live_info(record.id, media=MediaInfo(**media), viewers=5)
        return record


SiteFactory = Callable[..., Coroutine[Any, Any, Site]]


@pytest.fixture
async def make_site(tmp_path: Path) -> AsyncIterator[SiteFactory]:
    """``await make_site(**settings)`` builds a site; everything is closed after the test."""
    opened: list[tuple[httpx.AsyncClient, Database]] = []

    async def make(**overrides: Any) -> Site:
        settings = Settings(data_dir=tmp_path, **overrides)
        db = Database(
            f"sqlite+aiosqlite:///{tmp_path / f'web{len(opened)}.db'}",
            vault=KeyVault.from_settings(None, tmp_path),
        )
        await db.upgrade()
        app = create_api_app(db, settings)
        install_web(app, db, settings)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        opened.append((client, db))
        return Site(client, db, settings)

    yield make
    for client, db in opened:
        await client.aclose()
        await db.close()


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site()


def csp_directives(response: httpx.Response) -> dict[str, list[str]]:
    header = response.headers["content-security-policy"]
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


class InlineCodeFinder(HTMLParser):
    """Collects inline scripts, style attributes, event-handler attributes and <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = True
            src = dict(attrs).get("src")
            if not src:
                self.problems.append("inline <script> without src")
            else:
                self.scripts.append(src)
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{name} handler on <{tag}>" for name in names if name.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script code: {data.strip()[:40]!r}")


def inline_code(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder


async def test_directory_empty_state_and_security_headers(site: Site) -> None:
    response = await site.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Nothing is live right now" in response.text
    assert 'id="stream-grid"' in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "blob:" in directives["worker-src"] and "blob:" in directives["media-src"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert 'aria-current="page"' in response.text


async def test_directory_lists_only_live_streams_with_facts(site: Site) -> None:
    await site.db.streams.create("Still a draft", slug="draft", description="")
    await site.live_stream("On air", "on-air", video_codec="h264", width=1280, height=720)
    response = await site.client.get("/")
    assert response.status_code == 200
    assert 'data-slug="on-air"' in response.text
    assert 'href="/watch/on-air"' in response.text
    assert "draft" not in response.text.lower().replace("still a draft", "")
    assert "Still a draft" not in response.text
    assert "1280×720" in response.text
    assert "3:07" in response.text or "3:08" in response.text
    assert ">5<" in response.text  # viewers
    assert "Nothing is live right now" in response.text  # present in the page but hidden
    assert 'id="directory-empty" class="empty-state" hidden' in response.text


async def test_titles_are_escaped(site: Site) -> None:
    await site.live_stream(HOSTILE_TITLE, "hostile")
    for path in ("/", "/watch/hostile"):
        response = await site.client.get(path)
        assert response.status_code == 200
        assert "<script>alert" not in response.text
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &#34;friends&#34;" in response.text


@pytest.mark.parametrize("path", ["/", "/watch/some-show", "/watch/missing"])
async def test_pages_have_no_inline_scripts_or_styles(site: Site, path: str) -> None:
    await site.db.streams.create("Some show", slug="some-show", description="About <b>it</b>")
    response = await site.client.get(path)
    finder = inline_code(response.text)
    assert finder.problems == []
    assert all(src.startswith("/static/js/") for src in finder.scripts)
    if response.status_code == 200:
        assert finder.scripts


def test_no_template_has_inline_scripts_or_styles() -> None:
    """Every template (public and studio) keeps to the CSP: no inline code to be refused at run time."""
    templates = sorted(TEMPLATES_DIR.rglob("*.html"))
    assert templates
    for template in templates:
        finder = inline_code(template.read_text())
        assert finder.problems == [], template.name


async def test_watch_page_states(site: Site) -> None:
    draft, _ = await site.db.streams.create("Draft show", slug="draft-show", description="Line one\nLine two")
    live = await site.live_stream("Live show", "live-show", video_codec="h264", width=640, height=360)
    ended = await site.live_stream("Ended show", "ended-show")
    await site.db.streams.mark_ended(ended.id, datetime.now(UTC))

    page = (await site.client.get("/watch/draft-show")).text
    assert 'data-state="offline"' in page and 'data-status="DRAFT"' in page
    assert "This stream is offline" in page
    assert 'id="slate-offline" class="slate" >' in page
    assert "Line one\nLine two" in page
    assert 'data-hls-url="/hls/draft-show/index.m3u8"' in page

    page = (await site.client.get(f"/watch/{live.slug}")).text
    assert 'data-state="live"' in page
    assert 'id="slate-offline" class="slate" hidden' in page
    assert "640×360" in page
    assert 'data-started-at="' + live.started_at.isoformat() + '"' in page  # type: ignore[union-attr]

    page = (await site.client.get(f"/watch/{ended.slug}")).text
    assert 'data-state="ended"' in page
    assert 'id="slate-ended" class="slate" >' in page
    assert ">ENDED<" in page
    assert draft.slug != ended.slug


async def test_unknown_slug_is_escaped_on_the_404_page(site: Site) -> None:
    response = await site.client.get("/watch/%3Cimg%20src=x%20onerror=%22alert(1)%22%3E")
    assert response.status_code == 404
    assert "<img" not in response.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in response.text


async def test_unknown_stream_is_an_html_404(site: Site) -> None:
    response = await site.client.get("/watch/no-such-stream")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Stream not found" in response.text
    assert "no-such-stream" in response.text
    assert "content-security-policy" in response.headers


async def test_hls_js_is_served_from_node_modules(site: Site) -> None:
    vendor = VendorAssets.locate(site.settings)
    if vendor.node_modules is None:
        if IN_CI:
            pytest.fail("hls.js is not installed (npm ci); under CI=true it must be")
        pytest.skip("hls.js is not installed (npm ci)")
    response = await site.client.get("/static/vendor/hls.min.js")
    assert response.status_code == 200
    assert 'data-hls-js="installed"' in (await site.client.get("/")).text
    assert response.content == (vendor.node_modules / "hls.js" / "dist" / "hls.min.js").read_bytes()
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    source_map = await site.client.get("/static/vendor/hls.min.js.map")
    assert source_map.status_code == 200
    assert source_map.headers["content-type"].startswith("application/json")
    assert (await site.client.get("/static/vendor/package.json")).status_code == 404
    assert (await site.client.get("/static/vendor/..%2Fpackage.json")).status_code == 404


async def test_own_static_files_are_served(site: Site) -> None:
    for path, kind in [
        ("/static/js/player.js", "javascript"),
        ("/static/js/watch.js", "javascript"),
        ("/static/js/directory.js", "javascript"),
        ("/static/css/site.css", "text/css"),
    ]:
        response = await site.client.get(path)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"]
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_missing_hls_js_is_logged_and_said_on_the_watch_page(
    make_site: SiteFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty-node-modules"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="streamit.web.vendor"):
        site = await make_site(web_vendor_dir=empty)
    assert [r.getMessage() for r in caplog.records if r.name == "streamit.web.vendor"] == [MISSING_HLS_JS]
    await site.db.streams.create("Show", slug="show", description="")
    page = (await site.client.get("/watch/show")).text
    assert 'data-hls-available="false"' in page
    assert 'data-hls-js="missing"' in page
    assert "not installed" in page and "npm ci" in page
    response = await site.client.get("/static/vendor/hls.min.js")
    assert response.status_code == 404
    assert "npm ci" in response.text


async def test_other_playback_origin_is_allowed_by_the_csp(make_site: SiteFactory) -> None:
    site = await make_site(playback_url="https://edge.example.com:8443/")
    await site.live_stream("Clustered", "clustered")
    response = await site.client.get("/watch/clustered")
    assert 'data-hls-url="https://edge.example.com:8443/hls/clustered/index.m3u8"' in response.text
    directives = csp_directives(response)
    assert "https://edge.example.com:8443" in directives["connect-src"]
    assert "https://edge.example.com:8443" in directives["media-src"]
    assert directives["script-src"] == ["'self'"]


async def test_api_responses_are_left_alone(site: Site) -> None:
    response = await site.client.get("/api/v1/streams")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


def test_vendor_lookup_order(tmp_path: Path) -> None:
    installed = tmp_path / "cwd" / "node_modules" / "hls.js" / "dist"
    installed.mkdir(parents=True)
    (installed / "hls.min.js").write_text("/* hls */")
    assert (
        VendorAssets.locate(Settings(), cwd=tmp_path / "cwd").node_modules
        == tmp_path / "cwd" / "node_modules"
    )
    # An explicit setting is the only place looked at.
    explicit = Settings(web_vendor_dir=tmp_path / "elsewhere")
    assert VendorAssets.locate(explicit, cwd=tmp_path / "cwd").node_modules is None
    # Without ./node_modules the source checkout's is used (when npm ci ran there).
    fallback = VendorAssets.locate(Settings(), cwd=tmp_path / "nowhere").node_modules
    assert fallback in (None, source_checkout_node_modules())


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (59.9, "0:59"), (61, "1:01"), (3600, "1:00:00"), (3723, "1:02:03"), (-5, "0:00")],
)
def test_format_uptime(seconds: float, text: str) -> None:
    assert format_uptime(seconds) == text
