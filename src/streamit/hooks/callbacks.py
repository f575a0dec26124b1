"""Outgoing nginx-rtmp-style publish callbacks: ``on_publish``, ``on_update`` and ``on_publish_done``.

Each callback is an HTTP POST of the form nginx-rtmp 1.2.2 sends (same fields, order and escaping, see
:mod:`streamit.hooks.nginx_form`) to a configured URL, bounded by ``hook_timeout`` in total.  The answer
decides, as in nginx-rtmp's notify module:

* ``2xx`` allows the publish (or its continuation);
* ``3xx`` allows it too; on ``on_publish`` a ``Location`` header renames the stream's public slug;
* any other status, a timeout or a connection failure refuses it: the hooks fail closed.

With ``hook_secret`` set, every request is signed (:mod:`streamit.hooks.signing`).  The stream key travels in
the ``name`` field, so it is never logged here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

import streamit
from streamit.config import Settings
from streamit.hooks.nginx_form import encode_form
from streamit.hooks.signing import signature_headers

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
USER_AGENT = f"streamit/{streamit.__version__}"


@dataclass(frozen=True, slots=True)
class PublishCall:
    """What nginx-rtmp tells a callback about a publish: the RTMP ``connect`` and ``publish`` arguments.

    ``name`` is the stream key the publisher used; ``args`` the raw query string that followed it
    (``key?token=x`` gives ``args="token=x"``), forwarded like nginx-rtmp forwards it.
    """

    app: str
    name: str
    addr: str
    tcurl: str
    flashver: str
    clientid: str
    args: str = ""


@dataclass(frozen=True, slots=True)
class HookDecision:
    """A callback's verdict.  ``rename_to`` is the new public slug a ``3xx`` asked for, if any."""

    allowed: bool
    rename_to: str | None
    reason: str


ALLOWED_WITHOUT_CALLBACK = HookDecision(allowed=True, rename_to=None, reason="no callback configured")


def _connect_fields(call: PublishCall) -> list[tuple[str, str]]:
    # nginx-rtmp sends the RTMP connect arguments first, swfurl and pageurl empty for encoders.
    return [
        ("app", call.app),
        ("flashver", call.flashver),
        ("swfurl", ""),
        ("tcurl", call.tcurl),
        ("pageurl", ""),
        ("addr", call.addr),
        ("clientid", call.clientid),
    ]


def publish_form(call: PublishCall) -> bytes:
    """The body of ``on_publish``: connect fields, ``call=publish``, ``name``, ``type=live``, args."""
    fields = [*_connect_fields(call), ("call", "publish"), ("name", call.name), ("type", "live")]
    return encode_form(fields, call.args)


def update_form(call: PublishCall, *, time_s: int, timestamp_ms: int | None = None) -> bytes:
    """The body of ``on_update``: ``call=update_publish``, seconds since publish start, optionally the
    stream's current RTMP timestamp in milliseconds, then ``name`` and args."""
    fields = [*_connect_fields(call), ("call", "update_publish"), ("time", str(time_s))]
    if timestamp_ms is not None:
        fields.append(("timestamp", str(timestamp_ms)))
    fields.append(("name", call.name))
    return encode_form(fields, call.args)


def publish_done_form(call: PublishCall) -> bytes:
    """The body of ``on_publish_done``: ``call=publish_done``, ``name``, args."""
    fields = [*_connect_fields(call), ("call", "publish_done"), ("name", call.name)]
    return encode_form(fields, call.args)


def location_name(location: str) -> str | None:
    """The stream name a ``Location`` header names: the value itself, or the last path segment of a URL
    or absolute path (``/live/new-name?x=1`` → ``new-name``); ``None`` when empty."""
    value = location.strip()
    if "://" in value or value.startswith("/"):
        value = value.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return value or None


def decide(response: httpx.Response, *, renames: bool) -> HookDecision:
    """The verdict of a callback's HTTP answer (nginx-rtmp's rules: 2xx and 3xx allow, else refuse)."""
    status = response.status_code
    if 200 <= status < 300:
        return HookDecision(allowed=True, rename_to=None, reason=f"allowed (HTTP {status})")
    if 300 <= status < 400:
        target = location_name(response.headers.get("location", "")) if renames else None
        return HookDecision(allowed=True, rename_to=target, reason=f"allowed (HTTP {status})")
    return HookDecision(allowed=False, rename_to=None, reason=f"refused (HTTP {status})")


class PublishCallbacks:
    """Calls the configured ``on_publish`` / ``on_update`` / ``on_publish_done`` URLs over pooled HTTP."""

    def __init__(self, settings: Settings) -> None:
        self._publish_url = settings.on_publish_url
        self._update_url = settings.on_update_url
        self._done_url = settings.on_publish_done_url
        self._timeout = settings.hook_timeout
        self._secret = settings.hook_secret
        self.update_interval = settings.on_update_interval
        self.enabled = bool(self._publish_url or self._update_url or self._done_url)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            headers={"User-Agent": USER_AGENT},
        )

    async def _post(self, url: str, body: bytes) -> httpx.Response:
        headers = {"Content-Type": FORM_CONTENT_TYPE}
        if self._secret:
            headers.update(signature_headers(self._secret, body, timestamp=int(time.time())))
        # httpx's timeout bounds each phase; the hook's budget is for the whole exchange.
        async with asyncio.timeout(self._timeout):
            return await self._client.post(url, content=body, headers=headers)

    async def _ask(
        self, hook: str, url: str, body: bytes, call: PublishCall, *, renames: bool
    ) -> HookDecision:
        try:
            response = await self._post(url, body)
        except TimeoutError:
            decision = HookDecision(allowed=False, rename_to=None, reason="callback timed out")
        except httpx.HTTPError as exc:
            decision = HookDecision(
                allowed=False, rename_to=None, reason=f"callback failed: {exc.__class__.__name__}"
            )
        else:
            decision = decide(response, renames=renames)
        log.log(
            logging.INFO if decision.allowed else logging.WARNING,
            "%s callback for publisher %s (client %s): %s",
            hook,
            call.addr,
            call.clientid,
            decision.reason,
        )
        return decision

    async def on_publish(self, call: PublishCall) -> HookDecision:
        """Ask ``on_publish_url`` whether ``call`` may publish; allowed when no URL is configured."""
        if not self._publish_url:
            return ALLOWED_WITHOUT_CALLBACK
        return await self._ask("on_publish", self._publish_url, publish_form(call), call, renames=True)

    async def on_update(
        self, call: PublishCall, *, time_s: int, timestamp_ms: int | None = None
    ) -> HookDecision:
        """Ask ``on_update_url`` whether the publish of ``call``, live for ``time_s`` seconds, may go on."""
        if not self._update_url:
            return ALLOWED_WITHOUT_CALLBACK
        body = update_form(call, time_s=time_s, timestamp_ms=timestamp_ms)
        return await self._ask("on_update", self._update_url, body, call, renames=False)

    async def on_publish_done(self, call: PublishCall) -> None:
        """Tell ``on_publish_done_url`` the publish ended; best effort, failures are only logged."""
        if self._done_url:
            await self._ask("on_publish_done", self._done_url, publish_done_form(call), call, renames=False)

    async def run_updates(
        self, call: PublishCall, on_refused: Callable[[HookDecision], None], *, clock: Callable[[], float]
    ) -> None:
        """Call ``on_update`` every ``on_update_interval`` seconds until it refuses, then ``on_refused``.

        Returns at once without an ``on_update_url``; otherwise runs until refused or cancelled (cancel it
        when the publish ends).  ``clock`` is a monotonic clock such as ``loop.time``.
        """
        if not self._update_url:
            return
        started = clock()
        while True:
            await asyncio.sleep(self.update_interval)
            decision = await self.on_update(call, time_s=int(clock() - started))
            if not decision.allowed:
                on_refused(decision)
                return

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()
