"""Heartbeats for the streams one origin has live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime

from streamit.discovery.location import StreamLocation, normalize_origin_url
from streamit.discovery.memory import check_ttl
from streamit.discovery.registry import DEFAULT_TTL, Registry

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY = 1.0
"""While the registry is unreachable, try again at least this often (seconds)."""


class OriginRegistrar:
    """Keeps this origin's live streams registered: ``publish``/``unpublish`` are synchronous and cheap, the
    background :meth:`run` loop does the registry I/O.

    The origin URL and node are fixed at construction, so an origin can only ever announce itself.  Every
    ``ttl / 3`` seconds each live stream is refreshed (re-registered if its entry vanished, e.g. after a
    Redis restart).  Registry errors never stop the loop: the first one is logged, the rest are retried
    quietly, and once the registry answers again every live stream is registered anew.
    """

    def __init__(self, registry: Registry, *, origin_url: str, node: str, ttl: float = DEFAULT_TTL) -> None:
        check_ttl(ttl)
        self._registry = registry
        self._origin_url = normalize_origin_url(origin_url)
        self._node = node
        self._ttl = ttl
        self._live: dict[str, StreamLocation] = {}
        self._dirty: set[str] = set()
        self._withdrawn: set[str] = set()
        self._wake = asyncio.Event()
        self._failing = False

    @property
    def origin_url(self) -> str:
        """The base URL this origin registers (normalised)."""
        return self._origin_url

    @property
    def node(self) -> str:
        """The node name this origin registers under."""
        return self._node

    @property
    def ttl(self) -> float:
        """Seconds an entry lives without a heartbeat."""
        return self._ttl

    @property
    def live(self) -> frozenset[str]:
        """The slugs this registrar currently keeps registered."""
        return frozenset(self._live)

    def publish(self, slug: str, *, started_at: datetime, metadata: Mapping[str, str]) -> None:
        """Start (or update the metadata of) ``slug``; the run loop registers it right away.

        Raises :class:`~streamit.errors.InvalidInput` for a slug or metadata the registry cannot hold.
        """
        location = StreamLocation(slug, self._origin_url, self._node, started_at, metadata)
        self._live[slug] = location
        self._withdrawn.discard(slug)
        self._dirty.add(slug)
        self._wake.set()

    def unpublish(self, slug: str) -> None:
        """Stop ``slug``; the run loop removes its entry right away (if this node still owns it)."""
        self._live.pop(slug, None)
        self._dirty.discard(slug)
        self._withdrawn.add(slug)
        self._wake.set()

    async def run(self) -> None:
        """Register, heartbeat and unregister until cancelled."""
        loop = asyncio.get_running_loop()
        interval = self._ttl / 3
        next_beat = loop.time()
        while True:
            # Cleared before the work so that a publish during an await wakes the next round.
            self._wake.clear()
            heartbeat = loop.time() >= next_beat
            if heartbeat:
                next_beat = loop.time() + interval
            healthy = await self._sync(heartbeat)
            delay = max(0.0, next_beat - loop.time())
            if not healthy:
                delay = min(delay, MAX_RETRY_DELAY)
                next_beat = min(next_beat, loop.time() + delay)
            if self._wake.is_set():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def withdraw_all(self) -> None:
        """Unregister every live stream now (for a graceful shutdown); errors are logged, not raised."""
        slugs = list(self._live) + sorted(self._withdrawn)
        self._live.clear()
        self._dirty.clear()
        self._withdrawn.clear()
        for slug in slugs:
            try:
                await self._registry.unregister(slug, self._node)
            except Exception as exc:
                logger.warning("could not unregister %r at shutdown: %s", slug, exc)

    async def _sync(self, heartbeat: bool) -> bool:
        try:
            for slug in sorted(self._withdrawn):
                self._withdrawn.discard(slug)
                try:
                    await self._registry.unregister(slug, self._node)
                except BaseException:
                    if slug not in self._live:
                        self._withdrawn.add(slug)
                    raise
            for slug in sorted(self._dirty):
                location = self._live.get(slug)
                self._dirty.discard(slug)
                if location is None:
                    continue
                try:
                    await self._registry.register(location, self._ttl)
                except BaseException:
                    self._dirty.add(slug)
                    raise
            if heartbeat:
                for slug, location in list(self._live.items()):
                    if slug in self._dirty or self._live.get(slug) is not location:
                        continue
                    if not await self._registry.refresh(slug, self._node, self._ttl):
                        logger.info("registry entry of %r was gone; registering it again", slug)
                        await self._registry.register(location, self._ttl)
        except Exception as exc:
            if not self._failing:
                logger.warning("discovery registry unavailable, origin keeps serving: %s", exc)
                self._failing = True
            self._dirty.update(self._live)
            return False
        if self._failing:
            logger.info("discovery registry reachable again; %d stream(s) registered", len(self._live))
            self._failing = False
        return True
