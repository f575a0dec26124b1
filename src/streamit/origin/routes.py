"""HTTP routes of the origin: ``/hls/<slug>/index.m3u8`` and ``/hls/<slug>/<segment>.ts`` (MPEG-TS), and
beside them the LL-HLS objects ``ll.m3u8``, ``init.mp4``, ``seg-*.m4s`` and ``part-*.m4s`` (fMP4/CMAF)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter

from streamit.errors import InvalidInput, NotFound
from streamit.origin.parts import (
    LL_OBJECT_PATTERN,
    LL_PLAYLIST_NAME,
    LiveLlHls,
    LlHlsStoreRegistry,
    PlaylistRequest,
    WaitOutcome,
    parse_playlist_query,
)
from streamit.origin.store import PLAYLIST_NAME, SLUG_PATTERN, SegmentStoreRegistry

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
# CORS only on media routes: players on other origins fetch them; the API and pages stay same-origin.
MEDIA_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Max-Age": "86400",
}
SEGMENT_CACHE = "public, max-age=31536000, immutable"
FMP4_TYPE = "video/mp4"
# A playlist without directives must be fetched afresh: the player takes the live edge from it.
LL_PLAYLIST_CACHE = "no-cache"


@dataclass(frozen=True, slots=True)
class FastResponse:
    """A 200 answer produced without the ASGI machinery: its header lines (each ending in CRLF, without
    ``content-length``) and its body."""

    headers: bytes
    body: bytes


def _header_block(media_type: str, cache_control: str) -> bytes:
    lines = [f"content-type: {media_type}", f"cache-control: {cache_control}"]
    lines += [f"{name.lower()}: {value}" for name, value in MEDIA_CORS.items()]
    return "".join(f"{line}\r\n" for line in lines).encode("latin-1")


class HlsResponder:
    """What the origin answers for ``/hls/<slug>/<name>``: shared by the ASGI route and the HTTP server's
    fast path.

    :meth:`fast` answers the requests that need neither waiting nor the framework — a TS playlist or
    segment, an LL-HLS playlist without delivery directives, an LL-HLS object that exists — straight from the
    stores, so a player's polling costs the origin one dictionary lookup and one write.  Everything else
    (404s, blocking requests, odd URLs) goes through the ASGI route, which gives the same answers the slow
    way.  Both count ``streamit_hls_requests_total{kind, outcome}``.
    """

    def __init__(
        self,
        stores: SegmentStoreRegistry,
        *,
        segment_duration: float,
        metrics: CollectorRegistry | None = None,
        ll_stores: LlHlsStoreRegistry | None = None,
    ) -> None:
        self.stores = stores
        self.ll_stores = ll_stores
        self.playlist_cache = f"public, max-age={max(1, int(segment_duration / 2))}"
        self.blocking_cache = f"public, max-age={max(1, int(segment_duration))}"
        requests = Counter(
            "streamit_hls_requests",
            "HLS requests this origin answered, by object kind and outcome",
            ["kind", "outcome"],
            registry=metrics if metrics is not None else CollectorRegistry(),
        )
        self.playlists_served = requests.labels("playlist", "served")
        self.playlists_missing = requests.labels("playlist", "not_found")
        self.segments_served = requests.labels("segment", "served")
        self.segments_missing = requests.labels("segment", "not_found")
        self.ll_playlists = requests.labels("ll_playlist", "served")
        self.ll_playlists_missing = requests.labels("ll_playlist", "not_found")
        self.ll_playlists_refused = requests.labels("ll_playlist", "refused")
        self.ll_objects = requests.labels("ll_object", "served")
        self.ll_objects_missing = requests.labels("ll_object", "not_found")
        self.ll_objects_refused = requests.labels("ll_object", "refused")
        self._playlist_headers = _header_block(PLAYLIST_TYPE, self.playlist_cache)
        self._segment_headers = _header_block(SEGMENT_TYPE, SEGMENT_CACHE)
        self._ll_playlist_headers = _header_block(PLAYLIST_TYPE, LL_PLAYLIST_CACHE)
        self._ll_object_headers = _header_block(FMP4_TYPE, SEGMENT_CACHE)

    def live_ll(self, slug: str) -> LiveLlHls | None:
        """The LL-HLS state of ``slug`` when this origin packages it."""
        if self.ll_stores is None or not SLUG_PATTERN.match(slug):
            return None
        return self.ll_stores.get(slug)

    def fast(self, target: bytes) -> FastResponse | None:
        """The answer to ``GET``/``HEAD`` of the request target ``target`` (path and query, as sent) when it
        is a plain 200 that needs no waiting; ``None`` hands the request to the ASGI route."""
        path, _, query = target.partition(b"?")
        # Percent-encoded or extra segments are rare and need the route's decoding: not here.
        if not path.startswith(b"/hls/") or b"%" in path:
            return None
        slug_raw, slash, name_raw = path[5:].partition(b"/")
        if not slash or b"/" in name_raw:
            return None
        try:
            slug = slug_raw.decode("ascii")
            name = name_raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        if name == PLAYLIST_NAME:
            try:
                body = self.stores.playlist(slug)
            except NotFound:
                return None
            self.playlists_served.inc()
            return FastResponse(self._playlist_headers, body)
        if name == LL_PLAYLIST_NAME:
            live = self.live_ll(slug)
            if query or live is None:
                return None
            try:
                text = live.playlist()
            except NotFound:
                return None
            self.ll_playlists.inc()
            return FastResponse(self._ll_playlist_headers, text.encode())
        if LL_OBJECT_PATTERN.match(name):
            live = self.live_ll(slug)
            if live is None:
                return None
            try:
                body = live.object(name)
            except NotFound:
                # Perhaps the part the preload hint names: the route holds the request until it exists.
                return None
            self.ll_objects.inc()
            return FastResponse(self._ll_object_headers, body)
        try:
            body = self.stores.segment(slug, name)
        except NotFound:
            return None
        self.segments_served.inc()
        return FastResponse(self._segment_headers, body)


def create_origin_router(
    stores: SegmentStoreRegistry,
    *,
    segment_duration: float,
    metrics: CollectorRegistry | None = None,
    ll_stores: LlHlsStoreRegistry | None = None,
    responder: HlsResponder | None = None,
) -> APIRouter:
    """Routes serving playlists and segments from ``stores``, and LL-HLS from ``ll_stores`` when given.

    Playlists may be cached for half a target duration (a player reloads about once per target
    duration, RFC 8216 §6.3.4); segment names are never reused, so segments are immutable.  Requests are
    counted in ``metrics`` as ``streamit_hls_requests_total{kind, outcome}`` — how an operator sees that edges
    shield the origin from viewers.  ``responder`` (built from the other arguments when not given) is shared
    with the HTTP server's fast path, so both count into the same metrics.

    ``ll.m3u8`` honours the delivery directives of RFC 8216bis §6.2.5: ``_HLS_msn``/``_HLS_part`` hold the
    request until that segment or part exists (400 when it is more than two segments ahead, 503 with
    ``Retry-After`` after three target durations or when the stream has too many waiting requests);
    ``_HLS_skip=YES`` answers a delta update.  A blocking answer may be cached for a target duration (it
    stays a right answer to the same question); one without directives may not.  A request for the part the
    preload hint names is held until the part is complete.
    """
    if responder is None:
        responder = HlsResponder(
            stores, segment_duration=segment_duration, metrics=metrics, ll_stores=ll_stores
        )
    router = APIRouter(tags=["hls"])
    playlist_cache = responder.playlist_cache
    playlists_served = responder.playlists_served
    playlists_missing = responder.playlists_missing
    segments_served = responder.segments_served
    segments_missing = responder.segments_missing
    ll_playlists = responder.ll_playlists
    ll_playlists_missing = responder.ll_playlists_missing
    ll_playlists_refused = responder.ll_playlists_refused
    ll_objects = responder.ll_objects
    ll_objects_missing = responder.ll_objects_missing
    ll_objects_refused = responder.ll_objects_refused
    blocking_cache = responder.blocking_cache
    live_ll = responder.live_ll

    def not_found(what: str) -> Response:
        return Response(
            content=f'{{"title":"Not Found","status":404,"detail":"no such {what}"}}',
            status_code=404,
            media_type="application/json",
            headers={**MEDIA_CORS, "Cache-Control": "no-cache"},
        )

    def problem(status: int, title: str, detail: str, *, retry_after: int | None = None) -> Response:
        headers = {**MEDIA_CORS, "Cache-Control": "no-cache"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return Response(
            content=json.dumps({"title": title, "status": status, "detail": detail}),
            status_code=status,
            media_type="application/problem+json",
            headers=headers,
        )

    def refused(outcome: WaitOutcome) -> Response:
        if outcome is WaitOutcome.TOO_FAR:
            return problem(400, "Bad Request", "_HLS_msn is more than two segments ahead of the playlist")
        if outcome is WaitOutcome.BUSY:
            return problem(503, "Service Unavailable", "too many requests wait on this stream", retry_after=1)
        return problem(503, "Service Unavailable", "the part was not produced in time", retry_after=1)

    async def ll_playlist(slug: str, request: Request) -> Response:
        try:
            directives = parse_playlist_query(request.query_params.multi_items())
        except InvalidInput as exc:
            ll_playlists_refused.inc()
            return problem(400, "Bad Request", str(exc))
        live = live_ll(slug)
        if live is None:
            ll_playlists_missing.inc()
            return not_found("stream")
        outcome = await live.wait_for_playlist(directives)
        if outcome is not WaitOutcome.READY:
            ll_playlists_refused.inc()
            return refused(outcome)
        return serve_ll_playlist(live, directives)

    def serve_ll_playlist(live: LiveLlHls, directives: PlaylistRequest) -> Response:
        try:
            body = live.playlist(skip=directives.skip)
        except NotFound:
            ll_playlists_missing.inc()
            return not_found("stream")
        ll_playlists.inc()
        cache = blocking_cache if directives.blocking else LL_PLAYLIST_CACHE
        return Response(
            content=body, media_type=PLAYLIST_TYPE, headers={**MEDIA_CORS, "Cache-Control": cache}
        )

    async def ll_object(slug: str, name: str) -> Response:
        live = live_ll(slug)
        if live is None:
            ll_objects_missing.inc()
            return not_found("segment")
        outcome = await live.wait_for_part(name)
        if outcome is not WaitOutcome.READY:
            ll_objects_refused.inc()
            return refused(outcome)
        try:
            body = live.object(name)
        except NotFound:
            ll_objects_missing.inc()
            return not_found("segment")
        ll_objects.inc()
        return Response(
            content=body, media_type=FMP4_TYPE, headers={**MEDIA_CORS, "Cache-Control": SEGMENT_CACHE}
        )

    @router.api_route("/hls/{slug}/{name}", methods=["GET", "HEAD"], summary="HLS playlist or segment")
    async def hls_object(slug: str, name: str, request: Request) -> Response:
        if name == LL_PLAYLIST_NAME:
            return await ll_playlist(slug, request)
        if LL_OBJECT_PATTERN.match(name):
            return await ll_object(slug, name)
        if name == PLAYLIST_NAME:
            try:
                body = responder.stores.playlist(slug)
            except NotFound:
                playlists_missing.inc()
                return not_found("stream")
            playlists_served.inc()
            return Response(
                content=body,
                media_type=PLAYLIST_TYPE,
                headers={**MEDIA_CORS, "Cache-Control": playlist_cache},
            )
        try:
            body = responder.stores.segment(slug, name)
        except NotFound:
            segments_missing.inc()
            return not_found("segment")
        segments_served.inc()
        return Response(
            content=body, media_type=SEGMENT_TYPE, headers={**MEDIA_CORS, "Cache-Control": SEGMENT_CACHE}
        )

    @router.options("/hls/{slug}/{name}", include_in_schema=False)
    async def hls_preflight(slug: str, name: str) -> Response:
        return Response(status_code=204, headers=MEDIA_CORS)

    return router
