"""The owner API on SQLite and PostgreSQL: tokens, create/update/delete, rotate-key, sessions, key privacy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from streamit.api.schemas import KEY_NOT_STORED
from streamit.db import Database, MediaInfo
from tests.api.conftest import OwnerApi
from tests.api.test_streams_api import PROBLEM_KEYS, STREAM_KEYS

OWNER_KEYS = STREAM_KEYS | {"created_at", "stream_key", "publish_url", "key_notice"}
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS and body["status"] == status
    return body


def unauthorized(response: httpx.Response) -> None:
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def create(api: OwnerApi, **body: Any) -> dict[str, Any]:
    response = await api.client.post("/api/v1/streams", json=body, headers=api.auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_returns_owner_view_with_working_key(owner_api: OwnerApi) -> None:
    body = await create(owner_api, title="Morning Show", description="coffee")
    assert set(body) == OWNER_KEYS
    assert (body["slug"], body["title"], body["description"], body["status"]) == (
        "morning-show",
        "Morning Show",
        "coffee",
        "DRAFT",
    )
    key = body["stream_key"]
    assert key.startswith("sk_") and body["publish_url"] == f"rtmp://ingest.example.com/live/{key}"
    assert body["key_notice"] is None
    found = await owner_api.db.streams.find_by_key(key)
    assert found is not None and found.id == body["id"]


async def test_create_with_slug_and_duplicates(owner_api: OwnerApi) -> None:
    body = await create(owner_api, title="Show", slug="my-slug")
    assert body["slug"] == "my-slug"
    conflict = await owner_api.client.post(
        "/api/v1/streams", json={"title": "Other", "slug": "my-slug"}, headers=owner_api.auth
    )
    assert "already in use" in problem(conflict, 409)["detail"]
    derived = await create(owner_api, title="Show")
    assert derived["slug"] == "show"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": 5},
        {"title": "ok", "slug": "Bad Slug"},
        {"title": "ok", "slug": "api"},
        {"title": "ok", "extra": 1},
        {"title": "ok", "description": None},
        [],
        "title",
    ],
)
async def test_create_invalid_bodies_are_422(owner_api: OwnerApi, payload: object) -> None:
    response = await owner_api.client.post("/api/v1/streams", json=payload, headers=owner_api.auth)
    problem(response, 422)
    assert await owner_api.db.streams.list() == []


async def test_malformed_json_is_422(owner_api: OwnerApi) -> None:
    headers = {**owner_api.auth, "content-type": "application/json"}
    response = await owner_api.client.post("/api/v1/streams", content=b'{"title": ', headers=headers)
    problem(response, 422)
    patch = await owner_api.client.patch("/api/v1/streams/x", content=b"\xff\xfe", headers=headers)
    problem(patch, 422)


ROUTES = [
    ("POST", "/api/v1/streams", {"title": "No auth"}),
    ("PATCH", "/api/v1/streams/existing", {"title": "x"}),
    ("DELETE", "/api/v1/streams/existing", None),
    ("POST", "/api/v1/streams/existing/rotate-key", None),
    ("GET", "/api/v1/streams/existing/sessions", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_owner_routes_need_a_valid_token(
    owner_api: OwnerApi, method: str, path: str, body: dict[str, str] | None
) -> None:
    await owner_api.db.streams.create("Existing", slug="existing")
    for headers in (
        {},
        {"Authorization": "Bearer st_wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {owner_api.token}"},
        {"Authorization": owner_api.token},
    ):
        response = await owner_api.client.request(method, path, json=body, headers=headers)
        unauthorized(response)
    record = await owner_api.db.streams.get("existing")
    assert record is not None and record.title == "Existing"
    assert owner_api.live.calls == []


async def test_revoked_token_is_401(owner_api: OwnerApi) -> None:
    _, other = await owner_api.db.tokens.create("temporary")
    headers = {"Authorization": f"Bearer {other}"}
    assert (await owner_api.client.get("/api/v1/streams/x/sessions", headers=headers)).status_code == 404
    assert await owner_api.db.tokens.revoke("temporary")
    response = await owner_api.client.get("/api/v1/streams", headers=headers)
    unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    unauthorized(await owner_api.client.post("/api/v1/streams", json={"title": "x"}, headers=headers))


async def test_public_and_owner_views_of_list_and_get(owner_api: OwnerApi) -> None:
    body = await create(owner_api, title="Dual")
    key = body["stream_key"]
    public_list = await owner_api.client.get("/api/v1/streams")
    public_one = await owner_api.client.get("/api/v1/streams/dual")
    for response in (public_list, public_one):
        assert response.status_code == 200
        assert key not in response.text and "stream_key" not in response.text
        assert "publish_url" not in response.text
    assert set(public_one.json()) == STREAM_KEYS
    owner_list = await owner_api.client.get("/api/v1/streams", headers=owner_api.auth)
    owner_one = await owner_api.client.get("/api/v1/streams/dual", headers=owner_api.auth)
    assert [s["stream_key"] for s in owner_list.json()["streams"]] == [key]
    assert set(owner_one.json()) == OWNER_KEYS
    assert owner_one.json()["stream_key"] == key
    assert owner_one.json()["publish_url"].endswith(key)


async def test_owner_list_filters_by_status(owner_api: OwnerApi) -> None:
    await create(owner_api, title="Draft")
    live = await create(owner_api, title="On Air")
    await owner_api.db.streams.mark_live(live["id"], T0)
    for headers in ({}, owner_api.auth):
        response = await owner_api.client.get("/api/v1/streams?status=LIVE", headers=headers)
        assert [s["slug"] for s in response.json()["streams"]] == ["on-air"]
        problem(await owner_api.client.get("/api/v1/streams?status=live", headers=headers), 422)


async def test_bad_token_on_public_routes_is_401(owner_api: OwnerApi) -> None:
    await create(owner_api, title="Public")
    headers = {"Authorization": "Bearer st_nope"}
    unauthorized(await owner_api.client.get("/api/v1/streams", headers=headers))
    unauthorized(await owner_api.client.get("/api/v1/streams/public", headers=headers))
    playback = await owner_api.client.get("/api/v1/streams/public/playback", headers=headers)
    assert playback.status_code == 200


async def test_rows_without_ciphertext_show_null_key_with_notice(owner_api: OwnerApi) -> None:
    plain = Database(str(owner_api.db.engine.url.render_as_string(hide_password=False)))
    try:
        await plain.streams.create("Old Stream", slug="old")
    finally:
        await plain.close()
    body = (await owner_api.client.get("/api/v1/streams/old", headers=owner_api.auth)).json()
    assert body["stream_key"] is None and body["publish_url"] is None
    assert body["key_notice"] == KEY_NOT_STORED
    rotated = await owner_api.client.post("/api/v1/streams/old/rotate-key", headers=owner_api.auth)
    again = (await owner_api.client.get("/api/v1/streams/old", headers=owner_api.auth)).json()
    assert again["stream_key"] == rotated.json()["stream_key"] is not None
    assert again["key_notice"] is None


async def test_patch_changes_fields(owner_api: OwnerApi) -> None:
    created = await create(owner_api, title="Before", description="d")
    response = await owner_api.client.patch(
        "/api/v1/streams/before", json={"title": "After"}, headers=owner_api.auth
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["description"], body["slug"]) == ("After", "d", "before")
    assert body["stream_key"] == created["stream_key"]
    moved = await owner_api.client.patch(
        "/api/v1/streams/before", json={"slug": "after", "description": ""}, headers=owner_api.auth
    )
    assert (moved.json()["slug"], moved.json()["description"]) == ("after", "")
    problem(await owner_api.client.get("/api/v1/streams/before"), 404)
    assert (await owner_api.client.get("/api/v1/streams/after")).status_code == 200
    empty = await owner_api.client.patch("/api/v1/streams/after", json={}, headers=owner_api.auth)
    assert empty.status_code == 200 and empty.json()["title"] == "After"


async def test_patch_errors(owner_api: OwnerApi) -> None:
    await create(owner_api, title="One")
    await create(owner_api, title="Two")
    auth = owner_api.auth
    problem(await owner_api.client.patch("/api/v1/streams/one", json={"slug": "two"}, headers=auth), 409)
    problem(await owner_api.client.patch("/api/v1/streams/nope", json={"title": "x"}, headers=auth), 404)
    for payload in ({"slug": "UPPER"}, {"slug": "streams"}, {"title": ""}, {"title": " "}, {"bogus": 1}):
        problem(await owner_api.client.patch("/api/v1/streams/one", json=payload, headers=auth), 422)
    record = await owner_api.db.streams.get("one")
    assert record is not None and record.title == "One"


async def test_delete_disconnects_and_removes(owner_api: OwnerApi) -> None:
    created = await create(owner_api, title="Doomed")
    await owner_api.db.sessions.open(created["id"], node="n", remote_addr="x", started_at=T0)
    response = await owner_api.client.delete("/api/v1/streams/doomed", headers=owner_api.auth)
    assert response.status_code == 204 and response.content == b""
    assert owner_api.live.calls == [(created["id"], "stream deleted")]
    assert await owner_api.db.streams.get("doomed") is None
    assert await owner_api.db.streams.find_by_key(created["stream_key"]) is None
    problem(await owner_api.client.delete("/api/v1/streams/doomed", headers=owner_api.auth), 404)


async def test_rotate_key_invalidates_old_key_and_disconnects(owner_api: OwnerApi) -> None:
    created = await create(owner_api, title="Rotating")
    old = created["stream_key"]
    response = await owner_api.client.post("/api/v1/streams/rotating/rotate-key", headers=owner_api.auth)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == OWNER_KEYS
    new = body["stream_key"]
    assert new != old and body["publish_url"].endswith(new)
    assert await owner_api.db.streams.find_by_key(old) is None
    found = await owner_api.db.streams.find_by_key(new)
    assert found is not None and found.id == created["id"]
    assert owner_api.live.calls == [(created["id"], "stream key rotated")]
    shown = await owner_api.client.get("/api/v1/streams/rotating", headers=owner_api.auth)
    assert shown.json()["stream_key"] == new
    problem(await owner_api.client.post("/api/v1/streams/nope/rotate-key", headers=owner_api.auth), 404)


async def test_sessions_route(owner_api: OwnerApi) -> None:
    created = await create(owner_api, title="Sessions")
    sessions = owner_api.db.sessions
    first = await sessions.open(created["id"], node="a", remote_addr="192.0.2.1:1", started_at=T0)
    await sessions.update(
        first.id,
        bytes_in=123_456,
        avg_bitrate_kbps=900,
        peak_bitrate_kbps=1200,
        media=MediaInfo("h264", 1280, 720, 30.0, "aac", 48000, 2),
    )
    await sessions.close(first.id, ended_at=T0 + timedelta(minutes=1), end_reason="unpublish")
    second = await sessions.open(
        created["id"], node="b", remote_addr="192.0.2.2:2", started_at=T0 + timedelta(hours=1)
    )
    response = await owner_api.client.get("/api/v1/streams/sessions/sessions", headers=owner_api.auth)
    assert response.status_code == 200
    listed = response.json()["sessions"]
    assert [s["id"] for s in listed] == [second.id, first.id]
    assert listed[0]["ended_at"] is None and listed[0]["end_reason"] is None
    old = listed[1]
    assert datetime.fromisoformat(old["started_at"]) == T0
    assert datetime.fromisoformat(old["ended_at"]) == T0 + timedelta(minutes=1)
    assert {
        k: old[k] for k in ("node", "remote_addr", "bytes_in", "avg_bitrate_kbps", "peak_bitrate_kbps")
    } == {
        "node": "a",
        "remote_addr": "192.0.2.1:1",
        "bytes_in": 123_456,
        "avg_bitrate_kbps": 900,
        "peak_bitrate_kbps": 1200,
    }
    assert (old["video_codec"], old["audio_codec"], old["width"], old["height"]) == ("h264", "aac", 1280, 720)
    assert old["end_reason"] == "unpublish"
    problem(await owner_api.client.get("/api/v1/streams/nope/sessions", headers=owner_api.auth), 404)


async def test_openapi_documents_security_and_problems(owner_api: OwnerApi) -> None:
    spec = (await owner_api.client.get("/api/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `streamit tokens create --name NAME`.",
    }
    paths = spec["paths"]
    assert paths["/api/v1/streams"]["post"]["security"] == [{"BearerToken": []}]
    assert {} in paths["/api/v1/streams"]["get"]["security"]
    assert "security" not in paths["/api/v1/streams/{slug}/playback"]["get"]
    created = paths["/api/v1/streams"]["post"]["responses"]
    assert set(created) == {"201", "401", "409", "422"}
    assert set(created["422"]["content"]) == {"application/problem+json"}
    assert "stream_key" not in spec["components"]["schemas"]["StreamOut"]["properties"]
    assert "stream_key" in spec["components"]["schemas"]["OwnerStreamOut"]["properties"]
