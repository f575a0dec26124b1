"""The edge's HTTP application: HLS playlists and segments proxied from each stream's origin, cached.

``GET /hls/<slug>/index.m3u8`` and ``GET /hls/<slug>/<segment>.ts`` mirror the origin's routes.  The
stream's origin comes from the discovery registry (remembered ≤ 1 s); responses are kept in a byte-bounded
LRU (playlists for half a target duration, segments for good); concurrent misses for one object share one
upstream fetch.  Every response says ``X-Cache: HIT | MISS | COALESCED`` and carries a ``Via`` entry.

LL-HLS (``ll.m3u8``, ``init.mp4``, ``seg-*.m4s``, ``part-*.m4s``): the delivery directives ``_HLS_msn``,
``_HLS_part`` and ``_HLS_skip`` of a playlist request are passed upstream (other query parameters are
dropped, so that they cannot defeat coalescing) and are part of the cache key, so however many viewers
wait for the same (stream, msn, part, skip), one blocking request goes to the origin; the same holds for
a preload-hinted part, which the origin holds until it is complete.  Such held requests may take up to
:data:`HELD_DEADLINE`; their number is bounded per key and in total (503 with ``Retry-After`` beyond).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from streamit.discovery import StreamLocation, is_valid_slug
from streamit.edge.cache import ByteLruCache, CachedObject, fresh_until
from streamit.edge.locations import LocationCache, Resolver
from streamit.edge.singleflight import SingleFlight
from streamit.errors import InvalidInput, NotFound
from streamit.origin.parts import LL_PLAYLIST_NAME, PART_PATTERN, parse_playlist_query
from streamit.origin.routes import MEDIA_CORS
from streamit.origin.store import PLAYLIST_NAME

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# A playlist found by the HLS-folder watcher: "<name>/index.m3u8" (nested) or "<name>.m3u8" (flat).
FOLDER_PLAYLIST = re.compile(
    r"^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}/)?[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}\.m3u8$"
)
OBJECT_NAME = re.compile(r"^(?:index\.m3u8|ll\.m3u8|[A-Za-z0-9_-]{1,64}\.(?:ts|m4s|mp4|aac))$")
# Upstream headers replayed to viewers; hop-by-hop and length headers are recomputed (RFC 9110 §7.6.1).
REPLAYED_HEADERS = frozenset(
    {
        "content-type",
        "cache-control",
        "etag",
        "last-modified",
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    }
)
UPSTREAM_DEADLINE = 1.8
"""Seconds allowed to get an origin's response headers, re-resolution and one retry included."""
UPSTREAM_TIMEOUT = httpx.Timeout(connect=0.5, read=1.5, write=1.0, pool=0.5)
HELD_DEADLINE = 15.0
"""Seconds allowed for a request the origin holds (blocking playlist reload, preload-hinted part): an origin
answers within three target durations (RFC 8216bis §6.2.5.2), 6 s for the default 2 s segments."""
HELD_TIMEOUT = httpx.Timeout(connect=0.5, read=HELD_DEADLINE, write=1.0, pool=0.5)

CacheKey = tuple[str, datetime | None, str, str]
CacheStatus = Literal["HIT", "MISS", "COALESCED"]


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The upstream body exceeds what the edge buffers: every viewer's request is streamed through."""


class EdgeMetrics:
    """Prometheus counters of one edge, in their own registry."""

    def __init__(self, cache: ByteLruCache[CacheKey]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "streamit_edge_requests",
            "HLS requests answered, by cache outcome",
            ["cache"],
            registry=self.registry,
        )
        # Bound once: labels() on every hit costs more than the rest of answering it.
        self.hits = self.requests.labels("HIT")
        self.upstream_fetches = Counter(
            "streamit_edge_upstream_fetches",
            "Requests sent to origins, by object kind",
            ["kind"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "streamit_edge_upstream_errors",
            "Origin requests that failed, by reason",
            ["reason"],
            registry=self.registry,
        )
        cache_bytes = Gauge("streamit_edge_cache_bytes", "Bytes held in the cache", registry=self.registry)
        cache_bytes.set_function(lambda: cache.current_bytes)
        objects = Gauge("streamit_edge_cache_objects", "Objects held in the cache", registry=self.registry)
        objects.set_function(lambda: len(cache))


class EdgeProxy:
    """Answers HLS requests from the cache or the stream's origin; see the module docstring."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        client: httpx.AsyncClient,
        max_cache_bytes: int,
        max_object_bytes: int,
        clock: Callable[[], float],
        node: str,
        lookup_ttl: float = 1.0,
        negative_lookup_ttl: float = 0.25,
        max_held_per_key: int = 5_000,
        max_held: int = 20_000,
    ) -> None:
        self.client = client
        self.clock = clock
        self.via = f"1.1 {node}"
        self.max_object_bytes = max_object_bytes
        self.cache: ByteLruCache[CacheKey] = ByteLruCache(max_cache_bytes)
        self.locations = LocationCache(
            resolver, clock=clock, ttl=lookup_ttl, negative_ttl=negative_lookup_ttl
        )
        self.flights: SingleFlight[CacheKey, tuple[CachedObject | TooLarge, StreamLocation]] = SingleFlight()
        self.metrics = EdgeMetrics(self.cache)
        self.max_held_per_key = max_held_per_key
        self.max_held = max_held
        self.held = 0
        self._held_by_key: dict[CacheKey, int] = {}

    async def serve(self, slug: str, name: str, *, head: bool = False, query: bytes = b"") -> Response:
        """The response to ``GET`` (or ``HEAD``) ``/hls/<slug>/<name>?<query>``."""
        if not is_valid_slug(slug) or not OBJECT_NAME.match(name):
            return self._problem(404, "Not Found", "no such stream or object")
        held = PART_PATTERN.match(name) is not None
        if name == LL_PLAYLIST_NAME and query:
            try:
                directives = ll_directives(query)
            except InvalidInput as exc:
                return self._problem(400, "Bad Request", str(exc))
            if directives:
                name = f"{name}?{directives}"
                held = "_HLS_msn=" in directives
        try:
            location = await self.locations.lookup(slug)
        except OSError as exc:
            log.warning("registry lookup of %s failed: %s", slug, exc)
            return self._problem(503, "Service Unavailable", "the stream registry is unavailable")
        if location is None:
            return self._problem(404, "Not Found", "no such stream")
        key = cache_key(location, name)
        cached = self.cache.get(key, self.clock())
        if cached is not None:
            self.metrics.hits.inc()
            return self._replay(cached, "HIT", head=head)
        if not held:
            return await self._miss(location, key, name, head=head, deadline=UPSTREAM_DEADLINE)
        waiting = self._held_by_key.get(key, 0)
        if waiting >= self.max_held_per_key or self.held >= self.max_held:
            self.metrics.upstream_errors.labels("held_cap").inc()
            return self._problem(503, "Service Unavailable", "too many waiting requests", retry_after=1)
        self._held_by_key[key] = waiting + 1
        self.held += 1
        try:
            return await self._miss(location, key, name, head=head, deadline=HELD_DEADLINE)
        finally:
            self.held -= 1
            left = self._held_by_key[key] - 1
            if left:
                self._held_by_key[key] = left
            else:
                del self._held_by_key[key]

    def hit(self, slug: str, name: str, query: bytes = b"") -> CachedObject | None:
        """The fresh cached answer to ``GET /hls/<slug>/<name>?<query>``, found without waiting, or ``None``.

        Checks what :meth:`serve` checks, from memory only: a well-formed name, a stream located less than
        a lookup TTL ago, a fresh object under its key; a hit is counted as :meth:`serve` counts it.
        ``None`` (a miss, an unknown or stale location, a malformed request) means :meth:`serve` answers.
        """
        if not is_valid_slug(slug) or not OBJECT_NAME.match(name):
            return None
        if name == LL_PLAYLIST_NAME and query:
            try:
                directives = ll_directives(query)
            except InvalidInput:
                return None
            if directives:
                name = f"{name}?{directives}"
        location = self.locations.remembered(slug)
        if location is None:
            return None
        cached = self.cache.get(cache_key(location, name), self.clock())
        if cached is not None:
            self.metrics.hits.inc()
        return cached

    async def _miss(
        self, location: StreamLocation, key: CacheKey, name: str, *, head: bool, deadline: float
    ) -> Response:
        """Fetch a missing object, sharing the fetch with every concurrent request for ``key``."""
        slug = location.slug
        try:
            flight = await self.flights.run(key, lambda: self._fetch(location, name, deadline))
        except NotFound:
            return self._problem(404, "Not Found", "no such stream")
        except (TimeoutError, httpx.TimeoutException):
            self.metrics.upstream_errors.labels("timeout").inc()
            return self._problem(504, "Gateway Timeout", "the origin did not answer in time")
        except httpx.TransportError as exc:
            self.metrics.upstream_errors.labels("transport").inc()
            log.warning("origin of %s unreachable: %s", slug, exc)
            return self._problem(502, "Bad Gateway", "the origin is unreachable")
        except OSError as exc:
            # The origin failed and the registry could not be asked where the stream went.
            self.metrics.upstream_errors.labels("transport").inc()
            log.warning("origin of %s unreachable and registry unavailable: %s", slug, exc)
            return self._problem(502, "Bad Gateway", "the origin is unreachable")
        reply, served_by = flight.value
        status: CacheStatus = "COALESCED" if flight.coalesced else "MISS"
        if isinstance(reply, TooLarge):
            self.metrics.requests.labels("MISS").inc()
            return await self._stream_through(served_by, name, head=head)
        self.metrics.requests.labels(status).inc()
        return self._replay(reply, status, head=head)

    async def _fetch(
        self, location: StreamLocation, name: str, deadline: float = UPSTREAM_DEADLINE
    ) -> tuple[CachedObject | TooLarge, StreamLocation]:
        """One upstream fetch; on a transport failure, re-resolve and retry once at a new origin."""
        async with asyncio.timeout(deadline):
            try:
                response = await self._send(location, name, stream=True)
            except httpx.TransportError:
                self.locations.forget(location.slug)
                moved = await self.locations.refresh(location.slug)
                if moved is None:
                    raise NotFound(location.slug) from None
                if moved.origin_url == location.origin_url:
                    raise
                log.info("stream %s moved to %s; retrying there", location.slug, moved.origin_url)
                location = moved
                response = await self._send(location, name, stream=True)
        try:
            reply = await self._buffer(response, name)
        finally:
            await response.aclose()
        if isinstance(reply, CachedObject) and reply.status == 200 and reply.expires_at > reply.stored_at:
            self.cache.put(cache_key(location, name), reply)
        return reply, location

    async def _send(self, location: StreamLocation, name: str, *, stream: bool) -> httpx.Response:
        kind = object_kind(name)
        self.metrics.upstream_fetches.labels(kind).inc()
        held = "_HLS_msn=" in name or kind == "part"
        request = self.client.build_request(
            "GET",
            upstream_url(location, name),
            headers={"Accept-Encoding": "identity", "Via": self.via},
            timeout=HELD_TIMEOUT if held else UPSTREAM_TIMEOUT,
        )
        return await self.client.send(request, stream=stream)

    async def _buffer(self, response: httpx.Response, name: str) -> CachedObject | TooLarge:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_object_bytes:
            return TooLarge()
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_object_bytes:
                return TooLarge()
            chunks.append(chunk)
        body = b"".join(chunks)
        status = response.status_code
        if status == 503 and "retry-after" in response.headers:
            # The origin is shedding load or gave up holding a request: the viewer may retry.
            self.metrics.upstream_errors.labels("status").inc()
            return self._error(503, "Service Unavailable", "the origin asks to retry", retry_after=1)
        if status >= 500:
            self.metrics.upstream_errors.labels("status").inc()
            return self._error(502, "Bad Gateway", f"the origin answered {status}")
        now = self.clock()
        path, _, directives = name.partition("?")
        expires = fresh_until(path, status, body, now, blocking="_HLS_msn=" in directives)
        return CachedObject(
            status=status,
            headers=(
                *replayed_headers(response.headers),
                ("via", self._via_after(response.headers.get("via"))),
            ),
            body=body,
            stored_at=now,
            expires_at=now if expires is None else expires,
        )

    async def _stream_through(self, location: StreamLocation, name: str, *, head: bool) -> Response:
        """Relay a body too large to buffer chunk by chunk, with its own upstream request."""
        try:
            upstream = await self._send(location, name, stream=True)
        except httpx.TimeoutException:
            self.metrics.upstream_errors.labels("timeout").inc()
            return self._problem(504, "Gateway Timeout", "the origin did not answer in time")
        except httpx.TransportError:
            self.metrics.upstream_errors.labels("transport").inc()
            return self._problem(502, "Bad Gateway", "the origin is unreachable")
        headers = dict(replayed_headers(upstream.headers))
        if "content-length" in upstream.headers:
            headers["content-length"] = upstream.headers["content-length"]
        headers["via"] = self._via_after(upstream.headers.get("via"))
        headers["x-cache"] = "MISS"
        if head:
            await upstream.aclose()
            return Response(status_code=upstream.status_code, headers=headers)
        return StreamingResponse(
            relay(upstream),
            status_code=upstream.status_code,
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )

    def _replay(self, obj: CachedObject, status: CacheStatus, *, head: bool) -> Response:
        raw = [*obj.raw_headers, (b"x-cache", status.encode())]
        if status == "HIT":
            raw.append((b"age", str(obj.age(self.clock())).encode()))
        return Replay(obj.status, b"" if head else obj.body, raw)

    def _via_after(self, upstream_via: str | None) -> str:
        # RFC 9110 §7.6.3: each intermediary appends its own entry to Via.
        return f"{upstream_via}, {self.via}" if upstream_via else self.via

    def _error(self, status: int, title: str, detail: str, *, retry_after: int | None = None) -> CachedObject:
        """A problem+json response of the edge's own (RFC 9457), never cached."""
        body = json.dumps({"title": title, "status": status, "detail": detail}).encode()
        headers: tuple[tuple[str, str], ...] = (
            ("content-type", "application/problem+json"),
            ("cache-control", "no-cache"),
            *MEDIA_CORS.items(),
            ("via", self.via),
        )
        if retry_after is not None:
            headers += (("retry-after", str(retry_after)),)
        now = self.clock()
        return CachedObject(status=status, headers=headers, body=body, stored_at=now, expires_at=now)

    def _problem(self, status: int, title: str, detail: str, *, retry_after: int | None = None) -> Response:
        return self._replay(self._error(status, title, detail, retry_after=retry_after), "MISS", head=False)


class Replay(Response):
    """A response whose headers are already encoded: serving a cache hit re-encodes nothing."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


async def relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; the upstream connection is released even if the viewer leaves."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


class HlsRoutes:
    """ASGI middleware answering ``GET``/``HEAD /hls/<slug>/<name>`` with the proxy; the rest goes on."""

    def __init__(self, app: ASGIApp, proxy: EdgeProxy) -> None:
        self.app = app
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith("/hls/") and path.count("/") == 3:
                slug, _, name = path[5:].partition("/")
                response = await self.proxy.serve(
                    slug, name, head=scope["method"] == "HEAD", query=scope.get("query_string", b"")
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def ll_directives(query: bytes) -> str:
    """The LL-HLS delivery directives of a playlist query, in canonical form (``""`` when none).

    Canonical: fixed order, only ``_HLS_msn``, ``_HLS_part`` and ``_HLS_skip`` — viewers asking the same
    thing share one cache key.  :class:`InvalidInput` for malformed directives (the origin would refuse them).
    """
    params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    request = parse_playlist_query(params)
    parts = []
    if request.msn is not None:
        parts.append(f"_HLS_msn={request.msn}")
    if request.part is not None:
        parts.append(f"_HLS_part={request.part}")
    if request.skip:
        parts.append("_HLS_skip=YES")
    return "&".join(parts)


def object_kind(name: str) -> str:
    """How upstream fetches are counted: playlist, ll_playlist, part or segment."""
    path = name.partition("?")[0]
    if path == PLAYLIST_NAME:
        return "playlist"
    if path == LL_PLAYLIST_NAME:
        return "ll_playlist"
    if PART_PATTERN.match(path):
        return "part"
    return "segment"


def cache_key(location: StreamLocation, name: str) -> CacheKey:
    """Objects are cached per broadcast: a new origin or a restarted stream reuses segment names."""
    return (location.origin_url, location.started_at, location.slug, name)


def upstream_url(location: StreamLocation, name: str) -> str:
    """The origin's URL of the same object.

    A Streamit origin serves ``<origin_url>/hls/<slug>/<name>``.  A stream registered by the HLS-folder
    watcher carries its playlist's path under ``origin_url`` in ``metadata["playlist"]``; its segments are
    named relative to that playlist (RFC 8216 §4.1: relative URIs resolve against the playlist's URI).
    """
    base = location.origin_url.rstrip("/")
    playlist = location.metadata.get("playlist")
    if playlist is None or not FOLDER_PLAYLIST.match(playlist):
        return f"{base}/hls/{location.slug}/{name}"
    if name == PLAYLIST_NAME:
        return f"{base}/{playlist}"
    directory, _, _ = playlist.rpartition("/")
    return f"{base}/{directory}/{name}" if directory else f"{base}/{name}"


def replayed_headers(headers: httpx.Headers) -> tuple[tuple[str, str], ...]:
    """The upstream headers worth passing to viewers, lower-cased."""
    return tuple((name, value) for name, value in headers.items() if name in REPLAYED_HEADERS)


def upstream_client() -> httpx.AsyncClient:
    """The pooled client an edge fetches from origins with (the caller closes it)."""
    return httpx.AsyncClient(
        timeout=UPSTREAM_TIMEOUT,
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30),
    )


def create_edge_proxy(
    resolver: Resolver,
    *,
    client: httpx.AsyncClient,
    max_cache_bytes: int = 256 * MiB,
    max_object_bytes: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    node: str = "streamit-edge",
) -> EdgeProxy:
    """An :class:`EdgeProxy` with the edge's defaults; ``max_object_bytes`` as in :func:`create_edge_app`."""
    return EdgeProxy(
        resolver,
        client=client,
        max_cache_bytes=max_cache_bytes,
        max_object_bytes=max_object_bytes or min(max(max_cache_bytes // 8, 1), 64 * MiB),
        clock=clock,
        node=node,
    )


def create_edge_app(
    resolver: Resolver,
    *,
    max_cache_bytes: int = 256 * MiB,
    max_object_bytes: int | None = None,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
    node: str = "streamit-edge",
) -> FastAPI:
    """The edge application: HLS routes proxied through the cache, ``/healthz`` and ``/metrics``.

    ``max_object_bytes`` (default: an eighth of the cache, at most 64 MiB) bounds what one response may
    buffer; larger bodies are streamed through uncached.  Without ``client``, the app owns a pooled
    :class:`httpx.AsyncClient` and closes it at shutdown.  The proxy is ``app.state.edge``.
    """
    owned = client is None
    upstream = client or upstream_client()
    proxy = create_edge_proxy(
        resolver,
        client=upstream,
        max_cache_bytes=max_cache_bytes,
        max_object_bytes=max_object_bytes,
        clock=clock,
        node=node,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await upstream.aclose()

    app = FastAPI(title="Streamit edge", lifespan=lifespan, openapi_url=None)
    app.state.edge = proxy

    # HLS requests bypass FastAPI's routing: its per-request machinery costs several times a cache hit.
    app.add_middleware(HlsRoutes, proxy=proxy)

    @app.options("/hls/{slug}/{name}", include_in_schema=False)
    async def hls_preflight(slug: str, name: str) -> Response:
        return Response(status_code=204, headers=MEDIA_CORS)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(proxy.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
