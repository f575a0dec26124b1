"""Cluster control messages: the API tells every origin to disconnect a stream's publisher.

When an owner rotates a stream key or deletes a stream through ``streamit api``, the publisher is connected
to some origin.  The API publishes a signed :class:`DisconnectCommand` on a Redis channel every origin
listens to; the origin holding the publisher kicks it.  Commands are HMAC-signed with the cluster secret
(a context distinct from registry entries) and carry their issue time, so a replayed command is refused
after :data:`MAX_COMMAND_AGE` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from streamit.errors import ConfigError, MessageTooLarge, RegistryUnavailable, RemoteProtocolError

log = logging.getLogger(__name__)

COMMAND_VERSION = 1
MAX_COMMAND_SIZE = 4096
MAX_COMMAND_AGE = 60.0
"""Seconds a command stays valid: enough for clock skew between nodes, too short for a useful replay."""
_MAC_CONTEXT = b"streamit.discovery.control.v1\x00"
_FIELDS = frozenset({"v", "action", "stream_id", "reason", "issued_at"})


@dataclass(frozen=True, slots=True)
class DisconnectCommand:
    """Disconnect whoever publishes ``stream_id``, for ``reason``; issued at ``issued_at`` (Unix seconds)."""

    stream_id: str
    reason: str
    issued_at: float


class CommandSigner:
    """Encodes, signs, verifies and decodes control commands (pure: the caller passes ``now``)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the cluster secret must not be empty")
        self._key = secret.encode("utf-8")

    def _mac(self, body: bytes) -> str:
        return hmac.new(self._key, _MAC_CONTEXT + body, hashlib.sha256).hexdigest()

    def encode(self, command: DisconnectCommand) -> bytes:
        """The wire form: canonical JSON, a newline, the hex MAC."""
        body = json.dumps(
            {
                "v": COMMAND_VERSION,
                "action": "disconnect",
                "stream_id": command.stream_id,
                "reason": command.reason,
                "issued_at": command.issued_at,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        ).encode("ascii")
        return body + b"\n" + self._mac(body).encode("ascii")

    def decode(self, data: bytes, now: float) -> DisconnectCommand:
        """The command in ``data`` if it is authentic and fresh; :class:`RemoteProtocolError` otherwise."""
        if len(data) > MAX_COMMAND_SIZE:
            raise MessageTooLarge(f"control message of {len(data)} bytes exceeds {MAX_COMMAND_SIZE}")
        body, separator, mac = data.rpartition(b"\n")
        if not separator:
            raise RemoteProtocolError("control message has no MAC")
        if not hmac.compare_digest(self._mac(body).encode("ascii"), mac):
            raise RemoteProtocolError("control message MAC does not match the cluster secret")
        try:
            document: Any = json.loads(body)
        except ValueError as exc:
            raise RemoteProtocolError(f"control message is not JSON: {exc}") from exc
        if not isinstance(document, dict) or set(document) != _FIELDS:
            raise RemoteProtocolError("control message does not have exactly the expected fields")
        if document["v"] != COMMAND_VERSION or document["action"] != "disconnect":
            raise RemoteProtocolError(f"unknown control message {document['v']!r}/{document['action']!r}")
        stream_id, reason, issued_at = document["stream_id"], document["reason"], document["issued_at"]
        if not isinstance(stream_id, str) or not isinstance(reason, str):
            raise RemoteProtocolError("control message stream_id and reason must be strings")
        if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
            raise RemoteProtocolError("control message issued_at must be a number")
        if abs(now - issued_at) > MAX_COMMAND_AGE:
            age = now - issued_at
            raise RemoteProtocolError(f"control message is {age:.0f} s old: stale or replayed")
        return DisconnectCommand(stream_id, reason, float(issued_at))


class RedisControlChannel:
    """Publishes and receives :class:`DisconnectCommand`\\ s on the Redis channel ``<prefix>control``."""

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        prefix: str = "streamit:",
        clock: Callable[[], float] | None = None,
        client_name: str = "streamit-control",
    ) -> None:
        self._signer = CommandSigner(secret)
        self._channel = f"{prefix}control"
        self._clock = clock or time.time
        self._redis: Redis = Redis.from_url(
            url, socket_connect_timeout=2.0, client_name=client_name, decode_responses=False
        )

    async def publish(self, command: DisconnectCommand) -> int:
        """Send ``command`` to every listening origin; returns how many received it."""
        try:
            receivers: int = await self._redis.publish(self._channel, self._signer.encode(command))
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"Redis control channel unavailable: {exc}") from exc
        return receivers

    async def disconnect(self, stream_id: str, reason: str) -> None:
        """:class:`~streamit.api.live_control.LiveControl` for the API role: ask the origins to kick."""
        try:
            receivers = await self.publish(DisconnectCommand(stream_id, reason, self._clock()))
        except RegistryUnavailable as exc:
            # The key change itself is stored; the publisher goes when its origin next authorises.
            log.error("could not tell origins to disconnect stream %s (%s): %s", stream_id, reason, exc)
            return
        log.info("asked %d origin(s) to disconnect stream %s: %s", receivers, stream_id, reason)

    async def listen(
        self, handler: Callable[[DisconnectCommand], Awaitable[None]], *, ready: asyncio.Event | None = None
    ) -> None:
        """Call ``handler`` for each authentic command until cancelled; reconnects after Redis failures."""
        down = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if down:
                    log.info("control channel reachable again")
                    down = False
                if ready is not None:
                    ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        command = self._signer.decode(message["data"], self._clock())
                    except RemoteProtocolError as exc:
                        log.warning("ignored a control message: %s", exc)
                        continue
                    await handler(command)
            except (RedisError, OSError) as exc:
                if not down:
                    log.warning("control channel unavailable, retrying: %s", exc)
                down = True
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
