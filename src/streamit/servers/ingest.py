"""Ingest: turns RTMP publish sessions into live streams — authorisation, takeover, packaging, status.

One :class:`IngestService` per process.  Each RTMP connection gets an :class:`IngestSession`, fed with the
events of its :class:`~streamit.rtmp.RtmpConnection`.  A publish is authorised by stream key; the media of an
accepted publish is demuxed (FLV → Frames), fanned out through a :class:`~streamit.media.stream.Stream`,
packaged to HLS and stored by the origin's :class:`~streamit.origin.SegmentStore`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from streamit.config import Settings, TakeoverPolicy
from streamit.db import Database, MediaInfo, StreamRecord
from streamit.errors import PublishRefused, RemoteProtocolError, UnsupportedCodec
from streamit.flv import FlvDemuxer
from streamit.hls import HlsPackager
from streamit.media import AudioConfig, Frame, VideoConfig
from streamit.media.stream import Stream, StreamItem
from streamit.origin.store import SegmentStore, SegmentStoreRegistry
from streamit.rtmp import (
    AudioReceived,
    ConnectRequested,
    MetaDataReceived,
    PublishRequested,
    PublishStopped,
    RtmpConnection,
    StreamDeleted,
    VideoReceived,
)
from streamit.rtmp.events import Event

log = logging.getLogger(__name__)

PUBLISH_APP = "live"
LIVE_INFO_INTERVAL = 5.0


def describe_key(key: str) -> str:
    """A loggable hint of an attempted key: never the key itself (at most its first 3 characters)."""
    return f"{key[:3]}…({len(key)} chars)" if key else "(empty)"


@dataclass
class Channel:
    """The packaging state of one stream in this process; it outlives publish sessions (republish)."""

    record: StreamRecord
    packager: HlsPackager
    store: SegmentStore
    owner: IngestSession | None = None
    stream: Stream | None = None  # the live fan-out of the current publish
    published_before: bool = False
    ending: asyncio.Task[None] | None = None  # storing the last publish's ENDED

    async def store_ended(self, ended_at: datetime, db: Database) -> None:
        """Record in the database that the stream ended."""
        try:
            self.record = await db.streams.mark_ended(self.record.id, ended_at)
        except Exception as exc:
            log.error("stream %s: could not mark ENDED: %s", self.record.slug, exc)
        finally:
            self.ending = None

    def package(self, item: StreamItem) -> None:
        """Stream sink: package one config or frame and store what the packager produced."""
        if isinstance(item, Frame):
            self.store.apply(self.packager.on_frame(item, datetime.now(UTC)))
        else:
            self.store.apply(self.packager.on_config(item))


@dataclass
class PublishState:
    """What a session knows about its accepted publish."""

    channel: Channel
    stream_id: int
    stream: Stream
    demuxer: FlvDemuxer = field(default_factory=FlvDemuxer)
    video: VideoConfig | None = None
    audio: AudioConfig | None = None
    media_bytes: int = 0
    started: float = 0.0
    unsupported_logged: bool = False


class IngestService:
    """Authorises publishers and owns the live channels of this process."""

    def __init__(self, settings: Settings, db: Database, stores: SegmentStoreRegistry) -> None:
        self.settings = settings
        self.db = db
        self.stores = stores
        self.channels: dict[str, Channel] = {}  # by stream id
        self._background: set[asyncio.Task[None]] = set()

    def session(self, peer: str, conn: RtmpConnection, close: Callable[[], None]) -> IngestSession:
        """A new session for the RTMP connection ``conn`` from ``peer``; ``close`` closes its transport."""
        return IngestSession(self, peer, conn, close)

    def channel_for(self, record: StreamRecord) -> Channel:
        """The channel of ``record``, created on its first publish in this process."""
        channel = self.channels.get(record.id)
        if channel is None:
            store = self.stores.open(record.slug)
            store.reset()
            packager = HlsPackager(
                target_duration=Fraction(self.settings.hls_segment_duration).limit_denominator(1000),
                playlist_length=self.settings.hls_playlist_length,
            )
            channel = Channel(record=record, packager=packager, store=store)
            self.channels[record.id] = channel
        else:
            channel.record = record
        return channel

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a DB update in the background, keeping a reference so it is not garbage-collected."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def report_live_info(self, interval: float = LIVE_INFO_INTERVAL) -> None:
        """Store each live stream's bitrate every ``interval`` seconds (runs until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            for channel in list(self.channels.values()):
                owner = channel.owner
                if owner is None:
                    continue
                kbps = owner.bitrate_kbps(loop.time())
                try:
                    await self.db.streams.update_live_info(channel.record.id, bitrate_kbps=kbps)
                except Exception as exc:
                    log.warning("stream %s: could not store bitrate: %s", channel.record.slug, exc)

    async def shutdown(self) -> None:
        """End every live publish (playlists get ENDLIST, streams ENDED) and wait for DB updates."""
        for channel in list(self.channels.values()):
            owner = channel.owner
            if owner is not None:
                owner.end_publish("server shutting down")
                owner.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


class IngestSession:
    """The ingest side of one RTMP connection."""

    def __init__(
        self, service: IngestService, peer: str, conn: RtmpConnection, close: Callable[[], None]
    ) -> None:
        self.service = service
        self.peer = peer
        self.conn = conn
        self._close = close
        self.publish: PublishState | None = None
        self.closed = False

    def handle(self, event: Event) -> Coroutine[Any, Any, None] | None:
        """React to one event of the connection.

        Media and control events are handled at once.  A publish request needs the database: it is
        returned as a coroutine, which the I/O layer awaits before it hands over the next event.
        """
        conn = self.conn
        if isinstance(event, VideoReceived):
            self._on_media(event.stream_id, event.timestamp, event.payload, video=True)
        elif isinstance(event, AudioReceived):
            self._on_media(event.stream_id, event.timestamp, event.payload, video=False)
        elif isinstance(event, MetaDataReceived):
            if self.publish is not None and event.stream_id == self.publish.stream_id:
                self.publish.demuxer.feed_metadata(dict(event.values))
        elif isinstance(event, ConnectRequested):
            app = event.app.split("?", 1)[0].strip("/")
            if app != PUBLISH_APP:
                log.info("rtmp connect refused from %s: unknown application %r", self.peer, app)
                conn.reject_connect(event.transaction_id, f"unknown application {app!r}; use /{PUBLISH_APP}")
                self.close()
            else:
                conn.accept_connect(event.transaction_id)
        elif isinstance(event, PublishRequested):
            return self._on_publish(event, conn)
        elif (
            isinstance(event, PublishStopped | StreamDeleted)
            and self.publish is not None
            and event.stream_id == self.publish.stream_id
        ):
            self.end_publish("publisher stopped")
        return None

    async def _on_publish(self, event: PublishRequested, conn: RtmpConnection) -> None:
        if self.publish is not None:
            conn.reject_publish(event.stream_id, "this connection is already publishing")
            return
        key = event.name.split("?", 1)[0]
        try:
            record = await self._authorise(key)
        except PublishRefused as refused:
            log.warning(
                "publish refused from %s: %s (key %s)", self.peer, refused.description, describe_key(key)
            )
            conn.reject_publish(event.stream_id, refused.description, code=refused.code)
            self.close()
            return
        service = self.service
        channel = service.channel_for(record)
        if channel.ending is not None:
            # The previous publish's ENDED must be stored before this one's LIVE.
            await channel.ending
        previous = channel.owner
        if previous is not None:
            if service.settings.takeover is TakeoverPolicy.REJECT:
                log.warning("publish refused from %s: stream %s is already live", self.peer, record.slug)
                conn.reject_publish(
                    event.stream_id, "stream is already live", code="NetStream.Publish.BadName"
                )
                self.close()
                return
            log.info("stream %s: publisher %s takes over from %s", record.slug, self.peer, previous.peer)
            previous.taken_over()
        elif channel.published_before:
            channel.packager.restart()
        channel.owner = self
        channel.published_before = True
        stream = Stream()
        stream.add_sink(channel.package)
        channel.stream = stream
        loop = asyncio.get_running_loop()
        self.publish = PublishState(
            channel=channel, stream_id=event.stream_id, stream=stream, started=loop.time()
        )
        if previous is None:
            channel.record = await service.db.streams.mark_live(record.id, datetime.now(UTC))
        conn.accept_publish(event.stream_id)
        log.info("stream %s is live, published from %s", record.slug, self.peer)

    async def _authorise(self, key: str) -> StreamRecord:
        if not key:
            raise PublishRefused("NetStream.Publish.BadName", "missing stream key")
        try:
            record = await self.service.db.streams.find_by_key(key)
        except Exception as exc:
            log.error("publish from %s failed: database error: %s", self.peer, exc)
            raise PublishRefused("NetStream.Publish.Failed", "server error, try again") from exc
        if record is None:
            raise PublishRefused("NetStream.Publish.BadName", "unknown stream key")
        return record

    def _on_media(self, stream_id: int, timestamp: int, payload: bytes, *, video: bool) -> None:
        state = self.publish
        if state is None or stream_id != state.stream_id or state.channel.owner is not self:
            return
        state.media_bytes += len(payload)
        try:
            items = (
                state.demuxer.feed_video(timestamp, payload)
                if video
                else state.demuxer.feed_audio(timestamp, payload)
            )
            for item in items:
                if not isinstance(item, Frame):
                    if isinstance(item, VideoConfig):
                        state.video = item
                    else:
                        state.audio = item
                    self.service.spawn(self._report_media())
                state.stream.push(item)
        except UnsupportedCodec as exc:
            # The demuxer or the packager cannot carry this track; the other track goes on.
            if not state.unsupported_logged:
                log.warning("stream %s: %s; that track is ignored", state.channel.record.slug, exc)
                state.unsupported_logged = True

    async def _report_media(self) -> None:
        state = self.publish
        if state is None:
            return
        media = media_info(state.video, state.audio)
        try:
            await self.service.db.streams.update_live_info(state.channel.record.id, media=media)
        except Exception as exc:
            log.warning("stream %s: could not store media info: %s", state.channel.record.slug, exc)

    def bitrate_kbps(self, now: float) -> int | None:
        """Average media bitrate of the current publish so far."""
        state = self.publish
        if state is None or now <= state.started:
            return None
        return int(state.media_bytes * 8 / 1000 / (now - state.started))

    def taken_over(self) -> None:
        """Another connection took this session's stream over: stop feeding it and close."""
        state = self.publish
        self.publish = None
        if state is not None:
            state.stream.end()
            state.channel.packager.restart()
            self.conn.end_publish(state.stream_id, "another publisher took this stream over")
        self.close()

    def end_publish(self, reason: str) -> None:
        """The publisher stopped: playlist gets ENDLIST at once, the stream becomes ENDED in the DB."""
        state = self.publish
        self.publish = None
        if state is None or state.channel.owner is not self:
            return
        channel = state.channel
        channel.owner = None
        channel.stream = None
        state.stream.end()
        channel.store.apply(channel.packager.end())
        channel.store.release_memory()
        log.info("stream %s ended: %s", channel.record.slug, reason)
        channel.ending = self.service.spawn(channel.store_ended(datetime.now(UTC), self.service.db))

    def close(self) -> None:
        """Close the transport once pending replies are written."""
        if not self.closed:
            self.closed = True
            self._close()

    def connection_lost(self, error: BaseException | None) -> None:
        """The TCP connection ended (cleanly, by a protocol error, or by the server)."""
        self.closed = True
        if isinstance(error, RemoteProtocolError):
            log.warning("rtmp connection from %s closed: protocol error: %s", self.peer, error)
        self.end_publish("connection closed")


def media_info(video: VideoConfig | None, audio: AudioConfig | None) -> MediaInfo:
    """The stream's media description for the API."""
    return MediaInfo(
        video_codec=video.codec if video else None,
        width=video.width if video else None,
        height=video.height if video else None,
        fps=float(video.fps) if video and video.fps else None,
        audio_codec=audio.codec if audio else None,
        sample_rate=audio.sample_rate if audio else None,
        channels=audio.channels if audio else None,
    )
