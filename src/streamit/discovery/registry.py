"""The registry protocol: which origin serves which live stream, kept alive by heartbeats."""

from __future__ import annotations

from typing import Protocol

from streamit.discovery.location import StreamLocation

DEFAULT_TTL = 10.0
"""Seconds an entry lives without a heartbeat; origins refresh every ``ttl / 3``."""


class Registry(Protocol):
    """Maps stream slugs to the origin serving them; entries expire unless refreshed within their TTL.

    Backends raise :class:`~streamit.errors.RegistryUnavailable` (a :class:`ConnectionError`) when their
    store cannot be reached.
    """

    async def register(self, location: StreamLocation, ttl: float) -> None:
        """Announce ``location`` for ``ttl`` seconds, replacing any entry for its slug."""
        ...

    async def refresh(self, slug: str, node: str, ttl: float) -> bool:
        """Extend the entry of ``slug`` owned by ``node`` to ``ttl`` seconds; False when it is gone."""
        ...

    async def unregister(self, slug: str, node: str) -> None:
        """Remove the entry of ``slug`` if ``node`` owns it (another node's entry is left alone)."""
        ...

    async def lookup(self, slug: str) -> StreamLocation | None:
        """The live, authentic entry for ``slug``, or None."""
        ...

    async def list(self) -> list[StreamLocation]:
        """Every live, authentic entry, sorted by slug."""
        ...

    async def epoch(self) -> str:
        """Names the store's current life: it changes when the store lost every entry at once (a restart).

        Entries missing right after a new epoch are not evidence of a dead origin: origins re-register on
        their next heartbeat.
        """
        ...

    async def close(self) -> None:
        """Release connections; the registry must not be used afterwards."""
        ...
