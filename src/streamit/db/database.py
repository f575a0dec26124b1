"""The catalogue database: engine set-up, migrations and the repositories built on it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from streamit.db.records import SessionRecord
from streamit.db.repository import StreamRepository
from streamit.db.sessions import SessionRepository
from streamit.db.tokens import TokenRepository
from streamit.db.users import UserRepository, WebSessionRepository
from streamit.db.vault import KeyVault
from streamit.errors import ConfigError, DatabaseUnavailable, InvalidTransition, NotFound

if TYPE_CHECKING:
    from streamit.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant naming the PostgreSQL advisory lock that serialises concurrent `upgrade()` calls
# (an origin and an API process starting together must not both create the tables).
_MIGRATION_LOCK_ID = 0x5374_7265_616D


# Plain backend names map to the async driver Streamit ships with.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API) and the writer (ingest) proceed together; busy_timeout makes a writer
    # wait for the lock instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: a process crash loses nothing, and
    # a publish's status writes do not each wait for the disk.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _run_migrations(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(config, "head")


class Database:
    """A connection pool to the catalogue (``sqlite+aiosqlite:///…`` or ``postgresql+asyncpg://…``).

    ``vault`` encrypts new stream keys so owners can read them again (:meth:`StreamRepository.reveal_key`);
    without it keys are stored only hashed.  ``password_hasher`` hashes studio passwords (default: argon2id
    with argon2-cffi's recommended parameters).
    """

    def __init__(
        self, url: str, *, vault: KeyVault | None = None, password_hasher: PasswordHasher | None = None
    ) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"invalid database URL: {exc}") from exc
        self._url = parsed.set(drivername=_ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
        options: dict[str, Any] = {}
        if self._url.get_backend_name() == "sqlite":
            options["connect_args"] = {"timeout": 30}
            if _sqlite_file(self._url) is None:
                # An in-memory database lives inside one connection: share that connection.
                options["poolclass"] = StaticPool
        elif self._url.get_backend_name() == "postgresql":
            # Fail within seconds, not asyncpg's default minute, when the server is unreachable.
            options["connect_args"] = {"timeout": 10}
            options["pool_pre_ping"] = True
        try:
            self._engine: AsyncEngine = create_async_engine(self._url, **options)
        except (ArgumentError, InvalidRequestError, ImportError) as exc:
            raise ConfigError(f"unsupported database URL {self.display_url}: {exc}") from exc
        if self._url.get_backend_name() == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _on_sqlite_connect)
        sessionmaker = async_sessionmaker(self._engine, expire_on_commit=False)
        self._streams = StreamRepository(sessionmaker, vault)
        self._tokens = TokenRepository(sessionmaker)
        self._sessions = SessionRepository(sessionmaker)
        self._users = UserRepository(sessionmaker, password_hasher)
        self._web_sessions = WebSessionRepository(sessionmaker)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database of ``settings`` with a vault keyed by ``secret_key`` or ``<data-dir>/secret.key``."""
        vault = KeyVault.from_settings(settings.secret_key, settings.data_dir)
        return cls(settings.resolved_database_url, vault=vault)

    @property
    def display_url(self) -> str:
        """The URL with any password masked, safe to print."""
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying SQLAlchemy engine (for tests and health checks)."""
        return self._engine

    @property
    def streams(self) -> StreamRepository:
        """The stream catalogue."""
        return self._streams

    @property
    def tokens(self) -> TokenRepository:
        """The API bearer tokens."""
        return self._tokens

    @property
    def sessions(self) -> SessionRepository:
        """The publish sessions."""
        return self._sessions

    @property
    def users(self) -> UserRepository:
        """The studio users."""
        return self._users

    @property
    def web_sessions(self) -> WebSessionRepository:
        """The studio's signed-in browser sessions."""
        return self._web_sessions

    async def recover_node(self, node: str, now: datetime) -> list[SessionRecord]:
        """Start-up crash recovery for ``node``: close the sessions it left open with reason ``crash``.

        A stream of such a session is marked ``ENDED`` unless another node still has a session open on
        it (then it is still live there).  Returns the sessions that were closed.
        """
        closed = await self._sessions.close_abandoned(node, ended_at=now, end_reason="crash")
        for stream_id in {record.stream_id for record in closed}:
            if await self._sessions.open_for_stream(stream_id):
                continue
            try:
                await self._streams.mark_ended(stream_id, now)
            except (NotFound, InvalidTransition):
                # Deleted meanwhile, or never went LIVE (DRAFT): nothing to end.
                continue
        return closed

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration; creates the SQLite file's directory if needed.

        Raises :class:`DatabaseUnavailable` when the database cannot be reached.
        """
        sqlite_file = _sqlite_file(self._url)
        try:
            if sqlite_file is not None:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            async with self._engine.begin() as connection:
                await connection.run_sync(_run_migrations)
        except (DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(f"cannot open database {self.display_url}: {exc}") from exc

    async def ping(self) -> bool:
        """Whether the database answers a trivial query (for readiness checks)."""
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (DBAPIError, OSError):
            return False
        return True

    async def close(self) -> None:
        """Release every pooled connection."""
        await self._engine.dispose()
