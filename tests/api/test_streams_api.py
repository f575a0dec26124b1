"""The public stream API through an ASGI transport: JSON shapes, 404/422 problem bodies, no keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from streamit.api import create_api_app, install_error_handlers
from streamit.config import Settings
from streamit.db import Database, MediaInfo

STREAM_KEYS = {
    "id",
    "slug",
    "title",
    "description",
    "status",
    "started_at",
    "ended_at",
    "playback",
    "media",
    "bitrate_kbps",
    "viewers",
}
PROBLEM_KEYS = {"type", "title", "status", "detail"}
STARTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, public_url="https://live.example.com/", http_port=9999)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api_app(db, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str) and body["title"]
    return body  # type: ignore[no-any-return]


async def test_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/streams")
    assert response.status_code == 200
    assert response.json() == {"streams": []}


async def test_draft_stream_json_shape(client: httpx.AsyncClient, db: Database) -> None:
    record, key = await db.streams.create("Cooking Live", description="pasta")
    response = await client.get(f"/api/v1/streams/{record.slug}")
    assert response.status_code == 200
    assert key not in response.text
    assert response.json() == {
        "id": record.id,
        "slug": "cooking-live",
        "title": "Cooking Live",
        "description": "pasta",
        "status": "DRAFT",
        "started_at": None,
        "ended_at": None,
        "playback": {"hls": None, "llhls": None},
        "media": {"video": None, "audio": None},
        "bitrate_kbps": None,
        "viewers": 0,
    }


async def test_live_stream_json_shape(client: httpx.AsyncClient, db: Database) -> None:
    record, key = await db.streams.create("Live Now")
    await db.streams.mark_live(record.id, STARTED)
    await db.streams.update_live_info(
        record.id,
        media=MediaInfo("h264", 1920, 1080, 30.0, "aac", 48000, 2),
        bitrate_kbps=4500,
        viewers=12,
    )
    response = await client.get(f"/api/v1/streams/{record.slug}")
    body = response.json()
    assert set(body) == STREAM_KEYS
    assert key not in response.text
    assert body["status"] == "LIVE"
    assert datetime.fromisoformat(body["started_at"]) == STARTED
    assert body["ended_at"] is None
    assert body["playback"] == {
        "hls": "https://live.example.com/hls/live-now/index.m3u8",
        "llhls": "https://live.example.com/hls/live-now/ll.m3u8",
    }
    assert body["media"] == {
        "video": {"codec": "h264", "width": 1920, "height": 1080, "fps": 30.0},
        "audio": {"codec": "aac", "sample_rate": 48000, "channels": 2},
    }
    assert body["bitrate_kbps"] == 4500 and body["viewers"] == 12


async def test_audio_only_stream_has_null_video(client: httpx.AsyncClient, db: Database) -> None:
    record, _ = await db.streams.create("Radio")
    await db.streams.mark_live(record.id, STARTED)
    await db.streams.update_live_info(
        record.id, media=MediaInfo(audio_codec="aac", sample_rate=44100, channels=1)
    )
    body = (await client.get(f"/api/v1/streams/{record.slug}")).json()
    assert body["media"] == {"video": None, "audio": {"codec": "aac", "sample_rate": 44100, "channels": 1}}


async def test_ended_stream_has_no_playback(client: httpx.AsyncClient, db: Database) -> None:
    record, _ = await db.streams.create("Was Live")
    await db.streams.mark_live(record.id, STARTED)
    await db.streams.mark_ended(record.id, STARTED.replace(hour=6))
    body = (await client.get(f"/api/v1/streams/{record.slug}")).json()
    assert body["status"] == "ENDED"
    assert body["playback"] == {"hls": None, "llhls": None}
    assert datetime.fromisoformat(body["ended_at"]) == STARTED.replace(hour=6)


async def test_list_and_status_filter(client: httpx.AsyncClient, db: Database) -> None:
    draft, k1 = await db.streams.create("Draft One")
    live, k2 = await db.streams.create("Live One")
    await db.streams.mark_live(live.id, STARTED)
    everything = await client.get("/api/v1/streams")
    assert [s["slug"] for s in everything.json()["streams"]] == [live.slug, draft.slug]
    assert all(set(s) == STREAM_KEYS for s in everything.json()["streams"])
    for key in (k1, k2):
        assert key not in everything.text
    only_live = await client.get("/api/v1/streams", params={"status": "LIVE"})
    assert [s["slug"] for s in only_live.json()["streams"]] == [live.slug]
    ended = await client.get("/api/v1/streams?status=ENDED")
    assert ended.json() == {"streams": []}


async def test_playback_route(client: httpx.AsyncClient, db: Database) -> None:
    record, key = await db.streams.create("Watch Me")
    before = await client.get(f"/api/v1/streams/{record.slug}/playback")
    assert before.status_code == 200
    assert before.json() == {
        "slug": "watch-me",
        "status": "DRAFT",
        "hls": None,
        "llhls": None,
        "started_at": None,
        "media": {"video": None, "audio": None},
    }
    await db.streams.mark_live(record.id, STARTED)
    await db.streams.update_live_info(record.id, media=MediaInfo("h264", 640, 360, 25.0, None, None, None))
    after = await client.get(f"/api/v1/streams/{record.slug}/playback")
    body = after.json()
    assert datetime.fromisoformat(body.pop("started_at")) == STARTED
    assert body == {
        "slug": "watch-me",
        "status": "LIVE",
        "hls": "https://live.example.com/hls/watch-me/index.m3u8",
        "llhls": "https://live.example.com/hls/watch-me/ll.m3u8",
        "media": {"video": {"codec": "h264", "width": 640, "height": 360, "fps": 25.0}, "audio": None},
    }
    assert key not in after.text


@pytest.mark.parametrize(
    "path",
    ["/api/v1/streams/nope", "/api/v1/streams/nope/playback", "/api/v1/streams/UPPER", "/api/v1/nothing"],
)
async def test_unknown_paths_are_404_problems(client: httpx.AsyncClient, path: str) -> None:
    body = assert_problem(await client.get(path), 404)
    assert body["title"] == "Not Found"


async def test_unknown_slug_detail_names_it(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/streams/missing-show"), 404)
    assert "missing-show" in str(body["detail"])


async def test_bad_status_is_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/api/v1/streams", params={"status": "ONAIR"}), 422)
    errors = body["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert errors[0]["loc"] == ["query", "status"]
    assert set(errors[0]) == {"loc", "msg", "type"}


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/streams")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api/openapi.json")).json()
    assert {"/api/v1/streams", "/api/v1/streams/{slug}", "/api/v1/streams/{slug}/playback"} <= set(
        spec["paths"]
    )
    stream_schema = spec["components"]["schemas"]["StreamOut"]
    assert set(stream_schema["properties"]) == STREAM_KEYS
    docs = await client.get("/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text
    assert (await client.get("/docs")).status_code == 404


async def test_database_down_is_503_problem(settings: Settings) -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    app = create_api_app(db, settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            response = await c.get("/api/v1/streams")
        body = assert_problem(response, 503)
        assert "nobody" not in response.text and "127.0.0.1" not in response.text
        assert body["detail"] == "The database is unavailable."
    finally:
        await db.close()


async def test_error_handlers_on_a_bare_app() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/n/{number}")
    async def number(number: int) -> dict[str, int]:
        return {"number": number}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/n/3")).json() == {"number": 3}
        assert_problem(await c.get("/n/three"), 422)
        assert_problem(await c.get("/elsewhere"), 404)
