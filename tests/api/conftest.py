"""API fixtures: an owner-ready app on SQLite and (when configured) PostgreSQL, with a valid token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database, KeyVault
from tests.db.conftest import database_url

__all__ = ["database_url"]


@dataclass
class RecordingLiveControl:
    """A LiveControl that remembers which publishers it was asked to disconnect."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    async def disconnect(self, stream_id: str, reason: str) -> None:
        self.calls.append((stream_id, reason))


@dataclass
class OwnerApi:
    """Everything an owner-API test needs."""

    client: httpx.AsyncClient
    db: Database
    settings: Settings
    token: str
    live: RecordingLiveControl

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def owner_api(database_url: str, tmp_path: Path) -> AsyncIterator[OwnerApi]:
    settings = Settings(
        data_dir=tmp_path,
        public_url="https://live.example.com",
        rtmp_public_url="rtmp://ingest.example.com/live",
    )
    db = Database(database_url, vault=KeyVault.from_settings(None, tmp_path))
    await db.upgrade()
    _, token = await db.tokens.create("tests")
    live = RecordingLiveControl()
    app = create_api_app(db, settings, live=live)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            yield OwnerApi(client, db, settings, token, live)
    finally:
        await db.close()
