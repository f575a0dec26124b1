"""Schemathesis against the OpenAPI spec: no input yields a 5xx, every answer matches the schema.

The app runs in-process on a temporary SQLite database; a valid bearer token is sent with every request,
so owner operations are exercised past authentication (401s are tested in test_owner_api).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.python.asgi import shutdown_lifespans

from streamit.api import API_PREFIX, OPENAPI_URL, create_api_app
from streamit.config import Settings
from streamit.db import Database, KeyVault

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ClosesDatabase:
    """ASGI wrapper whose lifespan shutdown closes the database on the loop that used it."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


@pytest.fixture
def token_and_app(tmp_path: Path) -> Iterator[tuple[str, ClosesDatabase]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"

    async def prepare() -> str:
        db = Database(url)
        await db.upgrade()
        await db.streams.create("Existing", slug="existing")
        _, token = await db.tokens.create("schemathesis")
        await db.close()
        return token

    token = asyncio.run(prepare())
    # A fresh Database: its connections are opened on schemathesis' event loop, not the one above.
    db = Database(url, vault=KeyVault("schemathesis secret"))
    yield token, ClosesDatabase(create_api_app(db, Settings(data_dir=tmp_path)), db)
    shutdown_lifespans()


def test_api_conforms_to_its_schema(token_and_app: tuple[str, ClosesDatabase]) -> None:
    token, app = token_and_app
    schema = schemathesis.openapi.from_asgi(OPENAPI_URL, app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len([o for o in operations if o.path.startswith(f"{API_PREFIX}/streams")]) == 8
    headers = {"Authorization": f"Bearer {token}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        check()
