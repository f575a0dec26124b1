"""Publish sessions: one row per accepted publish, with its traffic and media figures and why it ended."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from streamit.db.models import SessionRow
from streamit.db.records import MediaInfo, SessionRecord
from streamit.db.transactions import Repository, require_aware
from streamit.errors import InvalidInput, NotFound

_MAX_NODE_LENGTH = 128
_MAX_ADDRESS_LENGTH = 255
_MAX_REASON_LENGTH = 32


def _record(row: SessionRow) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        stream_id=row.stream_id,
        node=row.node,
        remote_addr=row.remote_addr,
        started_at=row.started_at,
        ended_at=row.ended_at,
        bytes_in=row.bytes_in,
        avg_bitrate_kbps=row.avg_bitrate_kbps,
        peak_bitrate_kbps=row.peak_bitrate_kbps,
        video_codec=row.video_codec,
        audio_codec=row.audio_codec,
        width=row.width,
        height=row.height,
        end_reason=row.end_reason,
    )


def _traffic(
    bytes_in: int | None, avg_bitrate_kbps: int | None, peak_bitrate_kbps: int | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in (
        ("bytes_in", bytes_in),
        ("avg_bitrate_kbps", avg_bitrate_kbps),
        ("peak_bitrate_kbps", peak_bitrate_kbps),
    ):
        if value is not None:
            if value < 0:
                raise InvalidInput(f"{name} must not be negative")
            values[name] = value
    return values


def _bounded(value: str, name: str, limit: int) -> str:
    if not value or len(value) > limit:
        raise InvalidInput(f"{name} must be 1-{limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class SessionTraffic:
    """What a live session has carried so far (see :meth:`SessionRepository.store_traffic`)."""

    session_id: str
    bytes_in: int
    avg_bitrate_kbps: int | None
    peak_bitrate_kbps: int


class SessionRepository(Repository):
    """Open, update, close and list publish sessions.  Every method is one short transaction."""

    async def open(
        self, stream_id: str, *, node: str, remote_addr: str, started_at: datetime
    ) -> SessionRecord:
        """Start a session of ``stream_id`` published from ``remote_addr`` to ``node``.

        Raises :class:`NotFound` if the stream does not exist.
        """
        row = SessionRow(
            id=str(uuid.uuid4()),
            stream_id=stream_id,
            node=_bounded(node, "node", _MAX_NODE_LENGTH),
            # An address is informational: truncate rather than lose the session.
            remote_addr=remote_addr[:_MAX_ADDRESS_LENGTH],
            started_at=require_aware(started_at, "started_at"),
            ended_at=None,
            bytes_in=0,
        )
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                await session.rollback()
                raise NotFound(f"no stream with id {stream_id!r}") from exc
            return _record(row)

    async def store_traffic(self, figures: Sequence[SessionTraffic]) -> None:
        """Store the latest traffic figures of many sessions in one statement; unknown ids are skipped
        and an average left ``None`` keeps its stored value."""
        if not figures:
            return
        for figure in figures:
            _traffic(figure.bytes_in, figure.avg_bitrate_kbps, figure.peak_bitrate_kbps)
        table = cast(Table, SessionRow.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                bytes_in=bindparam("bytes_in"),
                avg_bitrate_kbps=func.coalesce(bindparam("avg"), table.c.avg_bitrate_kbps),
                peak_bitrate_kbps=bindparam("peak"),
            )
        )
        params = [
            {"row_id": f.session_id, "bytes_in": f.bytes_in, "avg": f.avg_bitrate_kbps}
            | {"peak": f.peak_bitrate_kbps}
            for f in figures
        ]
        async with self._sessions() as session, session.begin():
            await session.execute(statement, params)

    async def update(
        self,
        session_id: str,
        *,
        bytes_in: int | None = None,
        avg_bitrate_kbps: int | None = None,
        peak_bitrate_kbps: int | None = None,
        media: MediaInfo | None = None,
    ) -> None:
        """Store the latest figures of a session; arguments left ``None`` keep their stored value.

        Raises :class:`NotFound` for an unknown session.
        """
        values = _traffic(bytes_in, avg_bitrate_kbps, peak_bitrate_kbps)
        if media is not None:
            values.update(
                video_codec=media.video_codec,
                audio_codec=media.audio_codec,
                width=media.width,
                height=media.height,
            )
        async with self._sessions() as session, session.begin():
            if values:
                result = await session.execute(
                    update(SessionRow).where(SessionRow.id == session_id).values(**values)
                )
                found = result.rowcount > 0  # type: ignore[attr-defined]
            else:
                found = await session.get(SessionRow, session_id) is not None
        if not found:
            raise NotFound(f"no session with id {session_id!r}")

    async def close(
        self,
        session_id: str,
        *,
        ended_at: datetime,
        end_reason: str,
        bytes_in: int | None = None,
        avg_bitrate_kbps: int | None = None,
        peak_bitrate_kbps: int | None = None,
    ) -> SessionRecord:
        """End a session; closing one that already ended changes nothing and returns it as stored.

        Raises :class:`NotFound` for an unknown session.
        """
        values = _traffic(bytes_in, avg_bitrate_kbps, peak_bitrate_kbps)
        values["ended_at"] = require_aware(ended_at, "ended_at")
        values["end_reason"] = _bounded(end_reason, "end_reason", _MAX_REASON_LENGTH)
        # Conditional on still being open, so the first close wins also between concurrent closers.
        statement = (
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.ended_at.is_(None))
            .values(**values)
            .returning(SessionRow)
        )
        async with self._sessions() as session, session.begin():
            row = await session.scalar(statement)
            if row is None:
                row = await session.get(SessionRow, session_id)
            if row is None:
                raise NotFound(f"no session with id {session_id!r}")
            return _record(row)

    async def get(self, session_id: str) -> SessionRecord | None:
        """The session ``session_id``, or ``None``."""
        async with self._sessions() as session:
            row = await session.get(SessionRow, session_id)
            return None if row is None else _record(row)

    async def list_for_stream(self, stream_id: str) -> builtins.list[SessionRecord]:
        """Every session of ``stream_id``, newest first."""
        query = (
            select(SessionRow)
            .where(SessionRow.stream_id == stream_id)
            .order_by(SessionRow.started_at.desc(), SessionRow.id)
        )
        async with self._sessions() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def open_for_stream(self, stream_id: str) -> builtins.list[SessionRecord]:
        """The sessions of ``stream_id`` that have not ended (on any node), newest first."""
        query = (
            select(SessionRow)
            .where(SessionRow.stream_id == stream_id, SessionRow.ended_at.is_(None))
            .order_by(SessionRow.started_at.desc(), SessionRow.id)
        )
        async with self._sessions() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def close_abandoned(
        self, node: str, *, ended_at: datetime, end_reason: str = "crash"
    ) -> builtins.list[SessionRecord]:
        """Close every session ``node`` left open (it stopped without closing them); return them closed."""
        statement = (
            update(SessionRow)
            .where(SessionRow.node == node, SessionRow.ended_at.is_(None))
            .values(
                ended_at=require_aware(ended_at, "ended_at"),
                end_reason=_bounded(end_reason, "end_reason", _MAX_REASON_LENGTH),
            )
            .returning(SessionRow)
        )
        async with self._sessions() as session, session.begin():
            rows = (await session.scalars(statement)).all()
            return sorted((_record(row) for row in rows), key=lambda r: (r.started_at, r.id), reverse=True)
