"""API bearer tokens: shown once at creation, stored only as a SHA-256 digest, revocable by name or id.

Tokens carry 256 random bits, so as with stream keys an unsalted digest is enough and can be indexed.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from streamit.db.models import TokenRow
from streamit.db.records import TokenRecord
from streamit.db.transactions import Repository
from streamit.errors import InvalidInput

TOKEN_PREFIX = "st_"
_TOKEN_RANDOM_BYTES = 32
MAX_TOKEN_LENGTH = 128
MAX_TOKEN_NAME_LENGTH = 100
# Recording every use would turn each API read into a write; a minute's precision is plenty.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The hex SHA-256 digest stored in place of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: TokenRow) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, created_at=row.created_at, last_used_at=row.last_used_at)


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(f"token name must be 1-{MAX_TOKEN_NAME_LENGTH} printable characters")
    return name


class TokenRepository(Repository):
    """Create, verify, list and revoke API tokens."""

    async def create(self, name: str) -> tuple[TokenRecord, str]:
        """A new token named ``name``; returns it with the plaintext, which is not stored anywhere.

        Raises :class:`InvalidInput` for an empty or overlong name, or one already in use.
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_RANDOM_BYTES)
        row = TokenRow(
            id=str(uuid.uuid4()),
            name=_valid_name(name),
            token_hash=hash_token(token),
            created_at=datetime.now(UTC),
            last_used_at=None,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                raise InvalidInput(f"a token named {row.name!r} already exists") from exc
            return _record(row), token

    async def verify(self, token: str) -> TokenRecord | None:
        """The token record if ``token`` is a current token, else ``None``.  Notes when it was used."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = hash_token(token)
        async with self._sessions() as session:
            row = await session.scalar(select(TokenRow).where(TokenRow.token_hash == digest))
            if row is None or not hmac.compare_digest(digest, row.token_hash):
                return None
            record = _record(row)
        now = datetime.now(UTC)
        if record.last_used_at is None or now - record.last_used_at >= _LAST_USED_RESOLUTION:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(TokenRow).where(TokenRow.id == record.id).values(last_used_at=now)
                )
            record = TokenRecord(record.id, record.name, record.created_at, now)
        return record

    async def revoke(self, name_or_id: str) -> bool:
        """Delete the token with this name or id; it stops working at once.  ``False`` if none matched."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(TokenRow).where(or_(TokenRow.name == name_or_id, TokenRow.id == name_or_id))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def list(self) -> builtins.list[TokenRecord]:
        """Every token, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(select(TokenRow).order_by(TokenRow.created_at, TokenRow.id))
            return [_record(row) for row in rows]
