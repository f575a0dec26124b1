"""Public pages: the live directory (``/``) and the watch page (``/watch/{slug}``).

Both are rendered on the server (they work without JavaScript as far as HTML can) and then kept current by
their scripts, which poll the public API: ``static/js/directory.js`` and ``static/js/watch.js``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.web.templating import templates
from streamit.web.vendor import VendorAssets

PAGE_CACHE = "no-cache"
# Vendor files change only with package-lock.json; revalidation is cheap (Last-Modified / ETag).
VENDOR_CACHE = "public, max-age=3600"


def format_uptime(seconds: float) -> str:
    """``M:SS`` under an hour, else ``H:MM:SS`` (``static/js/format.js`` formats the same way)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_resolution(record: StreamRecord) -> str | None:
    """``640×360`` when the video size is known."""
    media = record.media
    if media.width is None or media.height is None:
        return None
    return f"{media.width}×{media.height}"


@dataclass(frozen=True)
class StreamCard:
    """One stream of the live directory as the template shows it."""

    slug: str
    title: str
    started_at: str | None
    uptime: str | None
    viewers: int
    resolution: str | None

    @classmethod
    def of(cls, record: StreamRecord, now: datetime) -> StreamCard:
        started = record.started_at
        return cls(
            slug=record.slug,
            title=record.title,
            started_at=None if started is None else started.isoformat(),
            uptime=None if started is None else format_uptime((now - started).total_seconds()),
            viewers=record.viewers,
            resolution=format_resolution(record),
        )


def hls_path(settings: Settings, slug: str) -> str:
    """Where the watch page's player fetches the playlist.

    Same-origin ``/hls/…`` unless ``playback_url`` names other hosts (the edges of a cluster): then that
    absolute URL, whose origin the CSP allows.
    """
    if settings.playback_url:
        return f"{settings.playback_url.rstrip('/')}/hls/{slug}/index.m3u8"
    return f"/hls/{slug}/index.m3u8"


def llhls_path(settings: Settings, slug: str) -> str:
    """Where the watch page's player fetches the LL-HLS playlist; ``""`` when LL-HLS packaging is off."""
    if not settings.hls_low_latency:
        return ""
    return hls_path(settings, slug).removesuffix("index.m3u8") + "ll.m3u8"


def render_error(request: Request, status_code: int, heading: str, message: str) -> HTMLResponse:
    """The HTML error page (``error.html``) with ``status_code``."""
    response = templates.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "heading": heading, "message": message},
        status_code=status_code,
    )
    response.headers["Cache-Control"] = PAGE_CACHE
    return response


def create_public_router(
    db: Database, settings: Settings, *, vendor: VendorAssets | None = None
) -> APIRouter:
    """Routes of ``/``, ``/watch/{slug}`` and ``/static/vendor/{name}`` (npm assets, see :mod:`.vendor`)."""
    router = APIRouter(include_in_schema=False)
    assets = vendor if vendor is not None else VendorAssets.locate(settings)

    @router.get("/", response_class=HTMLResponse)
    async def directory(request: Request) -> Response:
        now = datetime.now(UTC)
        records = await db.streams.list(StreamStatus.LIVE)
        response = templates.TemplateResponse(
            request, "directory.html", {"streams": [StreamCard.of(record, now) for record in records]}
        )
        response.headers["Cache-Control"] = PAGE_CACHE
        return response

    @router.get("/watch/{slug}", response_class=HTMLResponse)
    async def watch(request: Request, slug: str) -> Response:
        record = await db.streams.get(slug)
        if record is None:
            message = f"There is no stream called “{slug}”. It may have been removed."
            return render_error(request, 404, "Stream not found", message)
        now = datetime.now(UTC)
        response = templates.TemplateResponse(
            request,
            "watch.html",
            {
                "stream": record,
                "status": record.status.value,
                "card": StreamCard.of(record, now),
                "hls_url": hls_path(settings, record.slug),
                "llhls_url": llhls_path(settings, record.slug),
                "hls_available": assets.has_hls_js,
                "ended_at": None if record.ended_at is None else record.ended_at.isoformat(),
            },
        )
        response.headers["Cache-Control"] = PAGE_CACHE
        return response

    @router.get("/static/vendor/{name}")
    async def vendor_file(name: str) -> Response:
        found = assets.file(name)
        if found is None:
            return Response(
                f"{name}: unknown or not installed (run `npm ci` in the Streamit checkout)\n",
                status_code=404,
                media_type="text/plain",
            )
        path, content_type = found
        return FileResponse(path, media_type=content_type, headers={"Cache-Control": VENDOR_CACHE})

    return router
