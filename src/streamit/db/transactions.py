"""Short repository transactions; connection failures surface as :class:`DatabaseUnavailable`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamit.errors import DatabaseUnavailable, InvalidInput


class Repository:
    """Base of the repositories: each method opens its own session through :meth:`_sessions`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessions

    @asynccontextmanager
    async def _sessions(self) -> AsyncIterator[AsyncSession]:
        """A session whose connection failures surface as :class:`DatabaseUnavailable`."""
        try:
            async with self._sessionmaker() as session:
                yield session
        except (OperationalError, InterfaceError, OSError) as exc:
            raise DatabaseUnavailable(f"database error: {exc.__class__.__name__}") from exc


def require_aware(moment: datetime, name: str) -> datetime:
    """``moment`` in UTC; :class:`InvalidInput` if it is naive (its zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)
