"""JSON webhooks against a real HTTP receiver: envelope, signature, retries with backoff, bounded queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamit.config import Settings
from streamit.db import MediaInfo, StreamRecord, StreamStatus
from streamit.hooks import STREAM_LIVE, WebhookDispatcher, stream_event_data
from tests.hooks.conftest import Receiver, Reply


def webhook_settings(tmp_path: Path, *urls: str, secret: str | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path, webhook_urls=list(urls), hook_secret=secret, hook_timeout=1, node_id="node-a"
    )


async def wait_until(predicate: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def record() -> StreamRecord:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return StreamRecord(
        id="7c9e",
        slug="cooking-live",
        title="Cooking",
        description="",
        status=StreamStatus.LIVE,
        created_at=started,
        started_at=started,
        ended_at=None,
        media=MediaInfo(),
        bitrate_kbps=None,
        viewers=0,
    )


async def test_event_is_posted_as_signed_json(tmp_path: Path, receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/hook"), secret="k"))
    await dispatcher.start()
    dispatcher.emit(STREAM_LIVE, stream_event_data(record()))
    await dispatcher.aclose()
    (request,) = receiver.received("/hook")
    body = json.loads(request.body)
    assert set(body) == {"id", "type", "created_at", "node", "data"}
    assert body["type"] == "stream.live" and body["node"] == "node-a"
    assert body["data"] == {
        "id": "7c9e",
        "slug": "cooking-live",
        "title": "Cooking",
        "status": "LIVE",
        "started_at": "2026-01-02T03:04:05+00:00",
        "ended_at": None,
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Streamit-Event"] == "stream.live"
    assert request.headers["X-Streamit-Delivery"] == body["id"]
    stamp = request.headers["X-Streamit-Timestamp"]
    mac = hmac.new(b"k", stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Streamit-Signature"] == f"sha256={mac}"
    assert dispatcher.stats.delivered == 1 and dispatcher.stats.attempts == 1


async def test_retried_with_backoff_until_delivered(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/hook", Reply(503), Reply(500), Reply(200))
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/hook")), backoff=0.1)
    await dispatcher.start()
    dispatcher.emit("stream.ended", {"n": 1})
    await wait_until(lambda: dispatcher.stats.delivered == 1)
    await dispatcher.aclose()
    attempts = receiver.received("/hook")
    assert len(attempts) == 3 and dispatcher.stats.attempts == 3
    assert len({a.headers["X-Streamit-Delivery"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    # Jittered exponential backoff: at least half of 0.1 s, then of 0.2 s.
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1
    assert dispatcher.stats.failed == 0 and dispatcher.stats.pending == 0


async def test_gives_up_after_max_attempts(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/hook", Reply(502))
    dispatcher = WebhookDispatcher(
        webhook_settings(tmp_path, receiver.url("/hook")), backoff=0.01, max_attempts=3
    )
    await dispatcher.start()
    dispatcher.emit("stream.live", {})
    await wait_until(lambda: dispatcher.stats.failed == 1)
    await dispatcher.aclose()
    assert len(receiver.received("/hook")) == 3 and dispatcher.stats.delivered == 0


async def test_client_errors_are_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/hook", Reply(410), Reply(200))
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/hook")), backoff=0.01)
    await dispatcher.start()
    dispatcher.emit("stream.live", {})
    await wait_until(lambda: dispatcher.stats.failed == 1)
    await dispatcher.aclose()
    assert len(receiver.received("/hook")) == 1


async def test_timeouts_are_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.reply("/hook", Reply(200, delay=2.0), Reply(200))
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/hook")), backoff=0.01)
    await dispatcher.start()
    dispatcher.emit("stream.live", {})
    await wait_until(lambda: dispatcher.stats.delivered == 1)
    await dispatcher.aclose()
    assert dispatcher.stats.attempts == 2


async def test_queue_is_bounded_and_drops_oldest(tmp_path: Path, receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/hook")), max_queue=5)
    for n in range(12):
        dispatcher.emit("stream.live", {"n": n})
    assert dispatcher.stats.pending == 5 and dispatcher.stats.dropped == 7
    await dispatcher.start()
    await dispatcher.aclose()
    received = [json.loads(r.body)["data"]["n"] for r in receiver.received("/hook")]
    assert received == [7, 8, 9, 10, 11]


async def test_emit_is_sync_and_never_waits_for_a_stuck_receiver(tmp_path: Path, receiver: Receiver) -> None:
    assert not inspect.iscoroutinefunction(WebhookDispatcher.emit)
    receiver.reply("/slow", Reply(200, delay=30.0))
    receiver.reply("/fast", Reply(200))
    slow_settings = Settings(
        data_dir=tmp_path, webhook_urls=[receiver.url("/slow"), receiver.url("/fast")], hook_timeout=60
    )
    dispatcher = WebhookDispatcher(slow_settings, max_queue=100)
    await dispatcher.start()
    dispatcher.emit("stream.live", {"n": 0})
    await wait_until(lambda: len(receiver.received("/slow")) == 1)
    started = time.monotonic()
    for n in range(1, 100):
        dispatcher.emit("stream.live", {"n": n})
    assert time.monotonic() - started < 1.0  # far below one delivery to the slow receiver
    # The fast receiver is served by its own worker while the slow one hangs.
    await wait_until(lambda: len(receiver.received("/fast")) == 100, timeout=30)
    assert len(receiver.received("/slow")) == 1
    await dispatcher.aclose(timeout=0.2)
    # The slow receiver's backlog and the event in flight are dropped when the close timeout expires.
    assert dispatcher.stats.dropped == 100 and dispatcher.stats.delivered == 100


async def test_aclose_flushes_queued_events(tmp_path: Path, receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path, receiver.url("/a"), receiver.url("/b")))
    await dispatcher.start()
    for n in range(3):
        dispatcher.emit("stream.live", {"n": n})
    await dispatcher.aclose()
    assert len(receiver.received("/a")) == 3 and len(receiver.received("/b")) == 3
    assert dispatcher.stats.delivered == 6
    dispatcher.emit("stream.live", {"n": 99})  # after close: ignored
    assert dispatcher.stats.pending == 0


async def test_no_urls_means_no_work(tmp_path: Path) -> None:
    dispatcher = WebhookDispatcher(webhook_settings(tmp_path))
    assert not dispatcher.enabled
    await dispatcher.start()
    dispatcher.emit("stream.live", {})
    await dispatcher.aclose()
    assert dispatcher.stats.pending == 0 and dispatcher.stats.attempts == 0


def test_invalid_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WebhookDispatcher(webhook_settings(tmp_path), max_queue=0)
