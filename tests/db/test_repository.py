"""StreamRepository on SQLite and PostgreSQL: keys, slugs, life cycle, listing."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from streamit.db import (
    Database,
    DatabaseUnavailable,
    InvalidSlug,
    InvalidTransition,
    MediaInfo,
    SlugTaken,
    StreamRecord,
    StreamStatus,
)
from streamit.db.keys import hash_stream_key
from streamit.db.models import StreamRow
from streamit.errors import InvalidInput, NotFound, StreamitError

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def all_cell_text(db: Database) -> str:
    """Every value of every row of ``streams``, as one string."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM streams"))).all()
    return "\n".join(repr(tuple(row)) for row in rows)


async def test_create_returns_draft_record_and_strong_key(db: Database) -> None:
    before = datetime.now(UTC)
    record, key = await db.streams.create("My First Show", description="cooking")
    assert isinstance(record, StreamRecord)
    assert record.slug == "my-first-show"
    assert record.title == "My First Show"
    assert record.description == "cooking"
    assert record.status is StreamStatus.DRAFT
    assert record.started_at is None and record.ended_at is None
    assert record.media == MediaInfo(None, None, None, None, None, None, None)
    assert record.bitrate_kbps is None and record.viewers == 0
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= record.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert re.fullmatch(r"sk_[A-Za-z0-9_-]{32}", key)  # 32 base64url characters = 192 random bits
    assert not any(f.name in {"key", "key_hash", "stream_key"} for f in dataclasses.fields(record))
    assert await db.streams.get(record.slug) == record
    assert await db.streams.get_by_id(record.id) == record


async def test_keys_are_unique_and_only_their_hash_is_stored(db: Database) -> None:
    created = [await db.streams.create(f"Show {i}") for i in range(5)]
    keys = {key for _, key in created}
    assert len(keys) == 5
    cells = await all_cell_text(db)
    for _, key in created:
        assert key not in cells
        assert key[3:] not in cells
        assert hash_stream_key(key) in cells


async def test_sqlite_file_never_contains_plaintext_key(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    await db.upgrade()
    record, key = await db.streams.create("Secret")
    new_key = await db.streams.rotate_key(record.slug)
    await db.close()
    files = list(tmp_path.iterdir())
    assert any(f.name == "k.db" for f in files)
    blob = b"".join(f.read_bytes() for f in files if f.is_file())
    assert record.slug.encode() in blob  # proves we are reading the data that was written
    for secret in (key, new_key):
        assert secret.encode() not in blob
        assert secret[3:].encode() not in blob


async def test_find_by_key_exact_match_only(db: Database) -> None:
    record, key = await db.streams.create("Keyed")
    found = await db.streams.find_by_key(key)
    assert found is not None and found.id == record.id
    last = key[-1]
    near_misses = [
        key[:-1],
        key + "A",
        key[:-1] + ("B" if last != "B" else "C"),
        key.upper() if key.upper() != key else key.lower(),
        " " + key,
        key + "\n",
        key[3:],
        "",
        "x" * 10_000,
        hash_stream_key(key),
    ]
    for guess in near_misses:
        assert await db.streams.find_by_key(guess) is None, guess


async def test_rotate_key_invalidates_old_key(db: Database) -> None:
    record, old = await db.streams.create("Rotating")
    new = await db.streams.rotate_key(record.slug)
    assert new != old
    assert await db.streams.find_by_key(old) is None
    found = await db.streams.find_by_key(new)
    assert found is not None and found.id == record.id
    with pytest.raises(NotFound):
        await db.streams.rotate_key("no-such-stream")


async def test_generated_slug_gets_suffix_on_collision(db: Database) -> None:
    first, _ = await db.streams.create("Hello, World!")
    second, _ = await db.streams.create("hello world")
    assert first.slug == "hello-world"
    assert re.fullmatch(r"hello-world-[a-z0-9]{6}", second.slug)


async def test_concurrent_creates_with_same_title_get_distinct_slugs(db: Database) -> None:
    results = await asyncio.gather(*(db.streams.create("Launch Party") for _ in range(6)))
    slugs = [record.slug for record, _ in results]
    assert len(set(slugs)) == 6
    assert "launch-party" in slugs


async def test_reserved_or_empty_titles_still_get_valid_slugs(db: Database) -> None:
    api, _ = await db.streams.create("API")
    assert re.fullmatch(r"api-[a-z0-9]{6}", api.slug)
    symbols, _ = await db.streams.create("!!! ???")
    assert symbols.slug == "stream"
    long, _ = await db.streams.create("Ünïcödé " * 20)
    assert long.slug.startswith("unicode-unicode") and len(long.slug) <= 64


async def test_explicit_slug(db: Database) -> None:
    record, _ = await db.streams.create("Anything", slug="my-slug-1")
    assert record.slug == "my-slug-1"
    with pytest.raises(SlugTaken):
        await db.streams.create("Other", slug="my-slug-1")
    for bad in ("Upper", "with space", "-lead", "trail-", "a" * 65, "", "api", "hls", "ünï"):
        with pytest.raises(InvalidSlug):
            await db.streams.create("Bad", slug=bad)
    assert [r.slug for r in await db.streams.list()] == ["my-slug-1"]


async def test_title_validated(db: Database) -> None:
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(ValueError, match="title"):
            await db.streams.create(bad)


async def test_life_cycle_draft_live_ended(db: Database) -> None:
    record, _ = await db.streams.create("Cycle")
    live = await db.streams.mark_live(record.id, T0)
    assert live.status is StreamStatus.LIVE and live.started_at == T0 and live.ended_at is None

    media = MediaInfo("h264", 1280, 720, 29.97, "aac", 48000, 2)
    await db.streams.update_live_info(record.id, media=media)
    await db.streams.update_live_info(record.id, bitrate_kbps=2500)
    await db.streams.update_live_info(record.id, viewers=7)
    await db.streams.update_live_info(record.id)
    current = await db.streams.get(record.slug)
    assert current is not None
    assert current.media == media
    assert current.bitrate_kbps == 2500 and current.viewers == 7

    ended = await db.streams.mark_ended(record.id, T0 + timedelta(minutes=5))
    assert ended.status is StreamStatus.ENDED
    assert ended.started_at == T0 and ended.ended_at == T0 + timedelta(minutes=5)
    assert ended.viewers == 0
    assert ended.media == media  # what was broadcast stays on record after the end

    again = await db.streams.mark_ended(record.id, T0 + timedelta(hours=1))
    assert again.ended_at == T0 + timedelta(minutes=5)

    relive = await db.streams.mark_live(record.id, T0 + timedelta(days=1))
    assert relive.status is StreamStatus.LIVE and relive.ended_at is None
    assert relive.media == MediaInfo() and relive.bitrate_kbps is None


async def test_times_are_stored_as_utc(db: Database) -> None:
    record, _ = await db.streams.create("Zones")
    plus_two = timezone(timedelta(hours=2))
    live = await db.streams.mark_live(record.id, datetime(2026, 6, 1, 14, 0, tzinfo=plus_two))
    assert live.started_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    fetched = await db.streams.get_by_id(record.id)
    assert fetched is not None and fetched.started_at is not None
    assert fetched.started_at.utcoffset() == timedelta(0)
    assert fetched.started_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        await db.streams.mark_live(record.id, datetime(2026, 6, 1, 12, 0))


async def test_draft_cannot_end(db: Database) -> None:
    record, _ = await db.streams.create("Never live")
    with pytest.raises(InvalidTransition):
        await db.streams.mark_ended(record.id, T0)
    unchanged = await db.streams.get_by_id(record.id)
    assert unchanged is not None and unchanged.status is StreamStatus.DRAFT


async def test_unknown_ids(db: Database) -> None:
    assert await db.streams.get("nope") is None
    assert await db.streams.get_by_id("00000000-0000-0000-0000-000000000000") is None
    with pytest.raises(NotFound):
        await db.streams.mark_live("missing", T0)
    with pytest.raises(NotFound):
        await db.streams.mark_ended("missing", T0)
    with pytest.raises(NotFound):
        await db.streams.update_live_info("missing", viewers=1)
    with pytest.raises(NotFound):
        await db.streams.update_live_info("missing")


async def test_end_all_live_recovers_after_crash(db: Database) -> None:
    a, _ = await db.streams.create("A")
    b, _ = await db.streams.create("B")
    c, _ = await db.streams.create("C")
    await db.streams.mark_live(a.id, T0)
    await db.streams.mark_live(b.id, T0)
    await db.streams.update_live_info(b.id, viewers=40)
    assert await db.streams.end_all_live(T0 + timedelta(hours=1)) == 2
    assert await db.streams.list(StreamStatus.LIVE) == []
    ended_b = await db.streams.get_by_id(b.id)
    assert ended_b is not None
    assert ended_b.status is StreamStatus.ENDED and ended_b.viewers == 0
    assert ended_b.ended_at == T0 + timedelta(hours=1)
    untouched = await db.streams.get_by_id(c.id)
    assert untouched is not None and untouched.status is StreamStatus.DRAFT
    assert await db.streams.end_all_live(T0) == 0


async def test_list_filters_and_orders_newest_first(db: Database) -> None:
    first, _ = await db.streams.create("First")
    second, _ = await db.streams.create("Second")
    third, _ = await db.streams.create("Third")
    await db.streams.mark_live(second.id, T0)
    assert [r.slug for r in await db.streams.list()] == [third.slug, second.slug, first.slug]
    assert [r.slug for r in await db.streams.list(StreamStatus.LIVE)] == [second.slug]
    assert [r.slug for r in await db.streams.list(StreamStatus.DRAFT)] == [third.slug, first.slug]
    assert await db.streams.list(StreamStatus.ENDED) == []


async def test_delete(db: Database) -> None:
    record, key = await db.streams.create("Doomed")
    assert await db.streams.delete(record.slug) is True
    assert await db.streams.delete(record.slug) is False
    assert await db.streams.get(record.slug) is None
    assert await db.streams.find_by_key(key) is None
    again, _ = await db.streams.create("Doomed")
    assert again.slug == record.slug


async def test_status_column_rejects_unknown_values(db: Database) -> None:
    record, _ = await db.streams.create("Checked")
    async with db.engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await conn.execute(text("UPDATE streams SET status = 'BOGUS' WHERE id = :id"), {"id": record.id})
    async with db.engine.connect() as conn:
        status = await conn.scalar(select(StreamRow.status).where(StreamRow.id == record.id))
    assert status is StreamStatus.DRAFT


async def test_unreachable_database_raises_database_unavailable() -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await db.streams.get("x")
        assert isinstance(info.value, StreamitError)
        with pytest.raises(DatabaseUnavailable):
            await db.upgrade()
        assert await db.ping() is False
    finally:
        await db.close()


async def test_concurrent_writers_do_not_fail(db: Database) -> None:
    records = [record for record, _ in [await db.streams.create(f"Busy {i}") for i in range(8)]]
    await asyncio.gather(*(db.streams.mark_live(r.id, T0) for r in records))
    await asyncio.gather(
        *(db.streams.update_live_info(r.id, viewers=i, bitrate_kbps=100 * i) for i, r in enumerate(records)),
        *(db.streams.create(f"Late {i}") for i in range(4)),
        *(db.streams.rotate_key(r.slug) for r in records[:4]),
    )
    await asyncio.gather(*(db.streams.mark_ended(r.id, T0 + timedelta(hours=1)) for r in records))
    ended = await db.streams.list(StreamStatus.ENDED)
    assert {r.id for r in ended} == {r.id for r in records}
    assert len(await db.streams.list(StreamStatus.DRAFT)) == 4


async def test_reveal_key_with_a_vault(database_url: str) -> None:
    from streamit.db import KeyVault

    db = Database(database_url, vault=KeyVault("server secret"))
    await db.upgrade()
    try:
        record, key = await db.streams.create("Revealed")
        assert await db.streams.reveal_key(record.slug) == key
        assert key not in await all_cell_text(db)
        new_key = await db.streams.rotate_key(record.slug)
        assert await db.streams.reveal_key(record.slug) == new_key
        assert await db.streams.find_by_key(key) is None
        with pytest.raises(NotFound):
            await db.streams.reveal_key("no-such-slug")
    finally:
        await db.close()
    other = Database(database_url, vault=KeyVault("another secret"))
    try:
        assert await other.streams.reveal_key(record.slug) is None
    finally:
        await other.close()


async def test_reveal_key_without_a_vault_is_none(db: Database) -> None:
    record, _ = await db.streams.create("Hidden")
    assert await db.streams.reveal_key(record.slug) is None


async def test_reveal_key_refuses_a_ciphertext_of_another_key(database_url: str) -> None:
    from streamit.db import KeyVault

    vault = KeyVault("server secret")
    db = Database(database_url, vault=vault)
    await db.upgrade()
    try:
        record, _ = await db.streams.create("Tampered")
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE streams SET key_ciphertext = :c WHERE slug = :s"),
                {"c": vault.encrypt("sk_not-the-key"), "s": record.slug},
            )
        assert await db.streams.reveal_key(record.slug) is None
    finally:
        await db.close()


async def test_update_changes_given_fields_only(db: Database) -> None:
    record, key = await db.streams.create("Old Title", description="old")
    updated = await db.streams.update(record.slug, title="  New Title ")
    assert (updated.title, updated.description, updated.slug) == ("New Title", "old", record.slug)
    updated = await db.streams.update(record.slug, description="")
    assert updated.description == "" and updated.title == "New Title"
    unchanged = await db.streams.update(record.slug)
    assert unchanged == updated
    moved = await db.streams.update(record.slug, new_slug="new-home", title="Moved")
    assert (moved.slug, moved.title, moved.id) == ("new-home", "Moved", record.id)
    assert await db.streams.get(record.slug) is None
    assert await db.streams.get("new-home") == moved
    found = await db.streams.find_by_key(key)
    assert found is not None and found.slug == "new-home"
    same = await db.streams.update("new-home", new_slug="new-home")
    assert same == moved


async def test_update_errors(db: Database) -> None:
    one, _ = await db.streams.create("One")
    two, _ = await db.streams.create("Two")
    with pytest.raises(NotFound):
        await db.streams.update("missing", title="x")
    with pytest.raises(NotFound):
        await db.streams.update("missing")
    with pytest.raises(SlugTaken):
        await db.streams.update(one.slug, new_slug=two.slug)
    for bad in ("Upper", "api", "-x", ""):
        with pytest.raises(InvalidSlug):
            await db.streams.update(one.slug, new_slug=bad)
    for title in ("", "   ", "x" * 201):
        with pytest.raises(StreamitError):
            await db.streams.update(one.slug, title=title)
    assert await db.streams.get(one.slug) == one


async def test_rename(db: Database) -> None:
    record, _ = await db.streams.create("Named")
    renamed = await db.streams.rename(record.slug, "renamed")
    assert renamed.slug == "renamed" and renamed.id == record.id
    with pytest.raises(NotFound):
        await db.streams.rename(record.slug, "elsewhere")
    other, _ = await db.streams.create("Other")
    with pytest.raises(SlugTaken):
        await db.streams.rename(other.slug, "renamed")
    with pytest.raises(InvalidSlug):
        await db.streams.rename(other.slug, "Bad Slug")


async def test_store_bitrates_updates_many_streams_at_once(db: Database) -> None:
    first, _ = await db.streams.create("First")
    second, _ = await db.streams.create("Second")
    await db.streams.store_bitrates({first.id: 2500, second.id: 0, "no-such-stream": 1})
    stored = [await db.streams.get_by_id(first.id), await db.streams.get_by_id(second.id)]
    assert [record.bitrate_kbps for record in stored if record is not None] == [2500, 0]
    with pytest.raises(InvalidInput):
        await db.streams.store_bitrates({first.id: -1})
    await db.streams.store_bitrates({})
