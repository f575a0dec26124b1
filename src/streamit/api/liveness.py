"""Status follows reality: a stream whose origin vanished from the registry stops being ``LIVE``.

An origin heartbeats the registry entry of each stream it ingests (``OriginRegistrar``).  When the origin
dies (SIGKILL, power loss) nobody closes its publish sessions, but its entries expire after the registry
TTL.  :class:`OriginLossReaper` notices a ``LIVE`` stream with no entry and ends it with the reason
``origin lost``, so the API, the directory and webhooks agree with what edges can still serve.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime

from streamit.api.hooks import NGINX_NODE
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.discovery import DEFAULT_TTL, Registry
from streamit.errors import InvalidTransition, NotFound, RegistryUnavailable
from streamit.hooks import STREAM_ENDED, WebhookDispatcher, stream_event_data

log = logging.getLogger(__name__)

ORIGIN_LOST = "origin lost"
"""The ``end_reason`` of sessions, and the log wording, when an origin stopped heartbeating."""


class OriginLossReaper:
    """Ends ``LIVE`` streams whose registry entry stayed absent for ``grace`` seconds.

    Only sessions of Streamit origins count: sessions opened through nginx-rtmp's hooks (node
    ``nginx-rtmp``) are ended by ``on_publish_done`` and may never be in the registry, so they are left
    alone (``ignored_nodes``).  ``grace`` covers the moment between a publish going ``LIVE`` in the
    database and its origin's first registration; a stream must be seen missing in sweeps at least
    ``grace`` apart.  A registry that cannot be reached ends nothing: absence is only believed when the
    registry answers, and after the registry restarted (a new :meth:`~streamit.discovery.Registry.epoch`) or
    came back from an outage, nothing ends for one origin ``heartbeat`` plus ``grace``: origins re-register
    on their next heartbeat.  ``on_end`` is told of every stream ended (metrics).
    """

    def __init__(
        self,
        db: Database,
        registry: Registry,
        *,
        grace: float = 1.0,
        interval: float = 0.5,
        heartbeat: float = DEFAULT_TTL / 3,
        webhooks: WebhookDispatcher | None = None,
        ignored_nodes: Collection[str] = (NGINX_NODE,),
        on_end: Callable[[StreamRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._registry = registry
        self._grace = grace
        self._interval = interval
        self._webhooks = webhooks
        self._ignored = frozenset(ignored_nodes)
        self._on_end = on_end
        self._clock = clock
        self._heartbeat = heartbeat
        self._missing_since: dict[str, float] = {}
        self._registry_down = False
        self._epoch: str | None = None
        self._hold_until = 0.0

    async def sweep(self) -> list[StreamRecord]:
        """Compare the database with the registry once; return the streams this sweep ended."""
        try:
            epoch = await self._registry.epoch()
            registered = {location.slug for location in await self._registry.list()}
        except RegistryUnavailable as exc:
            if not self._registry_down:
                log.warning("registry unreachable, not ending streams until it answers: %s", exc)
            self._registry_down = True
            # What went missing during the outage is unknown: start counting afresh once it answers.
            self._missing_since.clear()
            return []
        now = self._clock()
        if self._registry_down or (self._epoch is not None and epoch != self._epoch):
            log.info(
                "registry %s; origins have %.1f s to re-register before their streams count as lost",
                "reachable again" if self._registry_down else "restarted",
                self._heartbeat + self._grace,
            )
            self._registry_down = False
            self._hold_until = now + self._heartbeat + self._grace
            self._missing_since.clear()
        self._epoch = epoch
        live = await self._db.streams.list(StreamStatus.LIVE)
        self._missing_since = {
            stream_id: since
            for stream_id, since in self._missing_since.items()
            if any(record.id == stream_id for record in live)
        }
        ended: list[StreamRecord] = []
        for record in live:
            if record.slug in registered:
                self._missing_since.pop(record.id, None)
                continue
            since = self._missing_since.setdefault(record.id, now)
            if now - since < self._grace or now < self._hold_until:
                continue
            result = await self._end_lost(record)
            self._missing_since.pop(record.id, None)
            if result is not None:
                ended.append(result)
        return ended

    async def _end_lost(self, record: StreamRecord) -> StreamRecord | None:
        sessions = await self._db.sessions.open_for_stream(record.id)
        lost = [session for session in sessions if session.node not in self._ignored]
        if not lost:
            return None
        now = datetime.now(UTC)
        for session in lost:
            await self._db.sessions.close(session.id, ended_at=now, end_reason=ORIGIN_LOST)
        if len(lost) < len(sessions):
            return None
        try:
            ended = await self._db.streams.mark_ended(record.id, now)
        except (NotFound, InvalidTransition):
            # Deleted or already ended by its origin meanwhile: nothing left to do.
            return None
        nodes = ", ".join(sorted({session.node for session in lost}))
        log.warning("stream %s: ENDED (%s: node %s stopped heartbeating)", record.slug, ORIGIN_LOST, nodes)
        if self._on_end is not None:
            self._on_end(ended)
        if self._webhooks is not None:
            self._webhooks.emit(STREAM_ENDED, {**stream_event_data(ended), "reason": ORIGIN_LOST})
        return ended

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled; a failing sweep is logged and retried."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not end status tracking for good; the next sweep retries.
                log.exception("origin-loss sweep failed")
            await asyncio.sleep(self._interval)
