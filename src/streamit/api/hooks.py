"""Incoming nginx-rtmp notify hooks: nginx-rtmp does the ingest, Streamit authorises it and keeps status.

Point nginx-rtmp's ``on_publish``, ``on_update`` and ``on_publish_done`` at
``/api/v1/hooks/nginx-rtmp/on_publish`` (…``/on_update``, …``/on_publish_done``).  Both ``notify_method post``
(the default, a form body) and ``notify_method get`` (the same form as query string) are accepted.

* ``on_publish`` with a valid stream key answers ``302`` with ``Location: <slug>``: nginx-rtmp renames the
  publish to the public slug.  The stream becomes ``LIVE`` and a session is opened (node ``nginx-rtmp``,
  remote address = nginx's ``addr``).  An unknown key, or a stream that already has an open session, gets
  ``403``: nginx-rtmp refuses the publisher.
* ``on_update`` answers ``200`` while the key is valid and ``403`` once it was rotated or the stream deleted,
  which makes nginx-rtmp drop the publisher.  ``call=update_play`` (viewers and relays, named by slug) gets
  ``200`` while the stream exists.
* ``on_publish_done`` closes the open ``nginx-rtmp`` session from that address (end reason ``unpublish``)
  and, when no other session of the stream stays open, marks the stream ``ENDED``.

nginx-rtmp 1.2.2 sends ``on_update`` and ``on_publish_done`` with the ORIGINAL name (the key), even after a
rename; both endpoints also accept the slug.  It also sends ``on_publish_done`` for a publish that
``on_publish`` refused, which is why ``on_publish_done`` only closes a session from the same address.  After
a key rotation ``on_publish_done`` still names the old key; the stream is then found among the publishes
this process accepted (remembered by key digest).

nginx-rtmp 1.2.2's HLS module sees the name BEFORE the rename, so HLS must be produced in a second
application that receives the renamed stream through ``push``::

    application live {                          # publishers use rtmp://nginx/live/<stream key>
        live on;
        on_publish      http://streamit:8080/api/v1/hooks/nginx-rtmp/on_publish;
        on_update       http://streamit:8080/api/v1/hooks/nginx-rtmp/on_update;
        on_publish_done http://streamit:8080/api/v1/hooks/nginx-rtmp/on_publish_done;
        push rtmp://127.0.0.1:1935/hls;         # carries the renamed name: the slug
    }
    application hls {
        live on;
        allow publish 127.0.0.1; deny publish all;
        hls on; hls_path /var/www/hls; hls_nested on;   # → /var/www/hls/<slug>/index.m3u8
    }

The stream key is never logged and never appears in a response.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from streamit.api.problems import problem_response
from streamit.api.routes import API_PREFIX
from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.db.keys import hash_stream_key
from streamit.db.slugs import is_valid_slug
from streamit.errors import InvalidTransition, NotFound, RemoteProtocolError
from streamit.hooks.nginx_form import MAX_FORM_BYTES, parse_form
from streamit.hooks.webhooks import STREAM_ENDED, STREAM_LIVE, WebhookDispatcher, stream_event_data

log = logging.getLogger(__name__)

HOOKS_PREFIX = f"{API_PREFIX}/hooks/nginx-rtmp"
NGINX_NODE = "nginx-rtmp"
END_REASON = "unpublish"
_UNKNOWN_ADDRESS = "unknown"
_MAX_REMEMBERED_PUBLISHES = 10_000
_FORM_FIELDS = ("app", "flashver", "swfurl", "tcurl", "pageurl", "addr", "clientid", "call", "name")
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        **{field: {"type": "string"} for field in _FORM_FIELDS},
                        "type": {"type": "string"},
                        "time": {"type": "string"},
                        "timestamp": {"type": "string"},
                    },
                }
            }
        }
    }
}
_BAD_FORM: dict[int | str, dict[str, Any]] = {400: {"description": "The form is malformed or too large."}}
_RESPONSES: dict[str, dict[int | str, dict[str, Any]]] = {
    "on_publish": {
        302: {"description": "Allowed; ``Location`` is the stream's slug, the name to publish under."},
        403: {"description": "Refused: unknown key or stream already live."},
        **_BAD_FORM,
    },
    "on_update": {
        200: {"description": "The publish (or play) may go on."},
        403: {"description": "Stop the publisher: the key is no longer valid."},
        404: {"description": "``update_play`` of an unknown stream."},
        **_BAD_FORM,
    },
    "on_publish_done": {
        204: {"description": "Recorded (also when no session was open)."},
        404: {"description": "No stream has this key or slug."},
        **_BAD_FORM,
    },
}


async def _read_form(request: Request) -> dict[str, str]:
    """The nginx-rtmp form of ``request``: the body of a POST, the query string of a GET."""
    if request.method == "GET":
        query: bytes = request.scope.get("query_string", b"")
        return parse_form(query)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise RemoteProtocolError("form too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise RemoteProtocolError("form too large")
    return parse_form(bytes(body))


def _refuse(status: int, detail: str) -> Response:
    return problem_response(status, detail)


def _address(fields: dict[str, str]) -> str:
    return fields.get("addr") or _UNKNOWN_ADDRESS


def create_hooks_router(
    db: Database, settings: Settings, *, webhooks: WebhookDispatcher | None = None
) -> APIRouter:
    """Routes answering nginx-rtmp's ``on_publish``, ``on_update`` and ``on_publish_done`` callbacks.

    ``webhooks``, when given, receives ``stream.live`` and ``stream.ended`` events for these publishes.
    """
    router = APIRouter(prefix=HOOKS_PREFIX, tags=["hooks"])

    def emit(event_type: str, record: StreamRecord) -> None:
        if webhooks is not None:
            webhooks.emit(event_type, stream_event_data(record))

    # Digest of the key each live nginx-rtmp publish used → stream id: on_publish_done still names the old
    # key after a rotation.  In this process only; bounded in case nginx dies without on_publish_done.
    publishing: dict[str, str] = {}

    def remember(digest: str, stream_id: str) -> None:
        publishing.pop(digest, None)
        publishing[digest] = stream_id
        if len(publishing) > _MAX_REMEMBERED_PUBLISHES:
            del publishing[next(iter(publishing))]

    async def stream_named(name: str) -> StreamRecord | None:
        """The stream whose key is ``name`` or, failing that, whose slug is ``name``."""
        record = await db.streams.find_by_key(name)
        if record is None and is_valid_slug(name):
            record = await db.streams.get(name)
        return record

    async def has_nginx_session(record: StreamRecord, addr: str) -> bool:
        return any(
            s.node == NGINX_NODE and s.remote_addr == addr
            for s in await db.sessions.open_for_stream(record.id)
        )

    async def on_publish(request: Request) -> Response:
        """Authorise a publish by stream key: ``302`` to the slug, else ``403``."""
        try:
            fields = await _read_form(request)
        except RemoteProtocolError as exc:
            return _refuse(400, str(exc))
        addr = _address(fields)
        if fields.get("call", "publish") != "publish":
            return _refuse(403, "not a publish call")
        record = await db.streams.find_by_key(fields.get("name", ""))
        if record is None:
            log.warning("nginx-rtmp publish refused from %s: unknown stream key", addr)
            return _refuse(403, "unknown stream key")
        if await db.sessions.open_for_stream(record.id):
            # nginx-rtmp's live module cannot take a name over either: it refuses a second publisher.
            log.warning("nginx-rtmp publish refused from %s: stream %s is already live", addr, record.slug)
            return _refuse(403, "stream is already live")
        now = datetime.now(UTC)
        try:
            record = await db.streams.mark_live(record.id, now)
            await db.sessions.open(record.id, node=NGINX_NODE, remote_addr=addr, started_at=now)
        except (NotFound, InvalidTransition):
            return _refuse(403, "stream is gone")
        remember(hash_stream_key(fields["name"]), record.id)
        log.info("stream %s is live through nginx-rtmp, published from %s", record.slug, addr)
        emit(STREAM_LIVE, record)
        return Response(status_code=302, headers={"Location": record.slug})

    async def on_update(request: Request) -> Response:
        """``200`` while the publish (or play) may go on; ``403`` drops the publisher (key rotated)."""
        try:
            fields = await _read_form(request)
        except RemoteProtocolError as exc:
            return _refuse(400, str(exc))
        call = fields.get("call", "")
        name = fields.get("name", "")
        if call == "update_publish":
            record = await db.streams.find_by_key(name)
            if record is None and is_valid_slug(name):
                # Only a name renamed by on_publish arrives as a slug: it must still be publishing.
                slug_record = await db.streams.get(name)
                if slug_record is not None and await has_nginx_session(slug_record, _address(fields)):
                    record = slug_record
            if record is None:
                log.warning("nginx-rtmp update refused for %s: stream key no longer valid", _address(fields))
                return _refuse(403, "stream key no longer valid")
            return Response(status_code=200)
        if call == "update_play":
            if await stream_named(name) is None:
                return _refuse(404, "no such stream")
            return Response(status_code=200)
        return _refuse(403, "call must be update_publish or update_play")

    async def on_publish_done(request: Request) -> Response:
        """Close the publish session and end the stream; ``204`` (also when nothing was open)."""
        try:
            fields = await _read_form(request)
        except RemoteProtocolError as exc:
            return _refuse(400, str(exc))
        name = fields.get("name", "")
        record = await stream_named(name)
        digest = hash_stream_key(name)
        if record is None and digest in publishing:
            # The key was rotated (on_update then refused it): find the stream it was published with.
            record = await db.streams.get_by_id(publishing[digest])
        if record is None:
            return _refuse(404, "no such stream")
        addr = _address(fields)
        now = datetime.now(UTC)
        sessions = await db.sessions.open_for_stream(record.id)
        mine = [s for s in sessions if s.node == NGINX_NODE and s.remote_addr == addr]
        for session in mine:
            await db.sessions.close(session.id, ended_at=now, end_reason=END_REASON)
        if mine:
            publishing.pop(digest, None)
        if mine and len(mine) == len(sessions) and record.status is StreamStatus.LIVE:
            try:
                record = await db.streams.mark_ended(record.id, now)
            except (NotFound, InvalidTransition):
                return Response(status_code=204)
            log.info("stream %s ended: nginx-rtmp publisher %s stopped", record.slug, addr)
            emit(STREAM_ENDED, record)
        return Response(status_code=204)

    for endpoint in (on_publish, on_update, on_publish_done):
        hook = endpoint.__name__
        for method in ("POST", "GET"):
            router.add_api_route(
                f"/{hook}",
                endpoint,
                methods=[method],
                summary=f"nginx-rtmp {hook} ({method})",
                operation_id=f"nginx_rtmp_{hook}_{method.lower()}",
                responses=_RESPONSES[hook],
                openapi_extra=_FORM_BODY if method == "POST" else None,
            )
    return router
