"""TokenRepository on SQLite and PostgreSQL: tokens are shown once, stored hashed and revocable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from streamit.db import Database, TokenRecord
from streamit.db.models import TokenRow
from streamit.db.tokens import hash_token
from streamit.errors import InvalidInput


async def token_table_text(db: Database) -> str:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).all()
    return "\n".join(repr(tuple(row)) for row in rows)


async def test_create_returns_record_and_strong_token(db: Database) -> None:
    before = datetime.now(UTC)
    record, token = await db.tokens.create("  deploy bot  ")
    assert isinstance(record, TokenRecord)
    assert record.name == "deploy bot"
    assert record.last_used_at is None
    assert before - timedelta(seconds=1) <= record.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert re.fullmatch(r"st_[A-Za-z0-9_-]{43}", token)  # 43 base64url characters = 256 random bits
    assert await db.tokens.list() == [record]


async def test_only_the_hash_is_stored(db: Database) -> None:
    _, token = await db.tokens.create("ci")
    stored = await token_table_text(db)
    assert token not in stored and token[3:] not in stored
    assert hash_token(token) in stored


async def test_verify_accepts_current_tokens_only(db: Database) -> None:
    record, token = await db.tokens.create("ci")
    verified = await db.tokens.verify(token)
    assert verified is not None and verified.id == record.id
    assert verified.last_used_at is not None
    for wrong in ("", token[:-1], token + "x", token.upper(), "sk_" + token[3:], "st_" + "a" * 500, "\x00"):
        assert await db.tokens.verify(wrong) is None


async def test_verify_records_last_use_at_most_once_a_minute(db: Database) -> None:
    record, token = await db.tokens.create("ci")
    first = await db.tokens.verify(token)
    second = await db.tokens.verify(token)
    assert first is not None and second is not None
    assert second.last_used_at == first.last_used_at
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with db.engine.begin() as conn:
        await conn.execute(update(TokenRow).where(TokenRow.id == record.id).values(last_used_at=long_ago))
    third = await db.tokens.verify(token)
    assert third is not None and third.last_used_at is not None and third.last_used_at > long_ago
    assert (await db.tokens.list())[0].last_used_at == third.last_used_at


async def test_duplicate_or_bad_names_are_refused(db: Database) -> None:
    await db.tokens.create("ci")
    with pytest.raises(InvalidInput, match="already exists"):
        await db.tokens.create("ci")
    for bad in ("", "   ", "x" * 101, "tab\there"):
        with pytest.raises(InvalidInput):
            await db.tokens.create(bad)
    assert [t.name for t in await db.tokens.list()] == ["ci"]


async def test_revoke_by_name_or_id(db: Database) -> None:
    first, first_token = await db.tokens.create("first")
    second, second_token = await db.tokens.create("second")
    assert await db.tokens.revoke("first")
    assert await db.tokens.verify(first_token) is None
    assert await db.tokens.revoke(second.id)
    assert await db.tokens.verify(second_token) is None
    assert not await db.tokens.revoke("first")
    assert not await db.tokens.revoke(first.id)
    assert await db.tokens.list() == []


async def test_list_is_oldest_first(db: Database) -> None:
    names = ["a", "b", "c"]
    for name in names:
        await db.tokens.create(name)
    assert [t.name for t in await db.tokens.list()] == names
