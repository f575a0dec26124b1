"""Pydantic shapes of the API's JSON.  Only the owner shapes (:class:`OwnerStreamOut`) carry a stream key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamit.config import Settings
from streamit.db import SessionRecord, StreamRecord, StreamStatus
from streamit.db.slugs import MAX_SLUG_LENGTH, SLUG_PATTERN

MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 5000
# "Has a character that str.strip() keeps", spelt out: "\\S" means different things in Python, in
# ECMA-262 (which JSON Schema patterns follow) and in pydantic's Rust regex engine.
VISIBLE_TEXT_PATTERN = (
    r"[^\t\n\u000b\u000c\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
KEY_NOT_STORED = (
    "This stream's key was created before keys were stored for owners and cannot be shown; "
    "rotate the key to get a new one."
)


class VideoInfo(BaseModel):
    """The video track as published."""

    model_config = ConfigDict(frozen=True)

    codec: str = Field(examples=["h264"])
    width: int | None = Field(examples=[1920])
    height: int | None = Field(examples=[1080])
    fps: float | None = Field(examples=[30.0])


class AudioInfo(BaseModel):
    """The audio track as published."""

    model_config = ConfigDict(frozen=True)

    codec: str = Field(examples=["aac"])
    sample_rate: int | None = Field(examples=[48000])
    channels: int | None = Field(examples=[2])


class MediaOut(BaseModel):
    """Tracks of a stream; ``null`` for a track that is absent or not yet seen."""

    model_config = ConfigDict(frozen=True)

    video: VideoInfo | None
    audio: AudioInfo | None


class PlaybackOut(BaseModel):
    """Where to watch a stream; ``null`` unless the stream is ``LIVE``.

    ``hls`` is the MPEG-TS playlist every HLS player plays; ``llhls`` the Low-Latency HLS playlist (fMP4
    parts, blocking reload) for players that support it, ``null`` when the server does not package LL-HLS.
    """

    model_config = ConfigDict(frozen=True)

    hls: str | None = Field(examples=["http://localhost:8080/hls/my-show/index.m3u8"])
    llhls: str | None = Field(default=None, examples=["http://localhost:8080/hls/my-show/ll.m3u8"])


class StreamOut(BaseModel):
    """A stream as the public sees it."""

    model_config = ConfigDict(frozen=True)

    id: str
    slug: str = Field(examples=["my-show"])
    title: str
    description: str
    status: StreamStatus
    started_at: datetime | None
    ended_at: datetime | None
    playback: PlaybackOut
    media: MediaOut
    bitrate_kbps: int | None
    viewers: int


class OwnerStreamOut(StreamOut):
    """A stream as its owner sees it: the public fields plus the key and where to publish with it.

    ``stream_key`` and ``publish_url`` are ``null`` when the key cannot be shown (``key_notice`` says why).
    """

    created_at: datetime
    stream_key: str | None = Field(examples=["sk_3q2-7wEXAMPLE"])
    publish_url: str | None = Field(examples=["rtmp://localhost:1935/live/sk_3q2-7wEXAMPLE"])
    key_notice: str | None


# Owner shapes first: left-to-right validation must not strip an owner's fields by matching the public shape.
AnyStreamOut = Annotated[OwnerStreamOut | StreamOut, Field(union_mode="left_to_right")]


class StreamListOut(BaseModel):
    """A list of streams, newest first (with owner fields when the request carried a valid token)."""

    model_config = ConfigDict(frozen=True)

    streams: list[AnyStreamOut]


def _encodable(value: str | None) -> str | None:
    # JSON may carry lone surrogates ("\\ud800"); no database can store them as UTF-8.
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


class StreamCreateIn(BaseModel):
    """A new stream.  Without ``slug`` one is derived from the title."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(
        min_length=1, max_length=MAX_TITLE_LENGTH, pattern=VISIBLE_TEXT_PATTERN, examples=["Morning Show"]
    )
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    slug: str | None = Field(None, max_length=MAX_SLUG_LENGTH, pattern=SLUG_PATTERN, examples=["morning"])

    _check_text = field_validator("title", "description")(_encodable)


class StreamUpdateIn(BaseModel):
    """Changes to a stream; fields left out (or ``null``) stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE_LENGTH, pattern=VISIBLE_TEXT_PATTERN)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)
    slug: str | None = Field(None, max_length=MAX_SLUG_LENGTH, pattern=SLUG_PATTERN)

    _check_text = field_validator("title", "description")(_encodable)


class SessionOut(BaseModel):
    """One publish of a stream (``ended_at`` is ``null`` while it goes on)."""

    model_config = ConfigDict(frozen=True)

    id: str
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
    end_reason: str | None = Field(examples=["unpublish"])


class SessionListOut(BaseModel):
    """The publish sessions of a stream, newest first."""

    model_config = ConfigDict(frozen=True)

    sessions: list[SessionOut]


class StreamPlaybackOut(BaseModel):
    """Playback information of one stream; ``hls`` is ``null`` unless it is ``LIVE``."""

    model_config = ConfigDict(frozen=True)

    slug: str
    status: StreamStatus
    hls: str | None
    llhls: str | None = None
    started_at: datetime | None
    media: MediaOut


class ProblemOut(BaseModel):
    """An error body in the style of RFC 9457 (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


def playback_url(settings: Settings, slug: str) -> str:
    """The HLS URL of ``slug``, whatever its status."""
    return f"{settings.resolved_playback_url}/hls/{slug}/index.m3u8"


def llhls_url(settings: Settings, slug: str) -> str | None:
    """The LL-HLS playlist URL of ``slug``; ``None`` when LL-HLS packaging is off."""
    if not settings.hls_low_latency:
        return None
    return f"{settings.resolved_playback_url}/hls/{slug}/ll.m3u8"


def media_out(record: StreamRecord) -> MediaOut:
    """The tracks of ``record``."""
    media = record.media
    video = (
        None
        if media.video_codec is None
        else VideoInfo(codec=media.video_codec, width=media.width, height=media.height, fps=media.fps)
    )
    audio = (
        None
        if media.audio_codec is None
        else AudioInfo(codec=media.audio_codec, sample_rate=media.sample_rate, channels=media.channels)
    )
    return MediaOut(video=video, audio=audio)


def stream_out(record: StreamRecord, settings: Settings) -> StreamOut:
    """The public view of ``record``."""
    live = record.status is StreamStatus.LIVE
    return StreamOut(
        id=record.id,
        slug=record.slug,
        title=record.title,
        description=record.description,
        status=record.status,
        started_at=record.started_at,
        ended_at=record.ended_at,
        playback=PlaybackOut(
            hls=playback_url(settings, record.slug) if live else None,
            llhls=llhls_url(settings, record.slug) if live else None,
        ),
        media=media_out(record),
        bitrate_kbps=record.bitrate_kbps,
        viewers=record.viewers,
    )


def stream_playback_out(record: StreamRecord, settings: Settings) -> StreamPlaybackOut:
    """Playback information of ``record``."""
    live = record.status is StreamStatus.LIVE
    return StreamPlaybackOut(
        slug=record.slug,
        status=record.status,
        hls=playback_url(settings, record.slug) if live else None,
        llhls=llhls_url(settings, record.slug) if live else None,
        started_at=record.started_at,
        media=media_out(record),
    )


def publish_url(settings: Settings, key: str) -> str:
    """The RTMP URL a broadcaster publishes ``key`` to."""
    return f"{settings.resolved_rtmp_url}/{key}"


def owner_stream_out(record: StreamRecord, key: str | None, settings: Settings) -> OwnerStreamOut:
    """The owner's view of ``record`` with its key (``None`` when the key cannot be shown)."""
    public = stream_out(record, settings)
    return OwnerStreamOut(
        **public.model_dump(),
        created_at=record.created_at,
        stream_key=key,
        publish_url=None if key is None else publish_url(settings, key),
        key_notice=KEY_NOT_STORED if key is None else None,
    )


def session_out(record: SessionRecord) -> SessionOut:
    """The API view of a publish session."""
    return SessionOut(
        id=record.id,
        node=record.node,
        remote_addr=record.remote_addr,
        started_at=record.started_at,
        ended_at=record.ended_at,
        bytes_in=record.bytes_in,
        avg_bitrate_kbps=record.avg_bitrate_kbps,
        peak_bitrate_kbps=record.peak_bitrate_kbps,
        video_codec=record.video_codec,
        audio_codec=record.audio_codec,
        width=record.width,
        height=record.height,
        end_reason=record.end_reason,
    )
