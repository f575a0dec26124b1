"""Users and web sessions on SQLite and PostgreSQL: argon2 hashes, sign-in, sessions, stream ownership."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from streamit.db import Database, UserRecord
from streamit.db.models import UserRow
from streamit.db.users import hash_session_token, normalize_username
from streamit.errors import InvalidInput

# Cheap parameters keep the suite fast; the default hasher is exercised by the rehash test.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
async def fast_db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, password_hasher=FAST)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


async def stored_hash(db: Database, username: str) -> str:
    async with db.engine.connect() as conn:
        value = await conn.scalar(select(UserRow.password_hash).where(UserRow.username == username))
    assert isinstance(value, str)
    return value


async def test_create_stores_only_an_argon2_hash(fast_db: Database) -> None:
    user = await fast_db.users.create("  Alice ", "correct horse", is_admin=True)
    assert isinstance(user, UserRecord)
    assert user.username == "alice" and user.is_admin and user.last_login_at is None
    password_hash = await stored_hash(fast_db, "alice")
    assert password_hash.startswith("$argon2id$")
    async with fast_db.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM users"))).all())
    assert "correct horse" not in dump
    assert await fast_db.users.list() == [user]
    assert await fast_db.users.get(user.id) == user
    assert await fast_db.users.get_by_username("ALICE") == user


async def test_bad_usernames_passwords_and_duplicates_are_refused(fast_db: Database) -> None:
    await fast_db.users.create("bob", "12345678")
    with pytest.raises(InvalidInput, match="already exists"):
        await fast_db.users.create("BOB", "another password")
    for bad in ("", " ", "-bob", "bo b", "b" * 65, "bób", "a/b"):
        with pytest.raises(InvalidInput, match="username"):
            await fast_db.users.create(bad, "12345678")
    with pytest.raises(InvalidInput, match="at least 8"):
        await fast_db.users.create("carol", "1234567")
    with pytest.raises(InvalidInput, match="at most"):
        await fast_db.users.create("carol", "x" * 1025)
    assert [u.username for u in await fast_db.users.list()] == ["bob"]


async def test_authenticate_right_wrong_and_unknown(fast_db: Database) -> None:
    user = await fast_db.users.create("alice", "correct horse")
    signed_in = await fast_db.users.authenticate("Alice", "correct horse")
    assert signed_in is not None and signed_in.id == user.id
    assert signed_in.last_login_at is not None
    stored = await fast_db.users.get(user.id)
    assert stored is not None and stored.last_login_at == signed_in.last_login_at
    for name, password in (
        ("alice", "correct hors"),
        ("alice", "CORRECT HORSE"),
        ("alice", ""),
        ("mallory", "correct horse"),
        ("", "correct horse"),
        ("bad name!", "x"),
        ("alice", "x" * 5000),
    ):
        assert await fast_db.users.authenticate(name, password) is None


async def test_hash_is_upgraded_when_parameters_change(database_url: str) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    old = Database(database_url, password_hasher=weak)
    await old.upgrade()
    try:
        await old.users.create("alice", "correct horse")
        weak_hash = await stored_hash(old, "alice")
    finally:
        await old.close()
    assert "m=512" in weak_hash
    new = Database(database_url, password_hasher=FAST)
    try:
        assert await new.users.authenticate("alice", "wrong password") is None
        assert await stored_hash(new, "alice") == weak_hash
        assert await new.users.authenticate("alice", "correct horse") is not None
        upgraded = await stored_hash(new, "alice")
        assert upgraded != weak_hash and "m=1024" in upgraded
        assert not FAST.check_needs_rehash(upgraded)
        assert await new.users.authenticate("alice", "correct horse") is not None
    finally:
        await new.close()


async def test_set_password_changes_it_and_signs_out_everywhere(fast_db: Database) -> None:
    user = await fast_db.users.create("alice", "correct horse")
    _, token = await fast_db.web_sessions.create(user.id)
    assert await fast_db.users.set_password("ALICE", "battery staple")
    assert await fast_db.users.authenticate("alice", "correct horse") is None
    assert await fast_db.users.authenticate("alice", "battery staple") is not None
    assert await fast_db.web_sessions.lookup(token) is None
    assert not await fast_db.users.set_password("nobody", "battery staple")
    with pytest.raises(InvalidInput):
        await fast_db.users.set_password("alice", "short")


async def test_sessions_store_only_a_digest_and_expire(fast_db: Database) -> None:
    user = await fast_db.users.create("alice", "correct horse")
    now = datetime.now(UTC)
    session, token = await fast_db.web_sessions.create(user.id, now=now, lifetime=timedelta(hours=1))
    assert len(token) >= 43 and len(session.csrf_token) >= 43 and token != session.csrf_token
    async with fast_db.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM web_sessions"))).all())
    assert token not in dump and hash_session_token(token) in dump
    found = await fast_db.web_sessions.lookup(token, now=now)
    assert found is not None
    assert found[0] == session and found[1].id == user.id
    for wrong in ("", token[:-1], token + "x", "x" * 200):
        assert await fast_db.web_sessions.lookup(wrong, now=now) is None
    assert await fast_db.web_sessions.lookup(token, now=now + timedelta(hours=1)) is None
    assert await fast_db.web_sessions.purge_expired(now + timedelta(hours=1)) == 1
    assert await fast_db.web_sessions.list_for_user(user.id) == []


async def test_last_seen_is_noted_at_most_once_a_minute(fast_db: Database) -> None:
    user = await fast_db.users.create("alice", "correct horse")
    now = datetime.now(UTC)
    _, token = await fast_db.web_sessions.create(user.id, now=now)
    soon = await fast_db.web_sessions.lookup(token, now=now + timedelta(seconds=30))
    assert soon is not None and soon[0].last_seen_at == now
    later = await fast_db.web_sessions.lookup(token, now=now + timedelta(minutes=2))
    assert later is not None and later[0].last_seen_at == now + timedelta(minutes=2)
    stored = await fast_db.web_sessions.list_for_user(user.id)
    assert stored[0].last_seen_at == now + timedelta(minutes=2)


async def test_sign_out_deletes_only_that_session(fast_db: Database) -> None:
    user = await fast_db.users.create("alice", "correct horse")
    _, first = await fast_db.web_sessions.create(user.id)
    _, second = await fast_db.web_sessions.create(user.id)
    assert await fast_db.web_sessions.delete(first)
    assert not await fast_db.web_sessions.delete(first)
    assert await fast_db.web_sessions.lookup(first) is None
    assert await fast_db.web_sessions.lookup(second) is not None


async def test_deleting_a_user_keeps_their_streams_without_owner(fast_db: Database) -> None:
    alice = await fast_db.users.create("alice", "correct horse")
    bob = await fast_db.users.create("bob", "correct horse")
    mine, _ = await fast_db.streams.create("Alice's show", owner_id=alice.id)
    theirs, _ = await fast_db.streams.create("Bob's show", owner_id=bob.id)
    orphan, _ = await fast_db.streams.create("CLI show")
    assert mine.owner_id == alice.id and orphan.owner_id is None
    assert [s.slug for s in await fast_db.streams.list(owner_id=alice.id)] == [mine.slug]
    assert {s.slug for s in await fast_db.streams.list()} == {mine.slug, theirs.slug, orphan.slug}
    _, token = await fast_db.web_sessions.create(alice.id)
    assert await fast_db.users.delete("Alice")
    assert not await fast_db.users.delete("alice")
    assert await fast_db.users.get(alice.id) is None
    assert await fast_db.web_sessions.lookup(token) is None
    kept = await fast_db.streams.get(mine.slug)
    assert kept is not None and kept.owner_id is None
    other = await fast_db.streams.get(theirs.slug)
    assert other is not None and other.owner_id == bob.id
    assert await fast_db.users.count() == 1


def test_normalize_username() -> None:
    assert normalize_username(" Mixed.Case_1-x ") == "mixed.case_1-x"
    with pytest.raises(InvalidInput):
        normalize_username("a b")


async def test_streams_from_before_0003_have_no_owner(database_url: str) -> None:
    from alembic import command

    from tests.db.test_migrations import _config

    db = Database(database_url, password_hasher=FAST)
    try:
        await db.upgrade()
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_config(c), "0002"))
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO streams (id, slug, title, description, status, key_hash, created_at,"
                    " viewers) VALUES (:id, 'old', 'Old', '', 'DRAFT', :h, :c, 0)"
                ),
                {"id": "00000000-0000-0000-0000-000000000002", "h": "0" * 64, "c": datetime.now(UTC)},
            )
        await db.upgrade()
        old = await db.streams.get("old")
        assert old is not None and old.owner_id is None
        alice = await db.users.create("alice", "correct horse")
        assert await db.streams.list(owner_id=alice.id) == []
    finally:
        await db.close()


class CountingHasher(PasswordHasher):
    """A fast hasher that counts verifications, to see that unknown names cost a verification too."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifications += 1
        return super().verify(hash, password)


async def test_unknown_usernames_cost_a_verification_like_known_ones(database_url: str) -> None:
    hasher = CountingHasher()
    db = Database(database_url, password_hasher=hasher)
    await db.upgrade()
    try:
        await db.users.create("alice", "correct horse")
        for name, password in (
            ("alice", "wrong password"),
            ("mallory", "wrong password"),
            ("not valid!", "x"),
        ):
            before = hasher.verifications
            assert await db.users.authenticate(name, password) is None
            assert hasher.verifications == before + 1, name
    finally:
        await db.close()


async def test_0003_down_to_0002_and_up_again_keeps_streams(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tests.db.test_migrations import _config, _schema_diff, _tables

    db = Database(database_url, password_hasher=FAST)
    try:
        await db.upgrade()
        alice = await db.users.create("alice", "correct horse")
        record, key = await db.streams.create("Kept", slug="kept", owner_id=alice.id)
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(_config(c), "0002"))
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) == {
                "streams",
                "api_tokens",
                "publish_sessions",
                "alembic_version",
            }
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("streams")}
            )
            checks = await conn.run_sync(lambda c: inspect(c).get_check_constraints("streams"))
        assert "owner_id" not in columns
        assert [c["name"] for c in checks] == ["ck_streams_stream_status"]
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
        found = await db.streams.find_by_key(key)
        assert found is not None and found.id == record.id and found.owner_id is None
        assert await db.users.list() == []
    finally:
        await db.close()
