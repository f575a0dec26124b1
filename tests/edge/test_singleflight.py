"""Single-flight: one execution per key for concurrent callers, shared values and exceptions."""

from __future__ import annotations

import asyncio

import pytest

from streamit.edge.singleflight import SingleFlight


class Work:
    """Counts executions; each waits for ``release`` so callers pile up."""

    def __init__(self, value: str = "body", error: Exception | None = None) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.value = value
        self.error = error

    async def __call__(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.value


async def test_concurrent_callers_share_one_execution() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(50)]
    await asyncio.sleep(0)
    assert "k" in flights and len(flights) == 1
    work.release.set()
    results = await asyncio.gather(*callers)
    assert work.calls == 1
    assert {r.value for r in results} == {"body"}
    assert sum(not r.coalesced for r in results) == 1
    assert "k" not in flights


async def test_distinct_keys_run_separately() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    first, second = Work("a"), Work("b")
    tasks = [asyncio.create_task(flights.run("a", first)), asyncio.create_task(flights.run("b", second))]
    await asyncio.sleep(0)
    first.release.set()
    second.release.set()
    assert [r.value for r in await asyncio.gather(*tasks)] == ["a", "b"]


async def test_waiters_share_the_exception() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work(error=ConnectionError("origin down"))
    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    work.release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert work.calls == 1
    assert all(isinstance(r, ConnectionError) and str(r) == "origin down" for r in results)
    assert len(flights) == 0


async def test_a_later_call_runs_again_after_completion() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    work.release.set()
    await flights.run("k", work)
    second = await flights.run("k", work)
    assert work.calls == 2 and not second.coalesced


async def test_cancelling_the_first_caller_does_not_cancel_the_others() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work()
    leader = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    follower = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    work.release.set()
    result = await follower
    assert result.value == "body" and result.coalesced and work.calls == 1


async def test_everyone_cancelled_leaves_no_unretrieved_exception(caplog: pytest.LogCaptureFixture) -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    work = Work(error=RuntimeError("nobody listens"))
    caller = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    caller.cancel()
    work.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(flights) == 0
    assert "never retrieved" not in caplog.text


async def test_beyond_max_keys_work_runs_uncoalesced() -> None:
    flights: SingleFlight[int, str] = SingleFlight(max_keys=2)
    works = [Work(str(i)) for i in range(3)]
    tasks = [asyncio.create_task(flights.run(i, works[i])) for i in range(3)]
    await asyncio.sleep(0)
    assert len(flights) == 2 and flights.uncoalesced == 1
    for work in works:
        work.release.set()
    assert [r.value for r in await asyncio.gather(*tasks)] == ["0", "1", "2"]


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SingleFlight(max_keys=0)
