"""Alembic migrations from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from streamit.db import Database
from streamit.db.database import MIGRATIONS_DIR
from streamit.db.models import Base


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
            assert await conn.run_sync(_tables) == {"streams", "alembic_version"}
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
            assert "streams" not in await conn.run_sync(_tables)
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert "streams" in await conn.run_sync(_tables)
    finally:
        await db.close()
