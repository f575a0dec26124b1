"""Plain, immutable views of catalogue rows handed to the rest of Streamit (never ORM objects)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class StreamStatus(enum.Enum):
    """Life cycle of a stream: ``DRAFT`` → ``LIVE`` (on publish) → ``ENDED`` (on unpublish)."""

    DRAFT = "DRAFT"
    LIVE = "LIVE"
    ENDED = "ENDED"


# Which status a stream may move to from each status.  LIVE → LIVE covers a publisher takeover and
# ENDED → LIVE a broadcaster going live again with the same key; DRAFT → ENDED never happened.
ALLOWED_TRANSITIONS: dict[StreamStatus, frozenset[StreamStatus]] = {
    StreamStatus.DRAFT: frozenset({StreamStatus.LIVE}),
    StreamStatus.LIVE: frozenset({StreamStatus.LIVE, StreamStatus.ENDED}),
    StreamStatus.ENDED: frozenset({StreamStatus.LIVE, StreamStatus.ENDED}),
}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the publisher is sending, as far as ingest has found out."""

    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One stream of the catalogue.  Carries neither the stream key nor its hash."""

    id: str
    slug: str
    title: str
    description: str
    status: StreamStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    media: MediaInfo
    bitrate_kbps: int | None
    viewers: int
    owner_id: str | None = None
    """The studio user managing the stream; ``None`` for streams made by the CLI or API."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One publish of a stream: from the accepted publish to its end (``ended_at`` ``None`` while open).

    ``end_reason`` says why it ended: ``"unpublish"``, ``"disconnect"``, ``"takeover"``, ``"crash"`` …
    """

    id: str
    stream_id: str
    node: str
    remote_addr: str
    started_at: datetime
    ended_at: datetime | None
    bytes_in: int
    avg_bitrate_kbps: int | None
    peak_bitrate_kbps: int | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    end_reason: str | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API bearer token, without the token itself (only its digest is stored)."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
