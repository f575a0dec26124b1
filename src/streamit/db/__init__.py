"""Stream catalogue: SQLAlchemy models, the stream repository and Alembic migrations.

Callers see only plain records (:class:`StreamRecord`, :class:`MediaInfo`) and :class:`Database`.
"""

from streamit.db.database import Database
from streamit.db.records import MediaInfo, StreamRecord, StreamStatus
from streamit.db.repository import StreamRepository
from streamit.db.slugs import RESERVED_SLUGS, validate_slug
from streamit.errors import DatabaseUnavailable, InvalidSlug, InvalidTransition, SlugTaken

__all__ = [
    "RESERVED_SLUGS",
    "Database",
    "DatabaseUnavailable",
    "InvalidSlug",
    "InvalidTransition",
    "MediaInfo",
    "SlugTaken",
    "StreamRecord",
    "StreamRepository",
    "StreamStatus",
    "validate_slug",
]
