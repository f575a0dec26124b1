"""Outgoing publish callbacks against a real HTTP receiver: allow, rename, refuse, time out, sign."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamit.config import Settings
from streamit.hooks import HookDecision, PublishCall, PublishCallbacks
from tests.hooks.conftest import Receiver, Reply, nginx_capture

KEY = "sk_Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1"
CALL = PublishCall(
    app="live",
    name=KEY,
    addr="127.0.0.1",
    tcurl="rtmp://127.0.0.1:11935/live",
    flashver="FMLE/3.0 (compatible; Lavf59.27",
    clientid="1",
    args="token=a%20b",
)


def hook_settings(tmp_path: Path, receiver: Receiver, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        on_publish_url=receiver.url("/publish"),
        on_update_url=receiver.url("/update"),
        on_publish_done_url=receiver.url("/done"),
        hook_timeout=0.5,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def callbacks(tmp_path: Path, receiver: Receiver) -> AsyncIterator[PublishCallbacks]:
    hooks = PublishCallbacks(hook_settings(tmp_path, receiver))
    yield hooks
    await hooks.aclose()


async def test_2xx_allows_with_nginx_rtmp_form(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    receiver.reply("/publish", Reply(204))
    decision = await callbacks.on_publish(CALL)
    assert decision == HookDecision(allowed=True, rename_to=None, reason="allowed (HTTP 204)")
    (request,) = receiver.received("/publish")
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == nginx_capture("on_publish_post")
    assert "X-Streamit-Signature" not in request.headers


@pytest.mark.parametrize(
    ("location", "expected"),
    [("cooking-live", "cooking-live"), ("/live/cooking-live", "cooking-live"), ("rtmp://h/live/new", "new")],
)
async def test_3xx_location_renames(
    callbacks: PublishCallbacks, receiver: Receiver, location: str, expected: str
) -> None:
    receiver.reply("/publish", Reply(302, (("Location", location),)))
    decision = await callbacks.on_publish(CALL)
    assert decision.allowed and decision.rename_to == expected


async def test_3xx_without_location_allows_unrenamed(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    receiver.reply("/publish", Reply(303))
    decision = await callbacks.on_publish(CALL)
    assert decision.allowed and decision.rename_to is None


@pytest.mark.parametrize("status", [400, 403, 404, 500, 503])
async def test_other_statuses_refuse(callbacks: PublishCallbacks, receiver: Receiver, status: int) -> None:
    receiver.reply("/publish", Reply(status, (("Location", "ignored"),)))
    decision = await callbacks.on_publish(CALL)
    assert decision == HookDecision(allowed=False, rename_to=None, reason=f"refused (HTTP {status})")


async def test_timeout_refuses_within_budget(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    receiver.reply("/publish", Reply(200, delay=3.0))
    started = time.monotonic()
    decision = await callbacks.on_publish(CALL)
    assert not decision.allowed and decision.reason == "callback timed out"
    assert time.monotonic() - started < 2.0


async def test_unreachable_receiver_refuses(tmp_path: Path) -> None:
    hooks = PublishCallbacks(
        Settings(data_dir=tmp_path, on_publish_url="http://127.0.0.1:9/x", hook_timeout=1)
    )
    try:
        decision = await hooks.on_publish(CALL)
    finally:
        await hooks.aclose()
    assert not decision.allowed and decision.reason.startswith("callback failed")


async def test_without_urls_everything_is_allowed(tmp_path: Path, receiver: Receiver) -> None:
    hooks = PublishCallbacks(Settings(data_dir=tmp_path))
    try:
        assert not hooks.enabled
        assert (await hooks.on_publish(CALL)).allowed
        assert (await hooks.on_update(CALL, time_s=30)).allowed
        await hooks.on_publish_done(CALL)
        await hooks.run_updates(
            CALL, lambda d: pytest.fail("no update URL, no refusal"), clock=time.monotonic
        )
    finally:
        await hooks.aclose()
    assert receiver.requests == []


async def test_update_and_done_forms(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    receiver.reply("/update", Reply(200))
    assert callbacks.enabled
    assert (await callbacks.on_update(CALL, time_s=2, timestamp_ms=734)).allowed
    receiver.reply("/done", Reply(500))
    await callbacks.on_publish_done(CALL)  # best effort: a failure is only logged
    assert receiver.received("/update")[0].body == nginx_capture("on_update_post")
    assert receiver.received("/done")[0].body == nginx_capture("on_publish_done_post")


async def test_update_refusal_and_3xx(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    receiver.reply("/update", Reply(302, (("Location", "elsewhere"),)), Reply(403))
    first = await callbacks.on_update(CALL, time_s=30)
    assert first.allowed and first.rename_to is None  # a running publish is never renamed
    assert not (await callbacks.on_update(CALL, time_s=60)).allowed


async def test_run_updates_until_refused(callbacks: PublishCallbacks, receiver: Receiver) -> None:
    callbacks.update_interval = 0.05
    receiver.reply("/update", Reply(200), Reply(200), Reply(403))
    refusals: list[HookDecision] = []
    await asyncio.wait_for(callbacks.run_updates(CALL, refusals.append, clock=time.monotonic), 5)
    assert [d.reason for d in refusals] == ["refused (HTTP 403)"]
    updates = receiver.received("/update")
    assert len(updates) == 3
    assert all(b"call=update_publish&time=" in u.body for u in updates)


async def test_key_is_never_logged(
    callbacks: PublishCallbacks, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    receiver.reply("/publish", Reply(403))
    await callbacks.on_publish(CALL)
    await callbacks.on_update(CALL, time_s=1)
    await callbacks.on_publish_done(CALL)
    assert caplog.records
    assert KEY not in caplog.text


async def test_signature_header_verifies(tmp_path: Path, receiver: Receiver) -> None:
    hooks = PublishCallbacks(hook_settings(tmp_path, receiver, hook_secret="hunter2"))
    try:
        before = int(time.time())
        await hooks.on_publish(CALL)
        after = int(time.time())
    finally:
        await hooks.aclose()
    (request,) = receiver.received("/publish")
    stamp = request.headers["X-Streamit-Timestamp"]
    assert before <= int(stamp) <= after
    mac = hmac.new(b"hunter2", stamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Streamit-Signature"] == f"sha256={mac}"
