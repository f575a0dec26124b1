"""HTTP routes of the origin: ``/hls/<slug>/index.m3u8`` and ``/hls/<slug>/<segment>.ts``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, Counter

from streamit.errors import NotFound
from streamit.origin.store import PLAYLIST_NAME, SegmentStoreRegistry

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


def create_origin_router(
    stores: SegmentStoreRegistry, *, segment_duration: float, metrics: CollectorRegistry | None = None
) -> APIRouter:
    """Routes serving playlists and segments from ``stores``.

    Playlists may be cached for half a target duration (a player reloads about once per target
    duration, RFC 8216 §6.3.4); segment names are never reused, so segments are immutable.  Requests are
    counted in ``metrics`` as ``streamit_hls_requests_total{kind, outcome}`` — how an operator sees that edges
    shield the origin from viewers.
    """
    router = APIRouter(tags=["hls"])
    playlist_cache = f"public, max-age={max(1, int(segment_duration / 2))}"
    requests = Counter(
        "streamit_hls_requests",
        "HLS requests this origin answered, by object kind and outcome",
        ["kind", "outcome"],
        registry=metrics if metrics is not None else CollectorRegistry(),
    )
    playlists_served = requests.labels("playlist", "served")
    playlists_missing = requests.labels("playlist", "not_found")
    segments_served = requests.labels("segment", "served")
    segments_missing = requests.labels("segment", "not_found")

    def not_found(what: str) -> Response:
        return Response(
            content=f'{{"title":"Not Found","status":404,"detail":"no such {what}"}}',
            status_code=404,
            media_type="application/json",
            headers={**MEDIA_CORS, "Cache-Control": "no-cache"},
        )

    @router.api_route("/hls/{slug}/{name}", methods=["GET", "HEAD"], summary="HLS playlist or segment")
    async def hls_object(slug: str, name: str) -> Response:
        if name == PLAYLIST_NAME:
            try:
                body = stores.playlist(slug)
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
            body = stores.segment(slug, name)
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
