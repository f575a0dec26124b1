"""The studio over HTTP (httpx against the real app, SQLite and PostgreSQL): stream management and access."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database, KeyVault, MediaInfo, UserRecord
from streamit.web import install_web
from tests.db.conftest import database_url

__all__ = ["database_url"]

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse"
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class RecordingLiveControl:
    """Remembers which publishers the studio asked to disconnect."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    async def disconnect(self, stream_id: str, reason: str) -> None:
        self.calls.append((stream_id, reason))


@dataclass
class Studio:
    """The app with users ``alice`` (plain) and ``root`` (admin) and helpers to act as them."""

    db: Database
    settings: Settings
    live: RecordingLiveControl
    app: httpx.ASGITransport
    alice: UserRecord
    admin: UserRecord

    def client(self, base_url: str = "http://test", **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.app, base_url=base_url, **kwargs)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF_INPUT.search(html)
    assert found is not None, html
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, *, next_path: str = ""
) -> httpx.Response:
    """Fill in the sign-in form as a browser would (GET for the form and its cookie, then POST)."""
    form = await client.get("/studio/login")
    assert form.status_code == 200
    data = {"username": username, "password": password, "csrf_token": csrf_of(form.text), "next": next_path}
    return await client.post("/studio/login", data=data)


@asynccontextmanager
async def signed_in(studio: Studio, username: str = "alice") -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as ``username``."""
    async with studio.client() as client:
        response = await sign_in(client, username)
        assert response.status_code == 303, response.text
        yield client


async def page_csrf(client: httpx.AsyncClient, path: str = "/studio") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


@pytest.fixture
async def studio(database_url: str, tmp_path: Path) -> AsyncIterator[Studio]:
    settings = Settings(data_dir=tmp_path, rtmp_public_url="rtmp://ingest.example.com/live")
    db = Database(database_url, vault=KeyVault.from_settings(None, tmp_path), password_hasher=FAST_HASHER)
    await db.upgrade()
    alice = await db.users.create("alice", PASSWORD)
    admin = await db.users.create("root", PASSWORD, is_admin=True)
    await db.users.create("bob", PASSWORD)
    live = RecordingLiveControl()
    app = create_api_app(db, settings, live=live)
    install_web(app, db, settings, live=live)
    try:
        yield Studio(db, settings, live, httpx.ASGITransport(app=app), alice, admin)
    finally:
        await db.close()


async def test_signed_out_pages_redirect_to_sign_in(studio: Studio) -> None:
    record, _ = await studio.db.streams.create("Show", owner_id=studio.alice.id)
    async with studio.client() as client:
        for path, expected_next in (
            ("/studio", "/studio"),
            ("/studio/new", "/studio/new"),
            (f"/studio/streams/{record.slug}", f"/studio/streams/{record.slug}"),
            (f"/studio/streams/{record.slug}/edit?x=1", f"/studio/streams/{record.slug}/edit%3Fx%3D1"),
        ):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/studio/login?next={expected_next}"
        for path in ("/studio/new", f"/studio/streams/{record.slug}/delete", "/studio/logout"):
            response = await client.post(path, data={"title": "x"})
            assert response.status_code == 303 and response.headers["location"] == "/studio/login"
        reveal = await client.post(f"/studio/streams/{record.slug}/key")
        assert reveal.status_code == 401
        history = await client.get(f"/studio/streams/{record.slug}/sessions")
        assert history.status_code == 401
    assert await studio.db.streams.get(record.slug) is not None
    assert len(await studio.db.streams.list()) == 1


async def test_create_edit_and_list_own_streams(studio: Studio) -> None:
    async with signed_in(studio) as client:
        empty = await client.get("/studio")
        assert "You have no streams yet" in empty.text
        token = await page_csrf(client, "/studio/new")
        created = await client.post(
            "/studio/new",
            data={"title": "Morning <Show>", "slug": "", "description": "Coffee & code", "csrf_token": token},
        )
        assert created.status_code == 303
        slug = created.headers["location"].rsplit("/", 1)[1]
        record = await studio.db.streams.get(slug)
        assert record is not None and record.owner_id == studio.alice.id
        assert record.title == "Morning <Show>" and record.description == "Coffee & code"
        listing = await client.get("/studio")
        assert "Morning &lt;Show&gt;" in listing.text and "<Show>" not in listing.text
        assert "DRAFT" in listing.text

        page = await client.get(f"/studio/streams/{slug}")
        assert page.status_code == 200
        assert "rtmp://ingest.example.com/live" in page.text
        assert "Service: Custom" in page.text and "Keyframe Interval" in page.text
        assert page.headers["cache-control"] == "no-store"

        token = await page_csrf(client, f"/studio/streams/{slug}/edit")
        edited = await client.post(
            f"/studio/streams/{slug}/edit",
            data={"title": "Evening show", "slug": "evening", "description": "", "csrf_token": token},
        )
        assert edited.status_code == 303 and edited.headers["location"] == "/studio/streams/evening"
        renamed = await studio.db.streams.get("evening")
        assert renamed is not None and renamed.title == "Evening show" and renamed.description == ""
        assert await studio.db.streams.get(slug) is None


async def test_invalid_forms_are_shown_again_with_the_error(studio: Studio) -> None:
    await studio.db.streams.create("Taken", slug="taken")
    async with signed_in(studio) as client:
        token = await page_csrf(client, "/studio/new")
        for data, message in (
            ({"title": "   ", "slug": ""}, "title must be"),
            ({"title": "Fine", "slug": "Bad Slug!"}, "slug"),
            ({"title": "Fine", "slug": "taken"}, "already in use"),
            ({"title": "Fine", "slug": "", "description": "x" * 5001}, "description must be"),
        ):
            response = await client.post("/studio/new", data={**data, "csrf_token": token})
            assert response.status_code == 422, data
            assert message in response.text and 'role="alert"' in response.text
            assert f'value="{data["title"]}"' in response.text
    assert [s.slug for s in await studio.db.streams.list()] == ["taken"]


async def test_users_see_only_their_streams_and_admins_see_all(studio: Studio) -> None:
    mine, _ = await studio.db.streams.create("Alice show", owner_id=studio.alice.id)
    bobs_owner = await studio.db.users.get_by_username("bob")
    assert bobs_owner is not None
    theirs, _ = await studio.db.streams.create("Bob show", owner_id=bobs_owner.id)
    orphan, _ = await studio.db.streams.create("CLI show")
    async with signed_in(studio) as alice:
        listing = await alice.get("/studio")
        assert "Alice show" in listing.text
        assert "Bob show" not in listing.text and "CLI show" not in listing.text
        token = csrf_of(listing.text)
        for slug in (theirs.slug, orphan.slug, "no-such-stream"):
            for path in (
                f"/studio/streams/{slug}",
                f"/studio/streams/{slug}/edit",
                f"/studio/streams/{slug}/delete",
            ):
                assert (await alice.get(path)).status_code == 404, path
            for path in (f"/studio/streams/{slug}/delete", f"/studio/streams/{slug}/rotate-key"):
                assert (await alice.post(path, data={"csrf_token": token})).status_code == 404, path
            edit = await alice.post(
                f"/studio/streams/{slug}/edit", data={"title": "Hijacked", "slug": "", "csrf_token": token}
            )
            assert edit.status_code == 404
            reveal = await alice.post(f"/studio/streams/{slug}/key", headers={"X-CSRF-Token": token})
            assert reveal.status_code == 404
            assert (await alice.get(f"/studio/streams/{slug}/sessions")).status_code == 404
        assert (await alice.get(f"/studio/streams/{mine.slug}")).status_code == 200
    assert [s.title for s in await studio.db.streams.list()].count("Hijacked") == 0
    assert await studio.db.streams.get(theirs.slug) is not None
    assert studio.live.calls == []
    async with signed_in(studio, "root") as admin:
        listing = await admin.get("/studio")
        assert all(title in listing.text for title in ("Alice show", "Bob show", "CLI show"))
        assert "All streams" in listing.text and "(admin)" in listing.text
        assert '<th scope="col">Owner</th>' in listing.text
        assert "<td>alice</td>" in listing.text and "<td>bob</td>" in listing.text
        assert "none (CLI/API)" in listing.text
        assert (await admin.get(f"/studio/streams/{orphan.slug}")).status_code == 200


async def test_reveal_needs_the_csrf_header_and_returns_the_key(studio: Studio) -> None:
    record, key = await studio.db.streams.create("Show", owner_id=studio.alice.id)
    async with signed_in(studio) as client:
        page = await client.get(f"/studio/streams/{record.slug}")
        assert key not in page.text  # hidden until revealed
        token = csrf_of(page.text)
        url = f"/studio/streams/{record.slug}/key"
        assert (await client.post(url)).status_code == 403
        assert (await client.post(url, headers={"X-CSRF-Token": token[:-1] + "x"})).status_code == 403
        assert (await client.post(url, data={"csrf_token": token})).status_code == 403  # header only
        foreign = await client.post(url, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert (await client.get(url)).status_code == 405
        revealed = await client.post(url, headers={"X-CSRF-Token": token, "Origin": "http://test"})
        assert revealed.status_code == 200
        assert revealed.headers["cache-control"] == "no-store"
        assert revealed.json() == {
            "stream_key": key,
            "server": "rtmp://ingest.example.com/live",
            "publish_url": f"rtmp://ingest.example.com/live/{key}",
        }


async def test_reveal_of_a_key_that_cannot_be_decrypted_says_rotate(studio: Studio) -> None:
    plain = Database(studio.db.engine.url.render_as_string(hide_password=False))
    try:
        record, _ = await plain.streams.create("Old key", owner_id=studio.alice.id)  # no vault: not stored
    finally:
        await plain.close()
    async with signed_in(studio) as client:
        token = await page_csrf(client, f"/studio/streams/{record.slug}")
        response = await client.post(f"/studio/streams/{record.slug}/key", headers={"X-CSRF-Token": token})
        assert response.status_code == 409 and "Rotate the key" in response.json()["detail"]


async def test_rotate_key_kills_the_old_key_and_kicks_the_publisher(studio: Studio) -> None:
    record, old_key = await studio.db.streams.create("Show", owner_id=studio.alice.id)
    async with signed_in(studio) as client:
        token = await page_csrf(client, f"/studio/streams/{record.slug}")
        missing = await client.post(f"/studio/streams/{record.slug}/rotate-key", data={})
        assert missing.status_code == 403 and "security token" in missing.text
        assert await studio.db.streams.find_by_key(old_key) is not None
        assert studio.live.calls == []
        rotated = await client.post(f"/studio/streams/{record.slug}/rotate-key", data={"csrf_token": token})
        assert rotated.status_code == 303
        assert rotated.headers["location"] == f"/studio/streams/{record.slug}?rotated=1"
        assert await studio.db.streams.find_by_key(old_key) is None
        assert studio.live.calls == [(record.id, "stream key rotated")]
        notice = await client.get(rotated.headers["location"])
        assert "The old key no longer works" in notice.text
        new = await client.post(f"/studio/streams/{record.slug}/key", headers={"X-CSRF-Token": token})
        new_key = new.json()["stream_key"]
        assert new_key != old_key
        found = await studio.db.streams.find_by_key(new_key)
        assert found is not None and found.id == record.id


async def test_delete_asks_first_then_deletes_and_kicks(studio: Studio) -> None:
    record, _ = await studio.db.streams.create("Doomed", owner_id=studio.alice.id)
    async with signed_in(studio) as client:
        confirm = await client.get(f"/studio/streams/{record.slug}/delete")
        assert confirm.status_code == 200 and "Delete “Doomed”?" in confirm.text
        token = csrf_of(confirm.text)
        refused = await client.post(f"/studio/streams/{record.slug}/delete", data={"csrf_token": "nope"})
        assert refused.status_code == 403
        assert await studio.db.streams.get(record.slug) is not None
        deleted = await client.post(f"/studio/streams/{record.slug}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303 and deleted.headers["location"] == "/studio"
        assert await studio.db.streams.get(record.slug) is None
        assert studio.live.calls == [(record.id, "stream deleted")]
        assert (await client.get(f"/studio/streams/{record.slug}")).status_code == 404


async def test_every_state_change_needs_the_csrf_token(studio: Studio) -> None:
    record, _ = await studio.db.streams.create("Show", slug="show", owner_id=studio.alice.id)
    async with signed_in(studio) as client:
        good = await page_csrf(client)
        for bad in ({}, {"csrf_token": ""}, {"csrf_token": good + "x"}, {"csrf_token": good.upper()}):
            for path, data in (
                ("/studio/new", {"title": "Sneaky"}),
                ("/studio/streams/show/edit", {"title": "Sneaky", "slug": ""}),
                ("/studio/streams/show/rotate-key", {}),
                ("/studio/streams/show/delete", {}),
                ("/studio/logout", {}),
            ):
                response = await client.post(path, data={**data, **bad})
                assert response.status_code == 403, (path, bad)
        # The right token from another site is refused too.
        for origin in ("https://evil.example", "null", "http://test.evil.example"):
            response = await client.post(
                "/studio/new", data={"title": "Sneaky", "csrf_token": good}, headers={"Origin": origin}
            )
            assert response.status_code == 403, origin
        same_site = await client.post(
            "/studio/new", data={"title": "Fine", "csrf_token": good}, headers={"Origin": "http://test"}
        )
        assert same_site.status_code == 303
    titles = [s.title for s in await studio.db.streams.list()]
    assert "Sneaky" not in titles and "Fine" in titles
    assert (await studio.db.streams.get("show")) == record


async def test_session_history_is_shown_and_served_as_json(studio: Studio) -> None:
    record, _ = await studio.db.streams.create("Show", owner_id=studio.alice.id)
    started = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    session = await studio.db.sessions.open(
        record.id, node="n1", remote_addr="203.0.113.5", started_at=started
    )
    await studio.db.sessions.update(session.id, media=MediaInfo(video_codec="h264", width=1280, height=720))
    await studio.db.sessions.close(
        session.id, ended_at=started.replace(minute=12, second=7), end_reason="unpublish", bytes_in=1000
    )
    async with signed_in(studio) as client:
        page = await client.get(f"/studio/streams/{record.slug}")
        assert "2026-11-20T18:00:00+00:00" in page.text and "12 min 07 s" in page.text
        assert "unpublish" in page.text and "h264 1280×720" in page.text
        history = await client.get(f"/studio/streams/{record.slug}/sessions")
        assert history.status_code == 200
        (row,) = history.json()["sessions"]
        assert row["duration"] == "12 min 07 s" and row["end_reason"] == "unpublish"
        assert row["remote_addr"] == "203.0.113.5"


async def test_pages_follow_the_csp_rules(studio: Studio) -> None:
    """No inline scripts or style attributes: the Content-Security-Policy would block them."""
    record, _ = await studio.db.streams.create("Show", owner_id=studio.alice.id)
    async with signed_in(studio) as client:
        for path in (
            "/studio",
            "/studio/new",
            f"/studio/streams/{record.slug}",
            f"/studio/streams/{record.slug}/edit",
            f"/studio/streams/{record.slug}/delete",
        ):
            html = (await client.get(path)).text
            assert "style=" not in html, path
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
            assert not re.search(r"\son[a-z]+=", html), path
        css = await client.get("/static/css/studio.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        js = await client.get("/static/js/studio.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    async with studio.client() as anonymous:
        html = (await anonymous.get("/studio/login")).text
        assert "style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
