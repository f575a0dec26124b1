"""Ingest: turns RTMP publish sessions into live streams — authorisation, takeover, packaging, status.

One :class:`IngestService` per process.  Each RTMP connection gets an :class:`IngestSession`, fed with the
events of its :class:`~streamit.rtmp.RtmpConnection`.  A publish is authorised by stream key (and by the
operator's ``on_publish`` callback when configured); the media of an accepted publish is demuxed
(FLV → Frames), fanned out through a :class:`~streamit.media.stream.Stream`, packaged to HLS and stored by the
origin's :class:`~streamit.origin.SegmentStore`.  Every publish is a session row in the database.
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
from streamit.db import Database, MediaInfo, SessionTraffic, StreamRecord
from streamit.discovery import OriginRegistrar
from streamit.errors import InvalidInput, PublishRefused, RemoteProtocolError, StreamitError, UnsupportedCodec
from streamit.flv import FlvDemuxer
from streamit.hls import HlsPackager
from streamit.hooks import (
    STREAM_ENDED,
    STREAM_LIVE,
    PublishCall,
    PublishCallbacks,
    WebhookDispatcher,
    stream_event_data,
)
from streamit.media import AudioConfig, Frame, VideoConfig
from streamit.media.stream import Stream, StreamItem
from streamit.origin.parts import LiveLlHls, LlHlsStoreRegistry
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
from streamit.servers.limits import FailureLimiter

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
    ending: asyncio.Task[None] | None = None  # storing the last publish's end
    last_update_call: float = 0.0
    ll: LiveLlHls | None = None  # the LL-HLS packaging, fed the same items

    def package(self, item: StreamItem) -> None:
        """Stream sink: package one config or frame and store what the packager produced."""
        if isinstance(item, Frame):
            now = datetime.now(UTC)
            events = self.packager.on_frame(item, now)
            if events:  # most frames only join the open segment
                self.store.apply(events)
            if self.ll is not None:
                self.ll.on_frame(item, now)
        else:
            self.store.apply(self.packager.on_config(item))
            if self.ll is not None:
                self.ll.on_config(item)

    def restart(self) -> None:
        """A new publish follows the last one (republish or takeover): packagers continue numbering."""
        self.packager.restart()
        if self.ll is not None:
            self.ll.restart()


@dataclass
class PublishState:
    """What a session knows about its accepted publish."""

    channel: Channel
    stream_id: int
    stream: Stream
    call: PublishCall
    started: float
    started_at: datetime
    session_id: str | None = None
    demuxer: FlvDemuxer = field(default_factory=FlvDemuxer)
    video: VideoConfig | None = None
    audio: AudioConfig | None = None
    media_bytes: int = 0
    sampled_bytes: int = 0
    sampled_at: float = 0.0
    peak_kbps: int = 0
    last_kbps: int | None = None
    unsupported_logged: bool = False

    def average_kbps(self, now: float) -> int | None:
        """Average media bitrate of this publish so far."""
        if now <= self.started:
            return None
        return int(self.media_bytes * 8 / 1000 / (now - self.started))

    def sample(self, now: float) -> int | None:
        """Bitrate since the previous sample; keeps the peak."""
        since = self.sampled_at or self.started
        if now - since < 1.0:
            return None
        kbps = int((self.media_bytes - self.sampled_bytes) * 8 / 1000 / (now - since))
        self.sampled_bytes = self.media_bytes
        self.sampled_at = now
        self.peak_kbps = max(self.peak_kbps, kbps)
        self.last_kbps = kbps
        return kbps


class IngestService:
    """Authorises publishers and owns the live channels of this process.

    It is also the API's :class:`~streamit.api.LiveControl`: :meth:`disconnect` kicks a live publisher.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        stores: SegmentStoreRegistry,
        *,
        callbacks: PublishCallbacks | None = None,
        webhooks: WebhookDispatcher | None = None,
        registrar: OriginRegistrar | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.stores = stores
        self.callbacks = callbacks
        self.webhooks = webhooks
        self.registrar = registrar
        self.channels: dict[str, Channel] = {}  # by stream id
        segment_duration = Fraction(settings.hls_segment_duration).limit_denominator(1000)
        part_duration = Fraction(settings.hls_part_duration).limit_denominator(1000)
        self.ll_stores = (
            LlHlsStoreRegistry(
                target_duration=segment_duration,
                part_target=min(part_duration, segment_duration),
                playlist_length=settings.hls_playlist_length,
                root=stores.root,
            )
            if settings.hls_low_latency
            else None
        )
        self.publish_failures = FailureLimiter(
            limit=settings.publish_failure_limit, window=settings.publish_failure_window
        )
        self._background: set[asyncio.Task[None]] = set()

    @property
    def live_count(self) -> int:
        """Streams with a publisher on this node."""
        return sum(1 for channel in self.channels.values() if channel.owner is not None)

    def session(self, peer: str, conn: RtmpConnection, close: Callable[[], None]) -> IngestSession:
        """A new session for the RTMP connection ``conn`` from ``peer``; ``close`` closes its transport."""
        return IngestSession(self, peer, conn, close)

    def channel_for(self, record: StreamRecord) -> Channel:
        """The channel of ``record``, created on its first publish in this process (or after a rename)."""
        channel = self.channels.get(record.id)
        if channel is not None and channel.record.slug != record.slug and channel.owner is None:
            # Renamed while offline: packaging starts afresh under the new slug.
            self.stores.remove(channel.record.slug)
            if self.ll_stores is not None:
                self.ll_stores.remove(channel.record.slug)
            channel = None
        if channel is None:
            store = self.stores.open(record.slug)
            store.reset()
            packager = HlsPackager(
                target_duration=Fraction(self.settings.hls_segment_duration).limit_denominator(1000),
                playlist_length=self.settings.hls_playlist_length,
            )
            ll = self.ll_stores.open(record.slug) if self.ll_stores is not None else None
            channel = Channel(record=record, packager=packager, store=store, ll=ll)
            self.channels[record.id] = channel
        else:
            channel.record = record
        return channel

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run DB and callback work in the background, keeping a reference so it is not collected."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def emit(self, event_type: str, record: StreamRecord) -> None:
        """Queue a JSON webhook about ``record`` (never blocks)."""
        if self.webhooks is None:
            return
        self.webhooks.emit(event_type, {**stream_event_data(record), "node": self.settings.node_id})

    def announce(self, state: PublishState) -> None:
        """Register (or update) the stream of ``state`` in discovery, with its current media description."""
        if self.registrar is None:
            return
        slug = state.channel.record.slug
        try:
            self.registrar.publish(slug, started_at=state.started_at, metadata=discovery_metadata(state))
        except InvalidInput as exc:
            log.warning("stream %s: cannot be registered for discovery: %s", slug, exc)

    def withdraw(self, slug: str) -> None:
        """Remove ``slug`` from discovery at once (its publish ended)."""
        if self.registrar is not None:
            self.registrar.unpublish(slug)

    async def disconnect(self, stream_id: str, reason: str) -> None:
        """Kick the live publisher of ``stream_id`` (key rotated, stream deleted, refused by on_update)."""
        channel = self.channels.get(stream_id)
        if channel is None or channel.owner is None:
            return
        owner = channel.owner
        log.info("stream %s: disconnecting the publisher %s: %s", channel.record.slug, owner.peer, reason)
        owner.end_publish(reason)
        owner.close()

    async def report_live_info(self, interval: float = LIVE_INFO_INTERVAL) -> None:
        """Every ``interval`` seconds store each live stream's bitrate and session counters, and call
        ``on_update`` when it is due (runs until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            live: list[tuple[IngestSession, PublishState]] = []
            for channel in self.channels.values():
                owner = channel.owner
                state = owner.publish if owner is not None else None
                if owner is not None and state is not None:
                    live.append((owner, state))
            await self.report(live, now)
            for owner, state in live:
                channel = state.channel
                if (
                    self.callbacks is not None
                    and self.settings.on_update_url
                    and now - channel.last_update_call >= self.settings.on_update_interval
                ):
                    channel.last_update_call = now
                    self.spawn(owner.call_on_update(state, int(now - state.started)))

    async def report(self, live: list[tuple[IngestSession, PublishState]], now: float) -> None:
        """Store the bitrate of each of the ``live`` publishes and the counters of their sessions: two
        statements for all of them, however many there are."""
        bitrates: dict[str, int] = {}
        traffic: list[SessionTraffic] = []
        for owner, state in live:
            kbps = state.sample(now)
            if kbps is not None and owner.publish is state:
                self.announce(state)
                bitrates[state.channel.record.id] = kbps
            if state.session_id is not None:
                traffic.append(
                    SessionTraffic(
                        session_id=state.session_id,
                        bytes_in=state.media_bytes,
                        avg_bitrate_kbps=state.average_kbps(now),
                        peak_bitrate_kbps=state.peak_kbps,
                    )
                )
        try:
            await self.db.streams.store_bitrates(bitrates)
            await self.db.sessions.store_traffic(traffic)
        except StreamitError as exc:
            log.warning("could not store the bitrates of %d live stream(s): %s", len(live), exc)

    async def shutdown(self) -> None:
        """End every live publish (playlists get ENDLIST, streams ENDED) and wait for DB updates."""
        for channel in list(self.channels.values()):
            owner = channel.owner
            if owner is not None:
                owner.end_publish("shutdown")
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
        self.connect: ConnectRequested | None = None
        self.publish: PublishState | None = None
        self.closed = False
        self.client_id = str(id(self))

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
                self.connect = event
                conn.accept_connect(event.transaction_id)
        elif isinstance(event, PublishRequested):
            return self._on_publish(event, conn)
        elif (
            isinstance(event, PublishStopped | StreamDeleted)
            and self.publish is not None
            and event.stream_id == self.publish.stream_id
        ):
            self.end_publish("unpublish")
        return None

    def _publish_call(self, name: str) -> PublishCall:
        connect = self.connect
        return PublishCall(
            app=PUBLISH_APP,
            name=name,
            addr=self.peer.rsplit(":", 1)[0],
            tcurl=(connect.tc_url or "") if connect else "",
            flashver=(connect.flash_ver or "") if connect else "",
            clientid=self.client_id,
        )

    def _refuse(self, conn: RtmpConnection, stream_id: int, refused: PublishRefused, key: str) -> None:
        log.warning("publish refused from %s: %s (key %s)", self.peer, refused.description, describe_key(key))
        conn.reject_publish(stream_id, refused.description, code=refused.code)
        self.close()

    async def _on_publish(self, event: PublishRequested, conn: RtmpConnection) -> None:
        if self.publish is not None:
            conn.reject_publish(event.stream_id, "this connection is already publishing")
            return
        key = event.name.split("?", 1)[0]
        call = self._publish_call(event.name)
        service = self.service
        failures = service.publish_failures
        clock = asyncio.get_running_loop().time()
        blocked = failures.blocked_for(call.addr, clock)
        if blocked > 0:
            # Refused before any lookup: a key guesser learns nothing and costs no database round trip.
            self._refuse(
                conn,
                event.stream_id,
                PublishRefused(
                    "NetStream.Publish.BadName",
                    f"too many refused publishes from {call.addr}; retry in {blocked:.0f} s",
                ),
                key,
            )
            return
        try:
            record = await self._authorise(key, call)
        except PublishRefused as refused:
            if refused.code == "NetStream.Publish.BadName":
                count = failures.record_failure(call.addr, asyncio.get_running_loop().time())
                if count >= failures.limit:
                    log.warning(
                        "%s had %d refused publishes within %.0f s; refusing it at once for now",
                        call.addr,
                        count,
                        failures.window,
                    )
            self._refuse(conn, event.stream_id, refused, key)
            return
        channel = service.channel_for(record)
        if channel.ending is not None:
            # The previous publish's end must be stored before this one's start.
            await channel.ending
        previous = channel.owner
        if previous is None and service.live_count >= service.settings.max_streams:
            self._refuse(
                conn,
                event.stream_id,
                PublishRefused(
                    "NetStream.Publish.Failed",
                    f"this server is at its limit of {service.settings.max_streams} live streams",
                ),
                key,
            )
            return
        if previous is not None and service.settings.takeover is TakeoverPolicy.REJECT:
            self._refuse(
                conn,
                event.stream_id,
                PublishRefused("NetStream.Publish.BadName", "stream is already live"),
                key,
            )
            return
        now = datetime.now(UTC)
        # The stream stays live across a takeover: discovery keeps announcing its first start.
        live_since = previous.publish.started_at if previous is not None and previous.publish else now
        if previous is not None:
            log.info("stream %s: publisher %s takes over from %s", record.slug, self.peer, previous.peer)
            previous.taken_over()
        elif channel.published_before:
            channel.restart()
        channel.owner = self
        channel.published_before = True
        stream = Stream()
        stream.add_sink(channel.package)
        channel.stream = stream
        loop = asyncio.get_running_loop()
        state = PublishState(
            channel=channel,
            stream_id=event.stream_id,
            stream=stream,
            call=call,
            started=loop.time(),
            started_at=live_since,
        )
        self.publish = state
        try:
            if previous is None:
                channel.record = await service.db.streams.mark_live(record.id, now)
            session = await service.db.sessions.open(
                record.id, node=service.settings.node_id, remote_addr=self.peer, started_at=now
            )
            state.session_id = session.id
        except StreamitError as exc:
            log.error("stream %s: could not record the publish: %s", record.slug, exc)
        if self.publish is not state:
            return  # disconnected (rotated key, deleted stream) while the database answered
        conn.accept_publish(event.stream_id)
        log.info("stream %s is live, published from %s", record.slug, self.peer)
        if previous is None:
            # A takeover keeps the registration of the publish it replaces.
            service.announce(state)
            service.emit(STREAM_LIVE, channel.record)

    async def _authorise(self, key: str, call: PublishCall) -> StreamRecord:
        if not key:
            raise PublishRefused("NetStream.Publish.BadName", "missing stream key")
        streams = self.service.db.streams
        try:
            record = await streams.find_by_key(key)
        except Exception as exc:
            log.error("publish from %s failed: database error: %s", self.peer, exc)
            raise PublishRefused("NetStream.Publish.Failed", "server error, try again") from exc
        if record is None:
            raise PublishRefused("NetStream.Publish.BadName", "unknown stream key")
        callbacks = self.service.callbacks
        if callbacks is None or not callbacks.enabled:
            return record
        decision = await callbacks.on_publish(call)
        if not decision.allowed:
            raise PublishRefused("NetStream.Publish.BadName", f"refused by on_publish: {decision.reason}")
        if decision.rename_to and decision.rename_to != record.slug:
            try:
                record = await streams.rename(record.slug, decision.rename_to)
            except StreamitError as exc:
                raise PublishRefused(
                    "NetStream.Publish.BadName", f"on_publish rename refused: {exc}"
                ) from exc
            log.info("stream renamed to %s by on_publish", record.slug)
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
                    self.service.announce(state)
                    self.service.spawn(self._report_media(state))
                state.stream.push(item)
        except UnsupportedCodec as exc:
            # The demuxer or the packager cannot carry this track; the other track goes on.
            if not state.unsupported_logged:
                log.warning("stream %s: %s; that track is ignored", state.channel.record.slug, exc)
                state.unsupported_logged = True

    async def _report_media(self, state: PublishState) -> None:
        media = media_info(state.video, state.audio)
        db = self.service.db
        try:
            await db.streams.update_live_info(state.channel.record.id, media=media)
            if state.session_id is not None:
                await db.sessions.update(state.session_id, media=media)
        except StreamitError as exc:
            log.warning("stream %s: could not store media info: %s", state.channel.record.slug, exc)

    async def report(self, state: PublishState, now: float) -> None:
        """Store the bitrate of the stream and the counters of its session."""
        await self.service.report([(self, state)], now)

    async def call_on_update(self, state: PublishState, time_s: int) -> None:
        """The periodic ``on_update`` callback; a refusal disconnects the publisher."""
        callbacks = self.service.callbacks
        if callbacks is None:
            return
        decision = await callbacks.on_update(state.call, time_s=time_s)
        if not decision.allowed and self.publish is state:
            await self.service.disconnect(state.channel.record.id, f"refused by on_update: {decision.reason}")

    def taken_over(self) -> None:
        """Another connection took this session's stream over: stop feeding it and close."""
        state = self.publish
        self.publish = None
        if state is not None:
            state.stream.end()
            state.channel.restart()
            self.conn.end_publish(state.stream_id, "another publisher took this stream over")
            self.service.spawn(self._close_session(state, "takeover", datetime.now(UTC)))
        self.close()

    def end_publish(self, reason: str) -> None:
        """The publish ended: the playlist gets ENDLIST at once; status and session follow in the DB."""
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
        if channel.ll is not None:
            channel.ll.end()
        self.service.withdraw(channel.record.slug)
        log.info("stream %s ended: %s", channel.record.slug, reason)
        channel.ending = self.service.spawn(self._store_end(state, reason, datetime.now(UTC)))

    async def _close_session(self, state: PublishState, reason: str, ended_at: datetime) -> None:
        if state.session_id is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await self.service.db.sessions.close(
                state.session_id,
                ended_at=ended_at,
                end_reason=reason,
                bytes_in=state.media_bytes,
                avg_bitrate_kbps=state.average_kbps(loop.time()),
                peak_bitrate_kbps=max(state.peak_kbps, state.average_kbps(loop.time()) or 0),
            )
        except StreamitError as exc:
            log.error("stream %s: could not close its session: %s", state.channel.record.slug, exc)

    async def _store_end(self, state: PublishState, reason: str, ended_at: datetime) -> None:
        channel = state.channel
        service = self.service
        try:
            await self._close_session(state, reason, ended_at)
            try:
                channel.record = await service.db.streams.mark_ended(channel.record.id, ended_at)
            except StreamitError as exc:
                log.error("stream %s: could not mark ENDED: %s", channel.record.slug, exc)
            else:
                service.emit(STREAM_ENDED, channel.record)
            if service.callbacks is not None and service.settings.on_publish_done_url:
                await service.callbacks.on_publish_done(state.call)
        finally:
            channel.ending = None

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
            self.end_publish("protocol error")
        else:
            self.end_publish("disconnect")


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


def discovery_metadata(state: PublishState) -> dict[str, str]:
    """What discovery tells edges and the API about a live publish: codecs, size, bitrate (as strings)."""
    video, audio = state.video, state.audio
    items: dict[str, str | int | None] = {
        "video_codec": video.codec if video else None,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "audio_codec": audio.codec if audio else None,
        "sample_rate": audio.sample_rate if audio else None,
        "channels": audio.channels if audio else None,
        "bitrate_kbps": state.last_kbps,
    }
    metadata = {key: str(value) for key, value in items.items() if value is not None}
    if video is not None and video.fps:
        metadata["fps"] = f"{float(video.fps):g}"
    return metadata
