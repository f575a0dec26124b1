"""Alembic migrations from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from streamit.db import Database, KeyVault, MediaInfo, StreamRecord, StreamStatus
from streamit.db.database import MIGRATIONS_DIR
from streamit.db.keys import generate_stream_key, hash_stream_key
from streamit.db.models import Base

ALL_TABLES = {"streams", "api_tokens", "publish_sessions", "users", "web_sessions", "alembic_version"}


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_from_empty_reaches_head_and_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        if database_url.startswith("sqlite"):
            assert not Path(make_url(database_url).database or "").exists()
        else:
            async with db.engine.connect() as conn:
                assert await conn.run_sync(_tables) == set()
        await db.upgrade()
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == ALL_TABLES
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert versions == [_head()]
        record, _ = await db.streams.create("After migration")
        assert await db.streams.get(record.slug) == record
    finally:
        await db.close()


async def test_models_match_migrations(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await db.close()


async def test_indexes_for_lookups(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()

        def unique_columns(connection: Connection) -> set[tuple[str, ...]]:
            inspector = inspect(connection)
            found = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("streams")}
            found |= {
                tuple(str(n) for n in i["column_names"])
                for i in inspector.get_indexes("streams")
                if i["unique"]
            }
            return found

        async with db.engine.connect() as conn:
            uniques = await conn.run_sync(unique_columns)
        assert ("slug",) in uniques
        assert ("key_hash",) in uniques
    finally:
        await db.close()


async def test_sqlite_upgrade_creates_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "streamit.db"
    db = Database(f"sqlite+aiosqlite:///{target}")
    try:
        await db.upgrade()
    finally:
        await db.close()
    assert target.is_file()


async def test_in_memory_sqlite_keeps_schema_across_sessions() -> None:
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        await db.upgrade()
        record, key = await db.streams.create("Memory")
        found = await db.streams.find_by_key(key)
        assert found is not None and found.id == record.id
    finally:
        await db.close()


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    db = Database(database_url)

    def downgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    try:
        await db.upgrade()
        async with db.engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == {"alembic_version"}
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == ALL_TABLES
    finally:
        await db.close()


def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}


async def test_0002_down_to_0001_and_up_again_keeps_streams(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade()
        record, key = await db.streams.create("Survivor", slug="survivor")
        await db.tokens.create("ci")
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_config(c), "0001"))
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == {"streams", "alembic_version"}
            assert "key_ciphertext" not in await conn.run_sync(_columns, "streams")
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert versions == ["0001"]
        # Going back down must keep the status CHECK constraint (SQLite rebuilds the table to drop a column).
        async with db.engine.connect() as conn:
            checks = await conn.run_sync(lambda c: inspect(c).get_check_constraints("streams"))
        assert [c["name"] for c in checks] == ["ck_streams_stream_status"]
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
        found = await db.streams.find_by_key(key)
        assert found is not None and found.id == record.id
        assert await db.tokens.list() == []
    finally:
        await db.close()


async def test_rows_from_0001_have_no_ciphertext_and_reveal_none(database_url: str) -> None:
    db = Database(database_url, vault=KeyVault("s3cret"))
    sqlite_file = make_url(database_url).database
    if database_url.startswith("sqlite") and sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "0001"))
        old, old_key = await _create_0001_row(db)
        await db.upgrade()
        found = await db.streams.find_by_key(old_key)
        assert found is not None and found.slug == old.slug
        assert await db.streams.reveal_key(old.slug) is None
        new_key = await db.streams.rotate_key(old.slug)
        assert await db.streams.reveal_key(old.slug) == new_key
    finally:
        await db.close()


async def _create_0001_row(db: Database) -> tuple[StreamRecord, str]:
    """A stream inserted with exactly the columns migration 0001 has, as an old Streamit wrote it."""
    key = generate_stream_key()
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO streams (id, slug, title, description, status, key_hash, created_at, viewers) "
                "VALUES (:id, 'legacy', 'Legacy', '', 'DRAFT', :hash, :created, 0)"
            ),
            {"id": "00000000-0000-0000-0000-000000000001", "hash": hash_stream_key(key), "created": now},
        )
    return StreamRecord(
        id="00000000-0000-0000-0000-000000000001",
        slug="legacy",
        title="Legacy",
        description="",
        status=StreamStatus.DRAFT,
        created_at=now,
        started_at=None,
        ended_at=None,
        media=MediaInfo(),
        bitrate_kbps=None,
        viewers=0,
    ), key
