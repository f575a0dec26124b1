"""RtmpProtocol's read coalescing: a publisher's socket rests between reads, but not before its first
segment is out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import pytest

from streamit.config import Settings
from streamit.servers.rtmp import RtmpProtocol, RtmpServer


class Transport:
    """The calls the protocol makes on its transport."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1

    def is_closing(self) -> bool:
        return False


@dataclass
class Publish:
    started: float


@dataclass
class Session:
    publish: Publish | None
    lost: bool = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def protocol(*, started: float | None) -> tuple[RtmpProtocol, Transport]:
    server = RtmpServer(cast(Any, None), max_message_size=1 << 20, read_coalesce=0.01, coalesce_after=3.0)
    proto = RtmpProtocol(server)
    transport = Transport()
    proto.transport = cast(Any, transport)
    proto.session = cast(Any, Session(None if started is None else Publish(started)))
    return proto, transport


async def test_reads_of_a_running_publish_rest_then_resume() -> None:
    loop = asyncio.get_running_loop()
    proto, transport = protocol(started=loop.time() - 10)
    proto._coalesce_reads()
    proto._coalesce_reads()  # already resting: no second timer
    assert (transport.paused, transport.resumed) == (1, 0)
    await asyncio.sleep(0.05)
    assert (transport.paused, transport.resumed) == (1, 1)


async def test_no_rest_before_the_first_segment_or_without_a_publish() -> None:
    loop = asyncio.get_running_loop()
    fresh, fresh_transport = protocol(started=loop.time())
    fresh._coalesce_reads()
    idle, idle_transport = protocol(started=None)
    idle._coalesce_reads()
    assert fresh_transport.paused == 0 and idle_transport.paused == 0


def test_the_rest_stays_a_third_of_an_ll_hls_part_at_most() -> None:
    ingest = cast(Any, object())
    assert RtmpServer.from_settings(ingest, Settings(rtmp_read_coalesce=0.1)).read_coalesce == 0.1
    short_parts = Settings(rtmp_read_coalesce=0.1, hls_part_duration=0.15)
    assert RtmpServer.from_settings(ingest, short_parts).read_coalesce == pytest.approx(0.05)
    without_ll = Settings(rtmp_read_coalesce=0.1, hls_part_duration=0.15, hls_low_latency=False)
    assert RtmpServer.from_settings(ingest, without_ll).read_coalesce == 0.1


async def test_one_tick_ends_the_rests_of_every_resting_connection() -> None:
    loop = asyncio.get_running_loop()
    server = RtmpServer(cast(Any, None), max_message_size=1 << 20, read_coalesce=0.05, coalesce_after=3.0)
    pairs = []
    for _ in range(3):
        proto = RtmpProtocol(server)
        transport = Transport()
        proto.transport = cast(Any, transport)
        proto.session = cast(Any, Session(Publish(loop.time() - 10)))
        pairs.append((proto, transport))
    pairs[0][0]._coalesce_reads()
    await asyncio.sleep(0.01)
    pairs[1][0]._coalesce_reads()
    pairs[2][0]._coalesce_reads()
    assert len(server.pacer) == 3 and [t.paused for _, t in pairs] == [1, 1, 1]
    # The connection gone meanwhile is not resumed.
    pairs[2][0].admitted = True
    server.limiter.admit("?")
    pairs[2][0].connection_lost(None)
    await asyncio.sleep(0.08)
    assert server.pacer.ticks == 1 and len(server.pacer) == 0
    assert [t.resumed for _, t in pairs] == [1, 1, 0]
    server.pacer.close()
