"""Fixtures giving each test a freshly migrated catalogue on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from streamit.db import Database

PG_ENV = "STREAMIT_TEST_DATABASE_URL"


def _postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{PG_ENV} must point at a PostgreSQL server when CI=true")
    pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql+asyncpg://user@host:port/db")


async def _admin_connection(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL naming an empty database: a fresh SQLite file, or a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'catalogue.db'}"
        return
    admin_url = _postgres_admin_url()
    name = f"streamit_test_{secrets.token_hex(6)}"
    admin = await _admin_connection(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _admin_connection(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated :class:`Database` on ``database_url``, closed after the test."""
    database = Database(database_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()
