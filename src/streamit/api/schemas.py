"""Pydantic shapes of the public API's JSON.  A stream's key never appears in any of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamit.config import Settings
from streamit.db import StreamRecord, StreamStatus


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
    """Where to watch a stream; ``hls`` is ``null`` unless the stream is ``LIVE``."""

    model_config = ConfigDict(frozen=True)

    hls: str | None = Field(examples=["http://localhost:8080/hls/my-show/index.m3u8"])


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


class StreamListOut(BaseModel):
    """A list of streams, newest first."""

    model_config = ConfigDict(frozen=True)

    streams: list[StreamOut]


class StreamPlaybackOut(BaseModel):
    """Playback information of one stream."""

    model_config = ConfigDict(frozen=True)

    slug: str
    status: StreamStatus
    hls: str | None


class ProblemOut(BaseModel):
    """An error body in the style of RFC 9457 (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


def playback_url(settings: Settings, slug: str) -> str:
    """The HLS URL of ``slug``, whatever its status."""
    return f"{settings.resolved_public_url}/hls/{slug}/index.m3u8"


def stream_out(record: StreamRecord, settings: Settings) -> StreamOut:
    """The public view of ``record``."""
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
    live = record.status is StreamStatus.LIVE
    return StreamOut(
        id=record.id,
        slug=record.slug,
        title=record.title,
        description=record.description,
        status=record.status,
        started_at=record.started_at,
        ended_at=record.ended_at,
        playback=PlaybackOut(hls=playback_url(settings, record.slug) if live else None),
        media=MediaOut(video=video, audio=audio),
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
    )
