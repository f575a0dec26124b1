"""Arbitrary client input never makes the API fail with anything but a JSON 404/422 (or a 200)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database


async def _probe(url: str, app_settings: Settings, paths: list[str], statuses: list[str]) -> None:
    # A Database per event loop: pooled connections belong to the loop that opened them.
    db = Database(url)
    app = create_api_app(db, app_settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path in paths:
            for suffix in ("", "/playback"):
                response = await client.get(f"/api/v1/streams/{path}{suffix}")
                assert response.status_code in {200, 404}, (path, response.status_code)
                if response.status_code == 404:
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert response.json()["status"] == 404
                else:
                    assert "sk_" not in response.text
        for status in statuses:
            response = await client.get("/api/v1/streams", params={"status": status})
            assert response.status_code in {200, 422}
            assert response.json()
    await db.close()


def test_any_slug_or_status_gets_a_json_answer(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    app_settings = Settings(data_dir=tmp_path)

    async def prepare() -> None:
        db = Database(url)
        await db.upgrade()
        await db.streams.create("Existing", slug="existing")
        await db.close()

    asyncio.run(prepare())

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        paths=st.lists(st.text(min_size=1).map(lambda t: quote(t, safe="")), max_size=3).map(
            lambda found: [*found, "existing"]
        ),
        statuses=st.lists(st.one_of(st.sampled_from(["LIVE", "DRAFT", "ENDED"]), st.text()), max_size=3),
    )
    # An encoded "/" once made the path end in a slash and drew a redirect instead of a 404.
    @example(paths=["%2F", "existing"], statuses=[])
    def check(paths: list[str], statuses: list[str]) -> None:
        asyncio.run(_probe(url, app_settings, paths, statuses))

    check()
