"""RtmpProtocol's read coalescing: a publisher's socket rests between reads, but not before its first
segment is out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

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
