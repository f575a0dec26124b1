"""What a stopping process still waits for: logged when a shutdown takes longer than it should.

A node asked to stop (SIGINT/SIGTERM) closes its RTMP and HTTP servers, then its registry, webhook, Redis
and database connections.  Each step is bounded, but should one of them hang, the operator (or a test)
sees only a process that does not exit.  :class:`ShutdownWatchdog` names the tasks still pending and the
line each one waits on, once the stop is ``patience`` seconds old and again every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from types import FrameType

log = logging.getLogger(__name__)

SHUTDOWN_PATIENCE = 5.0
"""Seconds after a stop signal before the first report of what the process still waits for."""

REPORT_INTERVAL = 10.0
"""Seconds between later reports while the process keeps waiting."""

STACK_DEPTH = 16
"""Frames shown per task at most, innermost last."""


def await_chain(task: asyncio.Task[object]) -> list[FrameType]:
    """The frames of ``task``'s coroutine and of what it awaits, outermost first (``Task.get_stack`` stops at
    the task's own coroutine: a suspended coroutine's frame has no ``f_back``)."""
    frames: list[FrameType] = []
    awaited: object = task.get_coro()
    while awaited is not None and len(frames) < STACK_DEPTH:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return frames


def describe_task(task: asyncio.Task[object]) -> str:
    """One line: the task's name and coroutine, then where it waits (outermost frame first)."""
    where = " > ".join(
        f"{frame.f_code.co_name} ({os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno})"
        for frame in await_chain(task)
    )
    coroutine = task.get_coro()
    name = getattr(coroutine, "__qualname__", type(coroutine).__name__)
    return f"{task.get_name()} [{name}]: {where or 'no Python frame'}"


class ShutdownWatchdog:
    """Reports the pending tasks of ``loop`` if the process is still stopping ``patience`` seconds after
    :meth:`arm`, then every ``interval`` seconds until :meth:`disarm` (or the loop ends)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        patience: float = SHUTDOWN_PATIENCE,
        interval: float = REPORT_INTERVAL,
    ) -> None:
        self._loop = loop
        self._patience = patience
        self._interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None
        self.reports = 0
        """Reports logged so far."""

    @property
    def armed(self) -> bool:
        """Whether a stop is being watched."""
        return self._armed_at is not None

    def arm(self) -> None:
        """A stop began (a second call while armed changes nothing)."""
        if self._armed_at is not None:
            return
        self._armed_at = self._loop.time()
        self._timer = self._loop.call_later(self._patience, self._report)

    def disarm(self) -> None:
        """The process stopped (or the stop was called off): no more reports."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_at = None

    def _report(self) -> None:
        armed_at = self._armed_at
        if armed_at is None:
            return
        current = asyncio.current_task(self._loop)
        pending = sorted(
            (task for task in asyncio.all_tasks(self._loop) if task is not current and not task.done()),
            key=lambda task: task.get_name(),
        )
        self.reports += 1
        log.warning(
            "still stopping %.0f s after the stop signal; %d task(s) pending:\n  %s",
            self._loop.time() - armed_at,
            len(pending),
            "\n  ".join(describe_task(task) for task in pending) or "(none: a blocking call?)",
        )
        self._timer = self._loop.call_later(self._interval, self._report)
