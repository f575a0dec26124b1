"""Studio accounts and their signed-in browser sessions.

Passwords are stored as argon2id hashes (argon2-cffi's :class:`PasswordHasher`, RFC 9106 parameters) and
re-hashed on the next successful sign-in when the parameters change.  A session's cookie token carries 256
random bits, so, as with API tokens, only its unsalted SHA-256 digest is stored and looked up by index.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamit.db.models import StreamRow, UserRow, WebSessionRow
from streamit.db.transactions import Repository, require_aware
from streamit.errors import InvalidInput

MIN_PASSWORD_LENGTH = 8
# argon2 accepts any length; a cap keeps one request from hashing megabytes.
MAX_PASSWORD_LENGTH = 1024
MAX_USERNAME_LENGTH = 64
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
SESSION_LIFETIME = timedelta(days=7)
_SESSION_TOKEN_BYTES = 32
MAX_SESSION_TOKEN_LENGTH = 128
# Like API tokens: noting every request would turn each page view into a write.
_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A studio account, without its password hash."""

    id: str
    username: str
    is_admin: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebSessionRecord:
    """A signed-in browser: whose it is, its CSRF token and when it expires (never the cookie token)."""

    id: str
    user_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


def normalize_username(username: str) -> str:
    """``username`` stripped and lower-cased (names are case-insensitive); :class:`InvalidInput` if it is
    not 1-64 of ``a-z 0-9 _ . -`` starting with a letter or digit."""
    name = username.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidInput(
            f"username must be 1-{MAX_USERNAME_LENGTH} characters of a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def validate_password(password: str) -> str:
    """``password`` unchanged if it is long enough (and not absurdly long); else :class:`InvalidInput`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_session_token(token: str) -> str:
    """The hex SHA-256 digest stored in place of a session cookie token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _user(row: UserRow) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        is_admin=row.is_admin,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def _session(row: WebSessionRow) -> WebSessionRecord:
    return WebSessionRecord(
        id=row.id,
        user_id=row.user_id,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
    )


class UserRepository(Repository):
    """Create, authenticate, list and delete studio users.

    Hashing runs in a worker thread: argon2 is deliberately slow and would otherwise stall every other
    request of the process while someone signs in.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hasher: PasswordHasher | None = None
    ) -> None:
        super().__init__(sessions)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @property
    def hasher(self) -> PasswordHasher:
        """The hasher new passwords are hashed with (its parameters decide when a hash is re-hashed)."""
        return self._hasher

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def create(self, username: str, password: str, *, is_admin: bool = False) -> UserRecord:
        """A new user; :class:`InvalidInput` for a malformed or taken username or a too short password."""
        name = normalize_username(username)
        row = UserRow(
            id=str(uuid.uuid4()),
            username=name,
            password_hash=await self._hash(validate_password(password)),
            is_admin=is_admin,
            created_at=datetime.now(UTC),
            last_login_at=None,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                raise InvalidInput(f"a user named {name!r} already exists") from exc
            return _user(row)

    async def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user if ``password`` is theirs, else ``None`` — the same for unknown names.

        An unknown or malformed name is checked against a dummy hash so that it costs as much as a wrong
        password: the answer time does not tell which usernames exist.  On success the sign-in time is
        noted and the hash is upgraded if the hasher's parameters changed since it was made.
        """
        if self._dummy_hash is None:
            # Made before the first lookup, whoever signs in first: were it made only for an unknown name,
            # that one answer would be slower and tell the name does not exist.
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        try:
            name = normalize_username(username)
        except InvalidInput:
            name = None
        row = None
        if name is not None and len(password) <= MAX_PASSWORD_LENGTH:
            async with self._sessions() as session:
                row = await session.scalar(select(UserRow).where(UserRow.username == name))
        if row is None:
            await self._verify(self._dummy_hash, password[:MAX_PASSWORD_LENGTH])
            return None
        if not await self._verify(row.password_hash, password):
            return None
        now = datetime.now(UTC)
        values: dict[str, object] = {"last_login_at": now}
        if self._hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = await self._hash(password)
        async with self._sessions() as session, session.begin():
            await session.execute(update(UserRow).where(UserRow.id == row.id).values(**values))
        return UserRecord(row.id, row.username, row.is_admin, row.created_at, now)

    async def get(self, user_id: str) -> UserRecord | None:
        """The user with id ``user_id``, or ``None``."""
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
            return None if row is None else _user(row)

    async def get_by_username(self, username: str) -> UserRecord | None:
        """The user named ``username`` (any case), or ``None``."""
        try:
            name = normalize_username(username)
        except InvalidInput:
            return None
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.username == name))
            return None if row is None else _user(row)

    async def list(self) -> builtins.list[UserRecord]:
        """Every user, by username."""
        async with self._sessions() as session:
            rows = await session.scalars(select(UserRow).order_by(UserRow.username))
            return [_user(row) for row in rows]

    async def count(self) -> int:
        """How many users exist."""
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(UserRow)) or 0)

    async def set_password(self, username: str, password: str) -> bool:
        """Give ``username`` a new password and sign out all their browsers; ``False`` if no such user."""
        password_hash = await self._hash(validate_password(password))
        user = await self.get_by_username(username)
        if user is None:
            return False
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(UserRow).where(UserRow.id == user.id).values(password_hash=password_hash)
            )
            await session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))
        return True

    async def delete(self, username: str) -> bool:
        """Delete ``username`` and their sessions; their streams stay, without owner.  ``False`` if none."""
        user = await self.get_by_username(username)
        if user is None:
            return False
        async with self._sessions() as session, session.begin():
            # Explicit, not only ON DELETE rules: they must hold whatever the SQLite connection's pragmas.
            await session.execute(
                update(StreamRow).where(StreamRow.owner_id == user.id).values(owner_id=None)
            )
            await session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user.id))
            result = await session.execute(delete(UserRow).where(UserRow.id == user.id))
            return bool(result.rowcount)  # type: ignore[attr-defined]


class WebSessionRepository(Repository):
    """Sessions of signed-in browsers: opened at sign-in, looked up by cookie token, closed at sign-out."""

    async def create(
        self, user_id: str, *, now: datetime | None = None, lifetime: timedelta = SESSION_LIFETIME
    ) -> tuple[WebSessionRecord, str]:
        """A new session of ``user_id``; returns it with the cookie token, which is not stored anywhere."""
        moment = require_aware(now or datetime.now(UTC), "now")
        token = secrets.token_urlsafe(_SESSION_TOKEN_BYTES)
        row = WebSessionRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            token_hash=hash_session_token(token),
            csrf_token=secrets.token_urlsafe(_SESSION_TOKEN_BYTES),
            created_at=moment,
            expires_at=moment + lifetime,
            last_seen_at=moment,
        )
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
            return _session(row), token

    async def lookup(
        self, token: str, *, now: datetime | None = None
    ) -> tuple[WebSessionRecord, UserRecord] | None:
        """The unexpired session with cookie token ``token`` and its user, else ``None``."""
        if not token or len(token) > MAX_SESSION_TOKEN_LENGTH:
            return None
        moment = require_aware(now or datetime.now(UTC), "now")
        digest = hash_session_token(token)
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(WebSessionRow, UserRow)
                    .join(UserRow, UserRow.id == WebSessionRow.user_id)
                    .where(WebSessionRow.token_hash == digest)
                )
            ).first()
        if found is None:
            return None
        session_row, user_row = found
        if not hmac.compare_digest(digest, session_row.token_hash) or session_row.expires_at <= moment:
            return None
        record = _session(session_row)
        if moment - record.last_seen_at >= _LAST_SEEN_RESOLUTION:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(WebSessionRow).where(WebSessionRow.id == record.id).values(last_seen_at=moment)
                )
            record = WebSessionRecord(
                record.id, record.user_id, record.csrf_token, record.created_at, record.expires_at, moment
            )
        return record, _user(user_row)

    async def delete(self, token: str) -> bool:
        """End the session with cookie token ``token`` (sign-out); ``False`` if there was none."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(WebSessionRow).where(WebSessionRow.token_hash == hash_session_token(token))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list_for_user(self, user_id: str) -> builtins.list[WebSessionRecord]:
        """The sessions of ``user_id``, oldest first (expired ones included until purged)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WebSessionRow)
                .where(WebSessionRow.user_id == user_id)
                .order_by(WebSessionRow.created_at, WebSessionRow.id)
            )
            return [_session(row) for row in rows]

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete every expired session; return how many."""
        moment = require_aware(now or datetime.now(UTC), "now")
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= moment))
            return int(result.rowcount)  # type: ignore[attr-defined]
