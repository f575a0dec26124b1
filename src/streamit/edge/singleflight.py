"""Single-flight: concurrent requests for one key share one execution of the work that answers them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Flight(Generic[T]):
    """The outcome of :meth:`SingleFlight.run`: the value, and whether another caller's flight produced it."""

    value: T
    coalesced: bool


class SingleFlight(Generic[K, T]):
    """At most one in-flight execution per key; callers arriving meanwhile wait for it.

    The work runs in a task of its own, so a caller that is cancelled (a viewer hanging up) neither
    cancels the work nor the other callers waiting for it.  Waiters receive the same value, or the same
    exception.  At most ``max_keys`` keys are in flight; beyond that, work runs uncoalesced rather than
    growing the table without bound.
    """

    def __init__(self, *, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._flights: dict[K, asyncio.Task[T]] = {}
        self.uncoalesced = 0

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> Flight[T]:
        """The result of ``work()`` for ``key``, started now or shared with the flight already under way."""
        task = self._flights.get(key)
        if task is not None:
            return Flight(await asyncio.shield(task), coalesced=True)
        if len(self._flights) >= self.max_keys:
            self.uncoalesced += 1
            return Flight(await work(), coalesced=False)
        task = asyncio.create_task(self._perform(work))
        self._flights[key] = task
        task.add_done_callback(lambda done: self._land(key, done))
        return Flight(await asyncio.shield(task), coalesced=False)

    @staticmethod
    async def _perform(work: Callable[[], Awaitable[T]]) -> T:
        return await work()

    def _land(self, key: K, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        # Every caller may have been cancelled: mark the exception as retrieved so asyncio does not log it.
        if not task.cancelled():
            task.exception()
