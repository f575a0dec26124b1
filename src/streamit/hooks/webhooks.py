"""JSON webhooks (``stream.live``, ``stream.ended``) delivered in the background with retries.

:meth:`WebhookDispatcher.emit` only appends to a bounded in-memory queue per receiver URL: it is synchronous,
O(1) and never waits for the network, so ingest is never held up by a slow or dead receiver.  A worker task
per URL posts the events in order; a failed attempt (connection error, timeout, ``408``, ``429`` or ``5xx``)
is retried with exponential backoff and jitter, other ``4xx`` answers are final.  When a queue is full the
oldest event is dropped and counted.

Each request is a POST of ``application/json``::

    {"id": "<delivery id>", "type": "stream.live", "created_at": "<ISO 8601 UTC>", "node": "<node id>",
     "data": {...}}

with headers ``X-Streamit-Event`` (the type) and ``X-Streamit-Delivery`` (the id, the same on every retry so
receivers can drop duplicates), signed as described in :mod:`streamit.hooks.signing` when ``hook_secret`` is
set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from streamit.config import Settings
from streamit.db import StreamRecord
from streamit.hooks.callbacks import USER_AGENT
from streamit.hooks.signing import signature_headers

log = logging.getLogger(__name__)

STREAM_LIVE = "stream.live"
STREAM_ENDED = "stream.ended"
EVENT_HEADER = "X-Streamit-Event"
DELIVERY_HEADER = "X-Streamit-Delivery"
_RETRIED_STATUSES = frozenset({408, 425, 429})


def stream_event_data(record: StreamRecord) -> dict[str, object]:
    """The ``data`` of a stream event: public fields of ``record`` only (never the key)."""
    return {
        "id": record.id,
        "slug": record.slug,
        "title": record.title,
        "status": record.status.value,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
    }


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Counters of a dispatcher, summed over its receivers."""

    delivered: int
    failed: int
    dropped: int
    attempts: int
    pending: int


@dataclass(slots=True)
class _Delivery:
    id: str
    event_type: str
    body: bytes


@dataclass(slots=True)
class _Receiver:
    url: str
    queue: deque[_Delivery] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    busy: bool = False
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0


class WebhookDispatcher:
    """Delivers stream events to every URL of ``settings.webhook_urls``.

    ``emit`` may be called before :meth:`start`; events wait in the queue.  Call it from the event loop's
    thread.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_queue: int = 1000,
        max_attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        if max_queue < 1 or max_attempts < 1 or backoff < 0 or max_backoff < backoff:
            raise ValueError("max_queue and max_attempts must be ≥ 1 and 0 ≤ backoff ≤ max_backoff")
        self._secret = settings.hook_secret
        self._node = settings.node_id
        self._timeout = settings.hook_timeout
        self._max_queue = max_queue
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._receivers = [_Receiver(url) for url in dict.fromkeys(settings.webhook_urls)]
        for receiver in self._receivers:
            receiver.idle.set()
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether any webhook URL is configured."""
        return bool(self._receivers)

    @property
    def stats(self) -> WebhookStats:
        """A snapshot of the counters."""
        receivers = self._receivers
        return WebhookStats(
            delivered=sum(r.delivered for r in receivers),
            failed=sum(r.failed for r in receivers),
            dropped=sum(r.dropped for r in receivers),
            attempts=sum(r.attempts for r in receivers),
            pending=sum(len(r.queue) + r.busy for r in receivers),
        )

    def emit(self, event_type: str, data: dict[str, object]) -> None:
        """Queue ``event_type`` with ``data`` (JSON-serialisable; other values are turned into strings)
        for every receiver.  Never blocks; drops a receiver's oldest event when its queue is full."""
        if not self._receivers or self._closed:
            return
        delivery_id = uuid.uuid4().hex
        envelope = {
            "id": delivery_id,
            "type": event_type,
            "created_at": datetime.now(UTC).isoformat(),
            "node": self._node,
            "data": data,
        }
        body = json.dumps(envelope, separators=(",", ":"), default=str).encode("utf-8")
        delivery = _Delivery(delivery_id, event_type, body)
        for receiver in self._receivers:
            if len(receiver.queue) >= self._max_queue:
                receiver.queue.popleft()
                receiver.dropped += 1
            receiver.queue.append(delivery)
            receiver.idle.clear()
            receiver.wake.set()

    async def start(self) -> None:
        """Start one delivery worker per receiver URL."""
        if self._client is not None or not self._receivers:
            return
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
        )
        for receiver in self._receivers:
            receiver.task = asyncio.create_task(self._run(receiver), name=f"webhooks {receiver.url}")

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop accepting events, deliver what is queued for up to ``timeout`` seconds, then stop.

        Events still undelivered after ``timeout`` are dropped and counted.
        """
        self._closed = True
        if self._client is not None:
            waits = [receiver.idle.wait() for receiver in self._receivers]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
        for receiver in self._receivers:
            abandoned = len(receiver.queue) + receiver.busy
            if receiver.task is not None:
                receiver.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver.task
                receiver.task = None
            receiver.dropped += abandoned
            receiver.queue.clear()
            receiver.busy = False
            receiver.idle.set()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _delay(self, attempt: int) -> float:
        # Exponential backoff with jitter in [50 %, 100 %] so receivers that recover are not hit in lockstep.
        ceiling: float = min(self._max_backoff, self._backoff * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)

    async def _run(self, receiver: _Receiver) -> None:
        while True:
            if not receiver.queue:
                receiver.idle.set()
                receiver.wake.clear()
                await receiver.wake.wait()
                continue
            delivery = receiver.queue.popleft()
            receiver.busy = True
            try:
                await self._deliver(receiver, delivery)
            finally:
                receiver.busy = False

    async def _deliver(self, receiver: _Receiver, delivery: _Delivery) -> None:
        assert self._client is not None
        outcome = "not attempted"
        for attempt in range(1, self._max_attempts + 1):
            headers = {EVENT_HEADER: delivery.event_type, DELIVERY_HEADER: delivery.id}
            if self._secret:
                headers.update(signature_headers(self._secret, delivery.body, timestamp=int(time.time())))
            receiver.attempts += 1
            try:
                async with asyncio.timeout(self._timeout):
                    response = await self._client.post(receiver.url, content=delivery.body, headers=headers)
            except TimeoutError:
                outcome = "timed out"
            except httpx.HTTPError as exc:
                outcome = f"failed: {exc.__class__.__name__}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    receiver.delivered += 1
                    return
                outcome = f"HTTP {status}"
                if status < 500 and status not in _RETRIED_STATUSES:
                    break
            if attempt < self._max_attempts:
                await asyncio.sleep(self._delay(attempt))
        receiver.failed += 1
        log.warning(
            "webhook %s %s to %s not delivered: %s", delivery.event_type, delivery.id, receiver.url, outcome
        )
