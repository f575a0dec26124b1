"""A registry shared by a cluster through Redis (``--redis-url``).

Each stream is one hash ``<prefix>stream:<slug>`` with the fields ``entry`` (canonical JSON), ``mac``
(HMAC-SHA256 under the cluster secret) and ``node`` (the owner, so heartbeats and removals can check
ownership atomically in a script).  Redis' own key expiry (PEXPIRE) ends entries whose origin stopped
heartbeating.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from streamit.discovery.entry import EntrySigner
from streamit.discovery.location import StreamLocation, is_valid_slug
from streamit.discovery.memory import check_ttl
from streamit.errors import RegistryUnavailable, RemoteProtocolError

logger = logging.getLogger(__name__)

# Both scripts compare the owner before touching the key, so a slow origin can neither extend nor delete an
# entry that another origin has taken over since.
_REFRESH = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_UNREGISTER = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
_GLOB_SPECIAL = str.maketrans({ch: "\\" + ch for ch in "*?[]\\^-"})
_REPORTED_LIMIT = 1024
_ATTEMPTS = 3


def _milliseconds(ttl: float) -> int:
    check_ttl(ttl)
    return max(1, round(ttl * 1000))


class RedisRegistry:
    """A :class:`~streamit.discovery.registry.Registry` in Redis, authenticated by the cluster ``secret``.

    Entries whose MAC does not verify are ignored (and logged once).  When Redis cannot be reached the
    methods raise :class:`~streamit.errors.RegistryUnavailable` after at most about ``timeout`` seconds; the
    client reconnects by itself on the next call.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        prefix: str = "streamit:",
        timeout: float = 2.0,
        client_name: str = "streamit-discovery",
    ) -> None:
        self._signer = EntrySigner(secret)
        self._prefix = prefix
        self._stream_prefix = f"{prefix}stream:"
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry on a fresh connection rides over a killed connection; a longer backoff
            # would only delay the caller's own retry and its outage log.
            retry=Retry(NoBackoff(), 1),
            client_name=client_name,
            decode_responses=False,
        )
        self._refresh_script = self._redis.register_script(_REFRESH)
        self._unregister_script = self._redis.register_script(_UNREGISTER)
        self._reported: set[tuple[bytes, bytes]] = set()

    def _key(self, slug: str) -> str:
        return self._stream_prefix + slug

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(_ATTEMPTS):
            try:
                return await command()
            except RedisConnectionError as exc:
                # Each pooled connection that Redis dropped (restart, CLIENT KILL) fails once and then
                # reconnects; a refused connection fails just as fast, so retrying here costs nothing.
                if attempt + 1 == _ATTEMPTS:
                    raise RegistryUnavailable(f"Redis registry unavailable: {exc}") from exc
            except RedisError as exc:
                raise RegistryUnavailable(f"Redis registry unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    async def register(self, location: StreamLocation, ttl: float) -> None:
        """Announce ``location`` for ``ttl`` seconds, replacing any entry for its slug."""
        milliseconds = _milliseconds(ttl)
        entry, mac = self._signer.sign(location)
        key = self._key(location.slug)

        def write() -> Awaitable[list[Any]]:
            # A fresh pipeline per attempt: a pipeline forgets its commands once executed, even on failure.
            pipeline = self._redis.pipeline(transaction=True)
            pipeline.delete(key)
            pipeline.hset(key, mapping={"entry": entry, "mac": mac, "node": location.node})
            pipeline.pexpire(key, milliseconds)
            return pipeline.execute()

        await self._call(write)

    async def refresh(self, slug: str, node: str, ttl: float) -> bool:
        """Extend the entry of ``slug`` owned by ``node``; False when it expired or another node owns it."""
        milliseconds = _milliseconds(ttl)
        if not is_valid_slug(slug):
            return False
        key = self._key(slug)
        result = await self._call(lambda: self._refresh_script(keys=[key], args=[node, milliseconds]))
        return bool(result)

    async def unregister(self, slug: str, node: str) -> None:
        """Remove the entry of ``slug`` if ``node`` owns it."""
        if is_valid_slug(slug):
            key = self._key(slug)
            await self._call(lambda: self._unregister_script(keys=[key], args=[node]))

    def _verified(self, slug: str, fields: dict[bytes, bytes]) -> StreamLocation | None:
        entry = fields.get(b"entry")
        mac = fields.get(b"mac")
        if entry is None or mac is None:
            return None
        try:
            location = self._signer.verify(entry, mac)
            if location.slug != slug or fields.get(b"node") != location.node.encode("ascii"):
                raise RemoteProtocolError("registry entry is stored under another slug or owner")
        except RemoteProtocolError as exc:
            if (entry, mac) not in self._reported:
                if len(self._reported) >= _REPORTED_LIMIT:
                    self._reported.clear()
                self._reported.add((entry, mac))
                logger.warning("ignoring registry entry for %r: %s", slug, exc)
            return None
        return location

    async def lookup(self, slug: str) -> StreamLocation | None:
        """The live entry for ``slug`` if its MAC verifies, else None."""
        if not is_valid_slug(slug):
            return None
        key = self._key(slug)
        fields = await self._call(lambda: self._redis.hgetall(key))
        return self._verified(slug, fields)

    async def list(self) -> builtins.list[StreamLocation]:
        """Every live entry whose MAC verifies, sorted by slug."""
        pattern = self._stream_prefix.translate(_GLOB_SPECIAL) + "*"
        keys: builtins.list[bytes] = []
        cursor: int = 0
        while True:
            cursor, batch = await self._call(partial(self._redis.scan, cursor, match=pattern, count=1000))
            keys.extend(batch)
            if cursor == 0:
                break
        prefix = self._stream_prefix.encode("utf-8")
        slugs = sorted(
            {
                slug
                for key in keys
                if key.startswith(prefix)
                and (slug := key[len(prefix) :].decode("utf-8", "replace"))
                and is_valid_slug(slug)
            }
        )
        if not slugs:
            return []

        def read() -> Awaitable[list[Any]]:
            pipeline = self._redis.pipeline(transaction=False)
            for slug in slugs:
                pipeline.hgetall(self._key(slug))
            return pipeline.execute()

        results = await self._call(read)
        return [
            location
            for slug, fields in zip(slugs, results, strict=True)
            if (location := self._verified(slug, fields)) is not None
        ]

    async def epoch(self) -> str:
        """The Redis server's ``run_id``: a new one after every restart (which, without persistence, loses
        every entry)."""
        info: dict[str, Any] = await self._call(lambda: self._redis.info("server"))
        return str(info.get("run_id", ""))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
