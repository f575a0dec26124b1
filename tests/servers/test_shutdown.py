"""ShutdownWatchdog: names what a stopping process still waits for."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streamit.servers.shutdown import ShutdownWatchdog, describe_task


async def _waits_forever(event: asyncio.Event) -> None:
    await event.wait()


async def test_a_slow_stop_reports_the_pending_tasks_and_where_they_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = asyncio.Event()
    stuck = asyncio.create_task(_waits_forever(event), name="stuck-close")
    watchdog = ShutdownWatchdog(asyncio.get_running_loop(), patience=0.05, interval=0.05)
    with caplog.at_level(logging.WARNING, logger="streamit.servers.shutdown"):
        watchdog.arm()
        watchdog.arm()  # a second signal does not start a second watch
        await asyncio.sleep(0.13)
    event.set()
    await stuck
    watchdog.disarm()
    assert watchdog.reports == 2
    report = caplog.records[0].getMessage()
    assert report.startswith("still stopping 0 s after the stop signal")
    assert "stuck-close [_waits_forever]: _waits_forever (test_shutdown.py:" in report


async def test_a_prompt_stop_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    watchdog = ShutdownWatchdog(asyncio.get_running_loop(), patience=0.05)
    with caplog.at_level(logging.WARNING, logger="streamit.servers.shutdown"):
        watchdog.arm()
        assert watchdog.armed
        watchdog.disarm()
        await asyncio.sleep(0.1)
    assert not watchdog.armed
    assert watchdog.reports == 0
    assert caplog.records == []


async def _closes(event: asyncio.Event) -> None:
    await _waits_forever(event)


async def test_describe_task_shows_the_awaits_outermost_first() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_closes(event), name="closing")
    await asyncio.sleep(0)
    try:
        line = describe_task(task)
        assert line.startswith("closing [_closes]: _closes (test_shutdown.py:")
        assert " > _waits_forever (test_shutdown.py:" in line
    finally:
        event.set()
        await task
