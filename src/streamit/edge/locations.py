"""Where each stream is: the discovery registry's answers, remembered for at most a second."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamit.discovery import StreamLocation
from streamit.edge.singleflight import SingleFlight

log = logging.getLogger(__name__)


class Resolver(Protocol):
    """Finds the origin currently serving a stream: a :class:`streamit.discovery.Registry` or any lookup.

    Raises :class:`ConnectionError` (an :class:`OSError`) when the registry cannot be reached.
    """

    async def lookup(self, slug: str) -> StreamLocation | None: ...


@dataclass(frozen=True, slots=True)
class Remembered:
    """A registry answer and how long it may be used."""

    location: StreamLocation | None
    fresh_until: float
    usable_until: float


class LocationCache:
    """Registry lookups remembered for ``ttl`` seconds (absent streams for ``negative_ttl``).

    Concurrent lookups of one slug make one registry call.  When the registry fails, a stream located
    less than ``stale_grace`` seconds ago keeps its last origin, so playback survives a registry outage.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = 1.0,
        negative_ttl: float = 0.25,
        stale_grace: float = 30.0,
        max_entries: int = 100_000,
    ) -> None:
        self.resolver = resolver
        self.clock = clock
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.stale_grace = stale_grace
        self.max_entries = max_entries
        self.registry_calls = 0
        self._entries: OrderedDict[str, Remembered] = OrderedDict()
        self._flights: SingleFlight[str, StreamLocation | None] = SingleFlight()

    async def lookup(self, slug: str) -> StreamLocation | None:
        """The location of ``slug``; from memory when the registry was asked less than ``ttl`` ago."""
        entry = self._entries.get(slug)
        if entry is not None and self.clock() < entry.fresh_until:
            return entry.location
        return await self.refresh(slug)

    def remembered(self, slug: str) -> StreamLocation | None:
        """The location of ``slug`` if the registry named one less than ``ttl`` ago, else ``None``."""
        entry = self._entries.get(slug)
        if entry is None or self.clock() >= entry.fresh_until:
            return None
        return entry.location

    async def refresh(self, slug: str) -> StreamLocation | None:
        """Ask the registry now (sharing a call already under way for ``slug``)."""
        flight = await self._flights.run(slug, lambda: self._ask(slug))
        return flight.value

    def forget(self, slug: str) -> None:
        """Drop what is remembered of ``slug`` (its origin stopped answering)."""
        self._entries.pop(slug, None)

    async def _ask(self, slug: str) -> StreamLocation | None:
        self.registry_calls += 1
        try:
            location = await self.resolver.lookup(slug)
        except OSError as exc:
            entry = self._entries.get(slug)
            if entry is None or entry.location is None or self.clock() >= entry.usable_until:
                raise
            log.warning("registry lookup of %s failed (%s); using its last known origin", slug, exc)
            return entry.location
        now = self.clock()
        ttl = self.ttl if location is not None else self.negative_ttl
        self._entries[slug] = Remembered(location, now + ttl, now + self.stale_grace)
        self._entries.move_to_end(slug)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return location
