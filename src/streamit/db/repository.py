"""The stream catalogue: every read and write of ``streams`` goes through :class:`StreamRepository`."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamit.db.keys import generate_stream_key, hash_stream_key, is_plausible_key, key_matches
from streamit.db.models import SessionRow, StreamRow
from streamit.db.records import ALLOWED_TRANSITIONS, MediaInfo, StreamRecord, StreamStatus
from streamit.db.slugs import is_valid_slug, slugify, validate_slug, with_suffix
from streamit.db.transactions import Repository, require_aware
from streamit.db.vault import KeyVault
from streamit.errors import InvalidInput, InvalidTransition, NotFound, SlugTaken

# Random suffixes come from 36**6 ≈ 2e9 values, so a handful of retries only fails on a broken DB.
_SLUG_ATTEMPTS = 8
_MAX_TITLE_LENGTH = 200


def _record(row: StreamRow) -> StreamRecord:
    return StreamRecord(
        id=row.id,
        slug=row.slug,
        title=row.title,
        description=row.description,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        media=MediaInfo(
            video_codec=row.video_codec,
            width=row.width,
            height=row.height,
            fps=row.fps,
            audio_codec=row.audio_codec,
            sample_rate=row.sample_rate,
            channels=row.channels,
        ),
        bitrate_kbps=row.bitrate_kbps,
        viewers=row.viewers,
        owner_id=row.owner_id,
    )


def _media_columns(media: MediaInfo) -> dict[str, Any]:
    return {
        "video_codec": media.video_codec,
        "width": media.width,
        "height": media.height,
        "fps": media.fps,
        "audio_codec": media.audio_codec,
        "sample_rate": media.sample_rate,
        "channels": media.channels,
    }


class StreamRepository(Repository):
    """Create, look up and move streams through their life cycle.

    Every method runs in its own short transaction and returns plain :class:`StreamRecord` values.
    With a :class:`KeyVault`, keys are also stored encrypted so :meth:`reveal_key` can show them to owners.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], vault: KeyVault | None = None) -> None:
        super().__init__(sessions)
        self._vault = vault

    def _ciphertext(self, key: str) -> str | None:
        return None if self._vault is None else self._vault.encrypt(key)

    async def create(
        self, title: str, *, slug: str | None = None, description: str = "", owner_id: str | None = None
    ) -> tuple[StreamRecord, str]:
        """Create a ``DRAFT`` stream; return it with its plaintext key (stored only hashed and encrypted).

        ``owner_id`` names the studio user who manages it (``None``: only admins see it in the studio).

        Without ``slug`` one is derived from ``title`` (a random suffix is added when taken or reserved).
        Raises :class:`InvalidSlug` for a malformed or reserved ``slug`` and :class:`SlugTaken` if in use.
        """
        title = title.strip()
        if not title or len(title) > _MAX_TITLE_LENGTH:
            raise InvalidInput(f"title must be 1-{_MAX_TITLE_LENGTH} characters")
        if slug is not None:
            validate_slug(slug)
            candidates = [slug]
        else:
            base = slugify(title)
            first = base if is_valid_slug(base) else with_suffix(base)
            candidates = [first, *(with_suffix(base) for _ in range(_SLUG_ATTEMPTS - 1))]
        for candidate in candidates:
            key = generate_stream_key()
            row = StreamRow(
                id=str(uuid.uuid4()),
                slug=candidate,
                title=title,
                description=description,
                status=StreamStatus.DRAFT,
                key_hash=hash_stream_key(key),
                key_ciphertext=self._ciphertext(key),
                created_at=datetime.now(UTC),
                viewers=0,
                owner_id=owner_id,
            )
            # The unique constraint decides collisions, also between concurrent creators; a single
            # INSERT per transaction also never needs SQLite to upgrade a read lock to a write lock.
            async with self._sessions() as session:
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                else:
                    return _record(row), key
        if slug is not None:
            raise SlugTaken(f"slug {slug!r} is already in use")
        raise SlugTaken(f"could not find a free slug for title {title!r}")

    async def get(self, slug: str) -> StreamRecord | None:
        """The stream named ``slug``, or ``None``."""
        async with self._sessions() as session:
            row = await session.scalar(select(StreamRow).where(StreamRow.slug == slug))
            return None if row is None else _record(row)

    async def get_by_id(self, stream_id: str) -> StreamRecord | None:
        """The stream with id ``stream_id``, or ``None``."""
        async with self._sessions() as session:
            row = await session.get(StreamRow, stream_id)
            return None if row is None else _record(row)

    async def find_by_key(self, key: str) -> StreamRecord | None:
        """The stream whose key is exactly ``key``, or ``None``.  Compares digests in constant time."""
        if not is_plausible_key(key):
            return None
        digest = hash_stream_key(key)
        async with self._sessions() as session:
            row = await session.scalar(select(StreamRow).where(StreamRow.key_hash == digest))
            if row is None or not key_matches(key, row.key_hash):
                return None
            return _record(row)

    async def list(
        self, status: StreamStatus | None = None, *, owner_id: str | None = None
    ) -> builtins.list[StreamRecord]:
        """All streams (or those with ``status``, or owned by ``owner_id``), newest first."""
        query = select(StreamRow).order_by(StreamRow.created_at.desc(), StreamRow.id)
        if status is not None:
            query = query.where(StreamRow.status == status)
        if owner_id is not None:
            query = query.where(StreamRow.owner_id == owner_id)
        async with self._sessions() as session:
            rows = await session.scalars(query)
            return [_record(row) for row in rows]

    async def _transition(
        self, stream_id: str, target: StreamStatus, changes: dict[str, Any]
    ) -> StreamRecord:
        sources = {source for source, targets in ALLOWED_TRANSITIONS.items() if target in targets}
        if target is StreamStatus.ENDED:
            sources.discard(StreamStatus.ENDED)  # ending twice keeps the first ended_at
        # One conditional UPDATE makes check-and-change atomic on every backend; a read-then-write
        # transaction on SQLite in WAL mode fails with SQLITE_BUSY if another writer commits between.
        statement = (
            update(StreamRow)
            .where(StreamRow.id == stream_id, StreamRow.status.in_(sources))
            .values(status=target, **changes)
            .returning(StreamRow)
        )
        async with self._sessions() as session, session.begin():
            row = await session.scalar(statement)
            if row is not None:
                return _record(row)
            current = await session.get(StreamRow, stream_id)
            if current is None:
                raise NotFound(f"no stream with id {stream_id!r}")
            if current.status is target:
                return _record(current)
            raise InvalidTransition(
                f"stream {current.slug!r} is {current.status.value}, cannot become {target.value}"
            )

    async def mark_live(self, stream_id: str, started_at: datetime) -> StreamRecord:
        """Record that a publisher went live: status ``LIVE``, ``started_at`` set, live info reset."""
        return await self._transition(
            stream_id,
            StreamStatus.LIVE,
            {
                "started_at": require_aware(started_at, "started_at"),
                "ended_at": None,
                "bitrate_kbps": None,
                "viewers": 0,
                **_media_columns(MediaInfo()),
            },
        )

    async def update_live_info(
        self,
        stream_id: str,
        *,
        media: MediaInfo | None = None,
        bitrate_kbps: int | None = None,
        viewers: int | None = None,
    ) -> None:
        """Store what ingest learnt about a stream; arguments left ``None`` keep their stored value."""
        values: dict[str, Any] = {}
        if media is not None:
            values.update(_media_columns(media))
        if bitrate_kbps is not None:
            values["bitrate_kbps"] = bitrate_kbps
        if viewers is not None:
            values["viewers"] = viewers
        async with self._sessions() as session, session.begin():
            if values:
                result = await session.execute(
                    update(StreamRow).where(StreamRow.id == stream_id).values(**values)
                )
                found = result.rowcount > 0  # type: ignore[attr-defined]
            else:
                found = await session.get(StreamRow, stream_id) is not None
        if not found:
            raise NotFound(f"no stream with id {stream_id!r}")

    async def store_bitrates(self, bitrates: Mapping[str, int]) -> None:
        """Store the current bitrate of many streams (by id) in one statement; unknown ids are skipped.

        Ingest reports every live stream at once: one transaction per report instead of one per stream.
        """
        if not bitrates:
            return
        if any(kbps < 0 for kbps in bitrates.values()):
            raise InvalidInput("bitrate_kbps must not be negative")
        table = cast(Table, StreamRow.__table__)
        statement = (
            update(table).where(table.c.id == bindparam("row_id")).values(bitrate_kbps=bindparam("kbps"))
        )
        async with self._sessions() as session, session.begin():
            await session.execute(statement, [{"row_id": k, "kbps": v} for k, v in bitrates.items()])

    async def mark_ended(self, stream_id: str, ended_at: datetime) -> StreamRecord:
        """Record that the publisher left: status ``ENDED``, ``ended_at`` set, no viewers.

        Ending an ``ENDED`` stream again keeps the first ``ended_at``.
        """
        moment = require_aware(ended_at, "ended_at")
        return await self._transition(stream_id, StreamStatus.ENDED, {"ended_at": moment, "viewers": 0})

    async def end_all_live(self, ended_at: datetime) -> int:
        """End every ``LIVE`` stream (start-up recovery after a crash); return how many were ended."""
        moment = require_aware(ended_at, "ended_at")
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(StreamRow)
                .where(StreamRow.status == StreamStatus.LIVE)
                .values(status=StreamStatus.ENDED, ended_at=moment, viewers=0)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def rotate_key(self, slug: str) -> str:
        """Give the stream ``slug`` a new key and return it; the old key stops working at once."""
        key = generate_stream_key()
        changes = {"key_hash": hash_stream_key(key), "key_ciphertext": self._ciphertext(key)}
        async with self._sessions() as session, session.begin():
            result = await session.execute(update(StreamRow).where(StreamRow.slug == slug).values(**changes))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"no stream with slug {slug!r}")
        return key

    async def reveal_key(self, slug: str) -> str | None:
        """The current key of ``slug`` for its owner; ``None`` when it cannot be decrypted.

        That is the case for keys created before encryption existed (migration 0002), by a process
        without a vault, or under another server secret: rotating the key makes it readable again.
        Raises :class:`NotFound` for an unknown slug.
        """
        async with self._sessions() as session:
            row = await session.execute(
                select(StreamRow.key_ciphertext, StreamRow.key_hash).where(StreamRow.slug == slug)
            )
            found = row.first()
        if found is None:
            raise NotFound(f"no stream with slug {slug!r}")
        ciphertext, key_hash = found
        if ciphertext is None or self._vault is None:
            return None
        key = self._vault.decrypt(ciphertext)
        # A ciphertext that does not match the lookup hash must never be shown as the key.
        if key is None or not key_matches(key, key_hash):
            return None
        return key

    async def update(
        self,
        slug: str,
        *,
        title: str | None = None,
        description: str | None = None,
        new_slug: str | None = None,
    ) -> StreamRecord:
        """Change the title, description and/or slug of ``slug``; arguments left ``None`` stay.

        Raises :class:`NotFound`, :class:`InvalidInput` (bad title), :class:`InvalidSlug` or
        :class:`SlugTaken`.
        """
        values: dict[str, Any] = {}
        if title is not None:
            title = title.strip()
            if not title or len(title) > _MAX_TITLE_LENGTH:
                raise InvalidInput(f"title must be 1-{_MAX_TITLE_LENGTH} characters")
            values["title"] = title
        if description is not None:
            values["description"] = description
        if new_slug is not None and new_slug != slug:
            values["slug"] = validate_slug(new_slug)
        if not values:
            record = await self.get(slug)
            if record is None:
                raise NotFound(f"no stream with slug {slug!r}")
            return record
        statement = update(StreamRow).where(StreamRow.slug == slug).values(**values).returning(StreamRow)
        async with self._sessions() as session:
            try:
                async with session.begin():
                    row = await session.scalar(statement)
                    record = None if row is None else _record(row)
            except IntegrityError as exc:
                raise SlugTaken(f"slug {new_slug!r} is already in use") from exc
        if record is None:
            raise NotFound(f"no stream with slug {slug!r}")
        return record

    async def rename(self, slug: str, new_slug: str) -> StreamRecord:
        """Give the stream ``slug`` the slug ``new_slug``.

        Raises :class:`NotFound`, :class:`InvalidSlug` or :class:`SlugTaken`.
        """
        return await self.update(slug, new_slug=new_slug)

    async def delete(self, slug: str) -> bool:
        """Delete the stream ``slug`` and its sessions; ``False`` if there was none."""
        async with self._sessions() as session, session.begin():
            stream_id = await session.scalar(select(StreamRow.id).where(StreamRow.slug == slug))
            if stream_id is None:
                return False
            # Explicit, not only ON DELETE CASCADE: SQLite enforces foreign keys only when told to.
            await session.execute(delete(SessionRow).where(SessionRow.stream_id == stream_id))
            result = await session.execute(delete(StreamRow).where(StreamRow.id == stream_id))
            return bool(result.rowcount)  # type: ignore[attr-defined]
