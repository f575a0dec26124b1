"""Cluster control commands: signed, fresh, and delivered over real Redis pub/sub to every listener."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamit.discovery import CommandSigner, DisconnectCommand, RedisControlChannel
from streamit.errors import ProtocolError, RemoteProtocolError
from tests.discovery.conftest import RedisTarget

SECRET = "s" * 32
COMMAND = DisconnectCommand("0b0e6c6e-3a3e-4f55-9a2c-2d8c1b0c2e11", "stream key rotated", 1_000_000.0)


def test_round_trip() -> None:
    signer = CommandSigner(SECRET)
    assert signer.decode(signer.encode(COMMAND), now=1_000_010.0) == COMMAND


def test_another_secret_is_refused() -> None:
    wire = CommandSigner("another secret").encode(COMMAND)
    with pytest.raises(RemoteProtocolError, match="MAC"):
        CommandSigner(SECRET).decode(wire, now=1_000_000.0)


def test_stale_or_future_commands_are_refused() -> None:
    signer = CommandSigner(SECRET)
    wire = signer.encode(COMMAND)
    with pytest.raises(RemoteProtocolError, match="stale or replayed"):
        signer.decode(wire, now=1_000_061.0)
    with pytest.raises(RemoteProtocolError, match="stale or replayed"):
        signer.decode(wire, now=999_900.0)


def test_tampered_commands_are_refused() -> None:
    signer = CommandSigner(SECRET)
    wire = signer.encode(COMMAND)
    tampered = wire.replace(b"rotated", b"deleted")
    with pytest.raises(RemoteProtocolError):
        signer.decode(tampered, now=1_000_000.0)
    with pytest.raises(RemoteProtocolError):
        signer.decode(wire.split(b"\n")[0], now=1_000_000.0)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        CommandSigner(SECRET).decode(data, now=1_000_000.0)


@given(st.binary(min_size=1, max_size=8), st.integers(0, 400))
def test_mutated_commands_never_verify(insert: bytes, position: int) -> None:
    signer = CommandSigner(SECRET)
    wire = signer.encode(COMMAND)
    position %= len(wire)
    mutated = wire[:position] + insert + wire[position:]
    with pytest.raises(ProtocolError):
        signer.decode(mutated, now=1_000_000.0)


async def test_commands_reach_every_listener_and_forgeries_do_not(redis_target: RedisTarget) -> None:
    channels = [
        RedisControlChannel(
            redis_target.url, secret=SECRET, prefix=redis_target.prefix, client_name=redis_target.prefix
        )
        for _ in range(3)
    ]
    received: list[list[DisconnectCommand]] = [[], []]
    listeners = []
    try:
        for index in range(2):
            ready = asyncio.Event()

            async def handler(command: DisconnectCommand, index: int = index) -> None:
                received[index].append(command)

            listeners.append(asyncio.create_task(channels[index].listen(handler, ready=ready)))
            await asyncio.wait_for(ready.wait(), 5)
        forger = CommandSigner("not the cluster secret")
        await redis_target.admin.publish(
            f"{redis_target.prefix}control", forger.encode(DisconnectCommand("x", "forged", 0.0))
        )
        await channels[2].disconnect("stream-1", "stream key rotated")
        for _ in range(100):
            if all(received):
                break
            await asyncio.sleep(0.05)
        assert [[c.stream_id for c in r] for r in received] == [["stream-1"], ["stream-1"]]
        assert received[0][0].reason == "stream key rotated"

        # A killed connection is re-established; later commands still arrive.
        killed = 0
        for client in await redis_target.admin.client_list():
            if client.get("name") == redis_target.prefix and client.get("sub") == "1":
                killed += await redis_target.admin.client_kill_filter(_id=client["id"])
        assert killed == 2
        await asyncio.sleep(1.5)
        await channels[2].disconnect("stream-2", "stream deleted")
        for _ in range(100):
            if all(len(r) == 2 for r in received):
                break
            await asyncio.sleep(0.05)
        assert [[c.stream_id for c in r] for r in received] == [["stream-1", "stream-2"]] * 2
    finally:
        for task in listeners:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel in channels:
            await channel.close()
