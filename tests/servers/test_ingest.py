"""IngestService and discovery: accepted publishes are registered, described and withdrawn.

The service runs on a real SQLite database and segment store, with a real :class:`OriginRegistrar` over a
:class:`MemoryRegistry`; the media is the real FLV that ffmpeg wrote (tests/fixtures/flv).  The RTMP
connection is a recorder: these tests are about what ingest tells discovery, not about RTMP bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from streamit.config import Settings
from streamit.db import Database
from streamit.discovery import MemoryRegistry, OriginRegistrar, StreamLocation
from streamit.flv.file import FlvFileReader, FlvTagType
from streamit.origin import SegmentStoreRegistry
from streamit.rtmp import (
    AudioReceived,
    ConnectRequested,
    PublishRequested,
    PublishStopped,
    RtmpConnection,
    VideoReceived,
)
from streamit.servers.ingest import IngestService, IngestSession

FLV = Path(__file__).resolve().parents[1] / "fixtures" / "flv" / "main_320x180.flv"
ORIGIN = "http://origin-a.test:8080"
STREAM_ID = 1


class RecordingConnection:
    """Stands in for :class:`RtmpConnection`: records the replies ingest decides on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args))

        return record

    def called(self, name: str) -> bool:
        return any(call == name for call, _ in self.calls)


@dataclass
class Origin:
    service: IngestService
    registry: MemoryRegistry
    registrar: OriginRegistrar
    key: str
    slug: str

    def session(self, port: int) -> tuple[IngestSession, RecordingConnection]:
        conn = RecordingConnection()
        session = self.service.session(f"127.0.0.1:{port}", cast(RtmpConnection, conn), lambda: None)
        session.handle(
            ConnectRequested(
                transaction_id=1.0,
                app="live",
                tc_url="rtmp://127.0.0.1/live",
                flash_ver="FMLE/3.0",
                swf_url="",
                page_url="",
                object_encoding=0.0,
                command_object={},
            )
        )
        return session, conn

    async def publish(self, session: IngestSession, key: str | None = None) -> None:
        pending = session.handle(PublishRequested(STREAM_ID, 2.0, key or self.key, "live"))
        assert pending is not None
        await pending

    async def location(self) -> StreamLocation | None:
        """The registry entry once the registrar's run loop has caught up."""
        for _ in range(50):
            await asyncio.sleep(0)
        return await self.registry.lookup(self.slug)


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Origin]:
    settings = Settings(data_dir=tmp_path, node_id="origin-a")
    db = Database.from_settings(settings)
    await db.upgrade()
    record, key = await db.streams.create("Show", slug="show")
    registry = MemoryRegistry()
    registrar = OriginRegistrar(registry, origin_url=ORIGIN, node="origin-a")
    service = IngestService(settings, db, SegmentStoreRegistry(tmp_path / "hls"), registrar=registrar)
    heartbeats = asyncio.create_task(registrar.run())
    try:
        yield Origin(service, registry, registrar, key, record.slug)
    finally:
        await service.shutdown()
        heartbeats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeats
        await db.close()


def media_events() -> list[VideoReceived | AudioReceived]:
    reader = FlvFileReader()
    reader.feed(FLV.read_bytes())
    events: list[VideoReceived | AudioReceived] = []
    for tag in reader:
        if tag.tag_type is FlvTagType.VIDEO:
            events.append(VideoReceived(STREAM_ID, tag.timestamp, tag.payload))
        elif tag.tag_type is FlvTagType.AUDIO:
            events.append(AudioReceived(STREAM_ID, tag.timestamp, tag.payload))
    return events


async def test_an_accepted_publish_is_registered_under_this_origin(origin: Origin) -> None:
    session, conn = origin.session(5000)
    await origin.publish(session)
    assert conn.called("accept_publish")
    assert origin.registrar.live == {origin.slug}
    location = await origin.location()
    assert location is not None
    assert (location.origin_url, location.node) == (ORIGIN, "origin-a")
    assert location.started_at is not None and location.started_at.tzinfo is not None
    assert dict(location.metadata) == {}


async def test_media_info_updates_the_registration(origin: Origin) -> None:
    session, _ = origin.session(5000)
    await origin.publish(session)
    for event in media_events():
        session.handle(event)
    location = await origin.location()
    assert location is not None
    metadata = dict(location.metadata)
    assert metadata["video_codec"] == "h264"
    assert (metadata["width"], metadata["height"]) == ("320", "180")
    assert metadata["audio_codec"] == "aac"
    assert "bitrate_kbps" not in metadata

    state = session.publish
    assert state is not None
    await session.report(state, state.started + 2.0)
    location = await origin.location()
    assert location is not None
    assert int(location.metadata["bitrate_kbps"]) > 0


async def test_a_refused_publish_is_not_registered(origin: Origin) -> None:
    session, conn = origin.session(5000)
    await origin.publish(session, key="not-a-key")
    assert conn.called("reject_publish")
    assert origin.registrar.live == frozenset()
    assert await origin.location() is None


async def test_the_end_of_a_publish_removes_the_entry_at_once(origin: Origin) -> None:
    session, _ = origin.session(5000)
    await origin.publish(session)
    assert await origin.location() is not None
    session.handle(PublishStopped(STREAM_ID))
    assert origin.registrar.live == frozenset()
    assert await origin.location() is None


async def test_a_takeover_keeps_the_registration(origin: Origin) -> None:
    first, _ = origin.session(5000)
    await origin.publish(first)
    before = await origin.location()
    assert before is not None
    second, conn = origin.session(5001)
    await origin.publish(second)
    assert conn.called("accept_publish")
    for event in media_events():
        second.handle(event)
    after = await origin.location()
    assert after is not None and after.started_at == before.started_at
    assert after.metadata["video_codec"] == "h264"
    assert origin.registrar.live == {origin.slug}
    # The replaced connection going away later must not withdraw the new publisher's stream.
    first.connection_lost(None)
    assert await origin.location() is not None
    second.connection_lost(None)
    assert await origin.location() is None
