"""SessionRepository on SQLite and PostgreSQL: open, update, close, list and crash recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamit.db import Database, MediaInfo, SessionRecord, SessionTraffic, StreamStatus
from streamit.errors import InvalidInput, NotFound

T0 = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


async def test_open_returns_an_open_session(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    opened = await db.sessions.open(stream.id, node="node-a", remote_addr="192.0.2.7:50000", started_at=T0)
    assert opened == SessionRecord(
        id=opened.id,
        stream_id=stream.id,
        node="node-a",
        remote_addr="192.0.2.7:50000",
        started_at=T0,
        ended_at=None,
        bytes_in=0,
        avg_bitrate_kbps=None,
        peak_bitrate_kbps=None,
        video_codec=None,
        audio_codec=None,
        width=None,
        height=None,
        end_reason=None,
    )
    assert await db.sessions.get(opened.id) == opened
    assert await db.sessions.open_for_stream(stream.id) == [opened]


async def test_open_for_unknown_stream_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await db.sessions.open("no-such-stream", node="n", remote_addr="x", started_at=T0)


async def test_open_refuses_naive_time_and_empty_node(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    with pytest.raises(InvalidInput):
        await db.sessions.open(stream.id, node="n", remote_addr="x", started_at=T0.replace(tzinfo=None))
    with pytest.raises(InvalidInput):
        await db.sessions.open(stream.id, node="", remote_addr="x", started_at=T0)


async def test_update_then_close_keeps_figures(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    opened = await db.sessions.open(stream.id, node="a", remote_addr="[2001:db8::1]:1", started_at=T0)
    await db.sessions.update(
        opened.id,
        bytes_in=1_000_000,
        avg_bitrate_kbps=2500,
        peak_bitrate_kbps=3100,
        media=MediaInfo("h264", 1280, 720, 30.0, "aac", 48000, 2),
    )
    await db.sessions.update(opened.id, bytes_in=6_000_000_000)  # beyond 32 bits
    middle = await db.sessions.get(opened.id)
    assert middle is not None
    assert (middle.bytes_in, middle.avg_bitrate_kbps, middle.peak_bitrate_kbps) == (6_000_000_000, 2500, 3100)
    assert (middle.video_codec, middle.audio_codec, middle.width, middle.height) == ("h264", "aac", 1280, 720)
    ended = T0 + timedelta(minutes=5)
    closed = await db.sessions.close(opened.id, ended_at=ended, end_reason="unpublish", avg_bitrate_kbps=2400)
    assert closed.ended_at == ended and closed.end_reason == "unpublish"
    assert closed.avg_bitrate_kbps == 2400 and closed.peak_bitrate_kbps == 3100
    assert closed.bytes_in == 6_000_000_000 and closed.video_codec == "h264"
    assert await db.sessions.open_for_stream(stream.id) == []


async def test_close_twice_keeps_the_first(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    opened = await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    first = await db.sessions.close(opened.id, ended_at=T0 + timedelta(seconds=1), end_reason="takeover")
    again = await db.sessions.close(opened.id, ended_at=T0 + timedelta(seconds=9), end_reason="crash")
    assert again == first


async def test_unknown_session_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await db.sessions.update("nope", bytes_in=1)
    with pytest.raises(NotFound):
        await db.sessions.update("nope")
    with pytest.raises(NotFound):
        await db.sessions.close("nope", ended_at=T0, end_reason="unpublish")
    assert await db.sessions.get("nope") is None


async def test_negative_figures_are_refused(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    opened = await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    with pytest.raises(InvalidInput):
        await db.sessions.update(opened.id, bytes_in=-1)


async def test_list_for_stream_newest_first_and_per_stream(db: Database) -> None:
    one, _ = await db.streams.create("One")
    two, _ = await db.streams.create("Two")
    first = await db.sessions.open(one.id, node="a", remote_addr="x", started_at=T0)
    second = await db.sessions.open(one.id, node="a", remote_addr="x", started_at=T0 + timedelta(hours=1))
    other = await db.sessions.open(two.id, node="a", remote_addr="x", started_at=T0)
    assert [s.id for s in await db.sessions.list_for_stream(one.id)] == [second.id, first.id]
    assert [s.id for s in await db.sessions.list_for_stream(two.id)] == [other.id]
    assert await db.sessions.list_for_stream("unknown") == []


async def test_close_abandoned_only_touches_the_nodes_open_sessions(db: Database) -> None:
    stream, _ = await db.streams.create("Show")
    mine = await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    done = await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    done = await db.sessions.close(done.id, ended_at=T0 + timedelta(seconds=5), end_reason="unpublish")
    theirs = await db.sessions.open(stream.id, node="b", remote_addr="x", started_at=T0)
    now = T0 + timedelta(hours=2)
    closed = await db.sessions.close_abandoned("a", ended_at=now)
    assert [(s.id, s.ended_at, s.end_reason) for s in closed] == [(mine.id, now, "crash")]
    assert await db.sessions.get(done.id) == done
    assert await db.sessions.get(theirs.id) == theirs
    assert await db.sessions.close_abandoned("a", ended_at=now) == []


async def test_recover_node_ends_streams_nobody_else_publishes(db: Database) -> None:
    alone, _ = await db.streams.create("Alone")
    shared, _ = await db.streams.create("Shared")
    for stream in (alone, shared):
        await db.streams.mark_live(stream.id, T0)
        await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    await db.sessions.open(shared.id, node="b", remote_addr="x", started_at=T0 + timedelta(seconds=1))
    now = T0 + timedelta(hours=1)
    closed = await db.recover_node("a", now)
    assert {s.stream_id for s in closed} == {alone.id, shared.id}
    assert all(s.end_reason == "crash" and s.ended_at == now for s in closed)
    after_alone = await db.streams.get_by_id(alone.id)
    after_shared = await db.streams.get_by_id(shared.id)
    assert (
        after_alone is not None and after_alone.status is StreamStatus.ENDED and after_alone.ended_at == now
    )
    assert after_shared is not None and after_shared.status is StreamStatus.LIVE
    assert await db.recover_node("a", now) == []


async def test_recover_node_leaves_a_draft_stream_draft(db: Database) -> None:
    stream, _ = await db.streams.create("Never live")
    await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    assert len(await db.recover_node("a", T0)) == 1
    after = await db.streams.get_by_id(stream.id)
    assert after is not None and after.status is StreamStatus.DRAFT


async def test_deleting_a_stream_deletes_its_sessions(db: Database) -> None:
    stream, _ = await db.streams.create("Gone")
    opened = await db.sessions.open(stream.id, node="a", remote_addr="x", started_at=T0)
    assert await db.streams.delete(stream.slug)
    assert await db.sessions.get(opened.id) is None
    assert await db.sessions.list_for_stream(stream.id) == []


async def test_store_traffic_updates_many_sessions_at_once(db: Database) -> None:
    first, _ = await db.streams.create("First")
    second, _ = await db.streams.create("Second")
    a = await db.sessions.open(first.id, node="n", remote_addr="x", started_at=T0)
    b = await db.sessions.open(second.id, node="n", remote_addr="x", started_at=T0)
    await db.sessions.store_traffic(
        [
            SessionTraffic(a.id, bytes_in=6_000_000_000, avg_bitrate_kbps=2500, peak_bitrate_kbps=3100),
            SessionTraffic(b.id, bytes_in=10, avg_bitrate_kbps=None, peak_bitrate_kbps=0),
            SessionTraffic("no-such-session", bytes_in=1, avg_bitrate_kbps=1, peak_bitrate_kbps=1),
        ]
    )
    figures = {}
    for session_id in (a.id, b.id):
        stored = await db.sessions.get(session_id)
        assert stored is not None
        figures[session_id] = (stored.bytes_in, stored.avg_bitrate_kbps, stored.peak_bitrate_kbps)
    assert figures == {a.id: (6_000_000_000, 2500, 3100), b.id: (10, None, 0)}
    # A later report without an average keeps the stored one.
    later = SessionTraffic(a.id, bytes_in=7, avg_bitrate_kbps=None, peak_bitrate_kbps=5)
    await db.sessions.store_traffic([later])
    again = await db.sessions.get(a.id)
    assert again is not None
    assert (again.bytes_in, again.avg_bitrate_kbps, again.peak_bitrate_kbps) == (7, 2500, 5)
    negative = SessionTraffic(a.id, bytes_in=-1, avg_bitrate_kbps=0, peak_bitrate_kbps=0)
    with pytest.raises(InvalidInput):
        await db.sessions.store_traffic([negative])
    await db.sessions.store_traffic([])
