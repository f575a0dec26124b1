"""An in-process registry for the all-in-one ``streamit serve``."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable

from streamit.discovery.location import StreamLocation, is_valid_slug
from streamit.errors import InvalidInput


def check_ttl(ttl: float) -> None:
    """Raise :class:`InvalidInput` unless ``ttl`` is a positive, finite number of seconds."""
    if not (0 < ttl < float("inf")):
        raise InvalidInput(f"TTL must be a positive number of seconds, not {ttl!r}")


class MemoryRegistry:
    """A :class:`~streamit.discovery.registry.Registry` held in a dict.

    ``clock`` returns monotonic seconds; tests pass a fake one to expire entries without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[StreamLocation, float]] = {}
        self._epoch = uuid.uuid4().hex

    def _live(self, slug: str) -> StreamLocation | None:
        found = self._entries.get(slug)
        if found is None:
            return None
        location, expires_at = found
        if self._clock() >= expires_at:
            del self._entries[slug]
            return None
        return location

    async def register(self, location: StreamLocation, ttl: float) -> None:
        """Announce ``location`` for ``ttl`` seconds, replacing any entry for its slug."""
        check_ttl(ttl)
        self._entries[location.slug] = (location, self._clock() + ttl)

    async def refresh(self, slug: str, node: str, ttl: float) -> bool:
        """Extend the entry of ``slug`` owned by ``node``; False when it expired or another node owns it."""
        check_ttl(ttl)
        location = self._live(slug)
        if location is None or location.node != node:
            return False
        self._entries[slug] = (location, self._clock() + ttl)
        return True

    async def unregister(self, slug: str, node: str) -> None:
        """Remove the entry of ``slug`` if ``node`` owns it."""
        location = self._live(slug)
        if location is not None and location.node == node:
            del self._entries[slug]

    async def lookup(self, slug: str) -> StreamLocation | None:
        """The live entry for ``slug``, or None (also for names that cannot be slugs)."""
        if not is_valid_slug(slug):
            return None
        return self._live(slug)

    async def list(self) -> builtins.list[StreamLocation]:
        """Every live entry, sorted by slug."""
        return [location for slug in sorted(self._entries) if (location := self._live(slug)) is not None]

    async def epoch(self) -> str:
        """This registry's identity: entries are only lost with the process that holds them."""
        return self._epoch

    async def close(self) -> None:
        """Forget every entry."""
        self._entries.clear()
