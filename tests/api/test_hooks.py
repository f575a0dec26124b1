"""Incoming nginx-rtmp hooks through an ASGI transport, fed with the forms nginx-rtmp 1.2.2 really sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamit.api import create_api_app, install_error_handlers
from streamit.api.hooks import HOOKS_PREFIX, create_hooks_router
from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.hooks import WebhookDispatcher, parse_form
from tests.hooks.conftest import nginx_capture

CAPTURED_KEY = "sk_Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1"


def nginx_form(capture: str, *, name: str, addr: str = "127.0.0.1") -> bytes:
    """A real nginx-rtmp body with another name and address (same bytes otherwise)."""
    raw = nginx_capture(capture)
    raw = raw.replace(f"name={CAPTURED_KEY}".encode(), f"name={quote(name, safe='')}".encode())
    return raw.replace(b"addr=127.0.0.1&", f"addr={addr}&".encode())


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, webhook_urls=["http://127.0.0.1:9/never-started"])


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hooks.db'}")
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def webhooks(app_settings: Settings) -> WebhookDispatcher:
    return WebhookDispatcher(app_settings)  # never started: emitted events stay queued for inspection


def hooks_app(db: Database, app_settings: Settings, webhooks: WebhookDispatcher | None = None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(create_hooks_router(db, app_settings, webhooks=webhooks))
    return app


@pytest.fixture
async def client(
    db: Database, app_settings: Settings, webhooks: WebhookDispatcher
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hooks_app(db, app_settings, webhooks))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def stream(db: Database) -> tuple[StreamRecord, str]:
    return await db.streams.create("Cooking Live", slug="cooking-live")


async def hook(client: httpx.AsyncClient, call: str, body: bytes, *, method: str = "POST") -> httpx.Response:
    url = f"{HOOKS_PREFIX}/{call}"
    if method == "GET":
        return await client.get(f"{url}?{body.decode()}")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await client.post(url, content=body, headers=headers)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_valid_key_redirects_to_slug_and_goes_live(
    client: httpx.AsyncClient, db: Database, stream: tuple[StreamRecord, str], method: str
) -> None:
    record, key = stream
    capture = "on_publish_post" if method == "POST" else "on_publish_get"
    response = await hook(
        client, "on_publish", nginx_form(capture, name=key, addr="203.0.113.7"), method=method
    )
    assert response.status_code == 302
    assert response.headers["location"] == "cooking-live"
    assert key not in response.text and key not in str(response.headers)
    live = await db.streams.get("cooking-live")
    assert live is not None and live.status is StreamStatus.LIVE and live.started_at is not None
    (session,) = await db.sessions.open_for_stream(record.id)
    assert session.node == "nginx-rtmp" and session.remote_addr == "203.0.113.7"


@pytest.mark.parametrize("name", ["sk_wrong", "", "cooking-live", "x" * 500])
async def test_anything_but_a_valid_key_is_refused(
    client: httpx.AsyncClient, db: Database, stream: tuple[StreamRecord, str], name: str
) -> None:
    response = await hook(client, "on_publish", nginx_form("on_publish_post", name=name))
    assert response.status_code == 403
    assert "location" not in response.headers
    record = await db.streams.get("cooking-live")
    assert record is not None and record.status is StreamStatus.DRAFT
    assert await db.sessions.open_for_stream(stream[0].id) == []


async def test_publisher_args_cannot_change_the_name(
    client: httpx.AsyncClient, stream: tuple[StreamRecord, str]
) -> None:
    body = nginx_form("on_publish_post", name="sk_wrong") + f"&name={stream[1]}".encode()
    assert (await hook(client, "on_publish", body)).status_code == 403


async def test_second_publisher_is_refused_and_its_done_keeps_the_first(
    client: httpx.AsyncClient, db: Database, stream: tuple[StreamRecord, str]
) -> None:
    record, key = stream
    first = await hook(client, "on_publish", nginx_form("on_publish_post", name=key, addr="10.0.0.1"))
    assert first.status_code == 302
    second = await hook(client, "on_publish", nginx_form("on_publish_post", name=key, addr="10.0.0.2"))
    assert second.status_code == 403
    # nginx-rtmp sends on_publish_done for the refused publish too.
    done = await hook(
        client, "on_publish_done", nginx_form("on_publish_done_post", name=key, addr="10.0.0.2")
    )
    assert done.status_code == 204
    live = await db.streams.get("cooking-live")
    assert live is not None and live.status is StreamStatus.LIVE
    assert [s.remote_addr for s in await db.sessions.open_for_stream(record.id)] == ["10.0.0.1"]


@pytest.mark.parametrize("name_kind", ["key", "slug"])
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_publish_done_closes_session_and_ends(
    client: httpx.AsyncClient,
    db: Database,
    stream: tuple[StreamRecord, str],
    webhooks: WebhookDispatcher,
    name_kind: str,
    method: str,
) -> None:
    record, key = stream
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key))
    name = key if name_kind == "key" else record.slug
    capture = "on_publish_done_post" if method == "POST" else "on_publish_done_get"
    response = await hook(client, "on_publish_done", nginx_form(capture, name=name), method=method)
    assert response.status_code == 204
    ended = await db.streams.get("cooking-live")
    assert ended is not None and ended.status is StreamStatus.ENDED and ended.ended_at is not None
    assert await db.sessions.open_for_stream(record.id) == []
    (session,) = await db.sessions.list_for_stream(record.id)
    assert session.end_reason == "unpublish" and session.ended_at == ended.ended_at
    assert webhooks.stats.pending == 2  # stream.live, stream.ended


async def test_publish_done_for_unknown_stream_is_404(client: httpx.AsyncClient) -> None:
    response = await hook(client, "on_publish_done", nginx_form("on_publish_done_post", name="sk_nope"))
    assert response.status_code == 404


async def test_update_allows_until_key_is_rotated(
    client: httpx.AsyncClient, db: Database, stream: tuple[StreamRecord, str]
) -> None:
    _record, key = stream
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key))
    for method in ("POST", "GET"):
        capture = "on_update_post" if method == "POST" else "on_update_get"
        response = await hook(client, "on_update", nginx_form(capture, name=key), method=method)
        assert response.status_code == 200
    await db.streams.rotate_key("cooking-live")
    response = await hook(client, "on_update", nginx_form("on_update_post", name=key))
    assert response.status_code == 403  # nginx-rtmp drops the publisher on a non-2xx on_update


async def test_update_by_slug_needs_the_publishing_address(
    client: httpx.AsyncClient, stream: tuple[StreamRecord, str]
) -> None:
    await hook(client, "on_publish", nginx_form("on_publish_post", name=stream[1], addr="10.0.0.1"))
    same = await hook(client, "on_update", nginx_form("on_update_post", name="cooking-live", addr="10.0.0.1"))
    other = await hook(
        client, "on_update", nginx_form("on_update_post", name="cooking-live", addr="10.9.9.9")
    )
    assert (same.status_code, other.status_code) == (200, 403)


async def test_update_play_of_the_relay(client: httpx.AsyncClient, stream: tuple[StreamRecord, str]) -> None:
    relay = nginx_capture("on_update_play_post")
    assert parse_form(relay)["call"] == "update_play"
    known = relay.replace(b"name=renamed-slug", b"name=cooking-live")
    assert (await hook(client, "on_update", known)).status_code == 200
    assert (await hook(client, "on_update", relay)).status_code == 404


async def test_malformed_forms_get_400(client: httpx.AsyncClient) -> None:
    assert (await hook(client, "on_publish", b"name=%ff")).status_code == 400
    assert (await hook(client, "on_publish_done", b"name=" + b"a" * 10_000)).status_code == 400
    assert (await hook(client, "on_update", b"call=update_publish\xff")).status_code == 400
    assert (await hook(client, "on_update", b"call=play&name=x")).status_code == 403
    assert (await hook(client, "on_publish", b"call=play&name=x")).status_code == 403


async def test_key_is_never_logged(
    client: httpx.AsyncClient, stream: tuple[StreamRecord, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    key = stream[1]
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key))
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key))
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key + "x"))
    await hook(client, "on_publish_done", nginx_form("on_publish_done_post", name=key))
    assert caplog.records
    assert key not in caplog.text


def test_arbitrary_bodies_never_fail_the_server(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    app_settings = Settings(data_dir=tmp_path)

    async def prepare() -> None:
        db = Database(url)
        await db.upgrade()
        await db.streams.create("Existing", slug="existing")
        await db.close()

    async def probe(call: str, body: bytes, method: str) -> None:
        db = Database(url)
        transport = httpx.ASGITransport(app=hooks_app(db, app_settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            if method == "GET":
                response = await client.get(f"{HOOKS_PREFIX}/{call}", params={"q": body.decode("latin-1")})
            else:
                response = await client.post(f"{HOOKS_PREFIX}/{call}", content=body)
        await db.close()
        assert response.status_code in {200, 204, 400, 403, 404}, response.text

    asyncio.run(prepare())

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        call=st.sampled_from(["on_publish", "on_update", "on_publish_done"]),
        body=st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda call, name: f"call={call}&name={name}".encode(),
                st.sampled_from(["publish", "update_publish", "update_play", "publish_done", ""]),
                st.sampled_from(["existing", "sk_x", "", "%ff", "a" * 200]),
            ),
        ),
        method=st.sampled_from(["GET", "POST"]),
    )
    def check(call: str, body: bytes, method: str) -> None:
        asyncio.run(probe(call, body, method))

    check()


async def test_api_app_serves_the_hooks(db: Database, app_settings: Settings) -> None:
    transport = httpx.ASGITransport(app=create_api_app(db, app_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await hook(client, "on_publish", nginx_form("on_publish_post", name="sk_unknown"))
        schema = (await client.get("/api/openapi.json")).json()
    assert response.status_code == 403
    assert f"{HOOKS_PREFIX}/on_publish" in schema["paths"]


async def test_publish_done_after_key_rotation_still_ends(
    client: httpx.AsyncClient, db: Database, stream: tuple[StreamRecord, str]
) -> None:
    record, key = stream
    await hook(client, "on_publish", nginx_form("on_publish_post", name=key))
    await db.streams.rotate_key("cooking-live")
    assert (await hook(client, "on_update", nginx_form("on_update_post", name=key))).status_code == 403
    # nginx-rtmp drops the publisher and reports it with the old key.
    response = await hook(client, "on_publish_done", nginx_form("on_publish_done_post", name=key))
    assert response.status_code == 204
    ended = await db.streams.get("cooking-live")
    assert ended is not None and ended.status is StreamStatus.ENDED
    assert await db.sessions.open_for_stream(record.id) == []
    again = await hook(client, "on_publish_done", nginx_form("on_publish_done_post", name=key))
    assert again.status_code == 404
