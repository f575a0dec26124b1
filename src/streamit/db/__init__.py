"""Stream catalogue: SQLAlchemy models, the stream repository and Alembic migrations.

Callers see only plain records (:class:`StreamRecord`, :class:`SessionRecord`, :class:`TokenRecord`,
:class:`MediaInfo`, :class:`UserRecord`, :class:`WebSessionRecord`) and :class:`Database` with its
repositories.
"""

from streamit.db.database import Database
from streamit.db.records import MediaInfo, SessionRecord, StreamRecord, StreamStatus, TokenRecord
from streamit.db.repository import StreamRepository
from streamit.db.sessions import SessionRepository, SessionTraffic
from streamit.db.slugs import RESERVED_SLUGS, validate_slug
from streamit.db.tokens import TokenRepository
from streamit.db.users import UserRecord, UserRepository, WebSessionRecord, WebSessionRepository
from streamit.db.vault import KeyVault
from streamit.errors import DatabaseUnavailable, InvalidSlug, InvalidTransition, SlugTaken

__all__ = [
    "RESERVED_SLUGS",
    "Database",
    "DatabaseUnavailable",
    "InvalidSlug",
    "InvalidTransition",
    "KeyVault",
    "MediaInfo",
    "SessionRecord",
    "SessionRepository",
    "SessionTraffic",
    "SlugTaken",
    "StreamRecord",
    "StreamRepository",
    "StreamStatus",
    "TokenRecord",
    "TokenRepository",
    "UserRecord",
    "UserRepository",
    "WebSessionRecord",
    "WebSessionRepository",
    "validate_slug",
]
