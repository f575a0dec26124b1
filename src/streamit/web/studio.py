"""The studio: signed-in users create, edit and delete their streams, see keys, status and history.

Pages are rendered on the server and work as plain HTML forms; ``static/js/studio.js`` adds the key reveal
and copy buttons, live status without reloads and the preview player.  Security rules (cookie flags,
CSRF, ``next`` redirects, the guessing limiter) are in :mod:`streamit.web.auth`.

Non-admin users see and manage only the streams they own; for anybody else's stream the studio answers
404, so it does not even tell that the slug exists.  Admins see every stream, including those made by
the CLI or the API (which have no owner).
"""

# No "from __future__ import annotations": FastAPI must see the Annotated dependency aliases made inside
# create_studio_router as objects.
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from streamit.api.live_control import LiveControl
from streamit.config import Settings
from streamit.db import Database, SessionRecord, StreamRecord, StreamStatus, UserRecord, WebSessionRecord
from streamit.db.users import MAX_PASSWORD_LENGTH, SESSION_LIFETIME
from streamit.errors import InvalidInput, SlugTaken
from streamit.web.auth import (
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginLimiter,
    clear_login_csrf_cookie,
    clear_session_cookie,
    new_login_csrf_token,
    origin_allowed,
    safe_next,
    set_login_csrf_cookie,
    set_session_cookie,
    tokens_match,
)
from streamit.web.templating import templates

STUDIO = "/studio"
LOGIN = "/studio/login"
PAGE_CACHE = "no-store"
BAD_CREDENTIALS = "Wrong username or password."
TOO_MANY_ATTEMPTS = "Too many failed sign-ins. Wait a few minutes, then try again."
_MAX_DESCRIPTION_LENGTH = 5000


@dataclass(frozen=True)
class SignedIn:
    """The user behind a request and their web session."""

    user: UserRecord
    session: WebSessionRecord

    @property
    def csrf_token(self) -> str:
        """The token forms and fetches of this session must send back."""
        return self.session.csrf_token


@dataclass(frozen=True)
class HistoryRow:
    """One publish session as the history table shows it."""

    started_at: str
    ended_at: str | None
    duration: str
    end_reason: str
    remote_addr: str
    media: str
    avg_bitrate_kbps: int | None
    peak_bitrate_kbps: int | None

    @classmethod
    def of(cls, record: SessionRecord, now: datetime) -> "HistoryRow":
        """The row for ``record`` (an open session's duration counts up to ``now``)."""
        end = record.ended_at or now
        video = record.video_codec or "-"
        if record.width and record.height:
            video = f"{video} {record.width}×{record.height}"
        return cls(
            started_at=record.started_at.isoformat(timespec="seconds"),
            ended_at=None if record.ended_at is None else record.ended_at.isoformat(timespec="seconds"),
            duration=format_duration((end - record.started_at).total_seconds()),
            end_reason=record.end_reason or ("live" if record.ended_at is None else "-"),
            remote_addr=record.remote_addr,
            media=f"{video}, {record.audio_codec or '-'}",
            avg_bitrate_kbps=record.avg_bitrate_kbps,
            peak_bitrate_kbps=record.peak_bitrate_kbps,
        )

    def as_json(self) -> dict[str, Any]:
        """The row for ``studio.js`` (the same fields)."""
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "end_reason": self.end_reason,
            "remote_addr": self.remote_addr,
            "media": self.media,
            "avg_bitrate_kbps": self.avg_bitrate_kbps,
            "peak_bitrate_kbps": self.peak_bitrate_kbps,
        }


def format_duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 07 s`` or ``42 s``."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def preview_hls_url(settings: Settings, slug: str) -> str:
    """Where the preview player fetches the playlist: same-origin ``/hls/…`` unless ``playback_url``
    names other hosts (a cluster's edges), whose origin the pages' CSP then allows."""
    if settings.playback_url:
        return f"{settings.playback_url.rstrip('/')}/hls/{slug}/index.m3u8"
    return f"/hls/{slug}/index.m3u8"


def login_redirect(request: Request) -> str:
    """``/studio/login?next=<this page>``; after a POST just ``/studio/login`` (its URL is no page to
    come back to: a GET of it would be 405)."""
    if request.method not in {"GET", "HEAD"}:
        return LOGIN
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return f"{LOGIN}?next={quote(safe_next(target), safe='/')}"


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _no_store(response: Response) -> Response:
    # Studio pages carry CSRF tokens and (after reveal) keys: never keep them in a shared cache.
    response.headers["Cache-Control"] = PAGE_CACHE
    return response


def create_studio_router(
    db: Database,
    settings: Settings,
    *,
    live: LiveControl | None = None,
    limiter: LoginLimiter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> APIRouter:
    """Routes under ``/studio``; ``live`` kicks the publisher of a stream whose key is rotated or deleted.

    ``limiter`` counts failed sign-ins (default: 10 per 5 minutes per address and username), on the
    monotonic ``clock``.
    """
    router = APIRouter(prefix=STUDIO, include_in_schema=False)
    guard = limiter or LoginLimiter()

    def render(
        request: Request, template: str, context: Mapping[str, Any], *, status_code: int = 200
    ) -> HTMLResponse:
        response = templates.TemplateResponse(request, template, dict(context), status_code=status_code)
        _no_store(response)
        return response

    def error_page(
        request: Request, me: SignedIn | None, status_code: int, heading: str, message: str
    ) -> Response:
        return render(
            request,
            "studio/error.html",
            {"me": me, "status_code": status_code, "heading": heading, "message": message},
            status_code=status_code,
        )

    async def current(request: Request) -> SignedIn | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        found = await db.web_sessions.lookup(token)
        if found is None:
            return None
        session, user = found
        return SignedIn(user=user, session=session)

    async def page_user(request: Request) -> SignedIn:
        me = await current(request)
        if me is None:
            raise HTTPException(303, headers={"Location": login_redirect(request)})
        return me

    async def api_user(request: Request) -> SignedIn:
        me = await current(request)
        if me is None:
            raise HTTPException(401, "Sign in to the studio first.")
        return me

    PageUser = Annotated[SignedIn, Depends(page_user)]
    ApiUser = Annotated[SignedIn, Depends(api_user)]
    CsrfField = Annotated[str, Form()]

    def csrf_refusal(request: Request, me: SignedIn, given: str | None) -> Response | None:
        """A 403 page when the form's token or the request's origin is wrong, else ``None``."""
        if not origin_allowed(request, settings):
            return error_page(request, me, 403, "Request refused", "This request came from another site.")
        if not tokens_match(me.csrf_token, given):
            return error_page(
                request,
                me,
                403,
                "Request refused",
                "The form's security token is missing or out of date. Go back, reload the page and try "
                "again.",
            )
        return None

    def check_fetch(request: Request, me: SignedIn) -> None:
        if not origin_allowed(request, settings) or not tokens_match(
            me.csrf_token, request.headers.get(CSRF_HEADER)
        ):
            raise HTTPException(403, "Missing or wrong CSRF token, or a request from another site.")

    async def owned(me: SignedIn, slug: str) -> StreamRecord | None:
        record = await db.streams.get(slug)
        if record is None or not (me.user.is_admin or record.owner_id == me.user.id):
            return None
        return record

    def not_found(request: Request, me: SignedIn, slug: str) -> Response:
        return error_page(request, me, 404, "Stream not found", f"You have no stream called “{slug}”.")

    async def owned_or_404(me: SignedIn, slug: str) -> StreamRecord:
        record = await owned(me, slug)
        if record is None:
            raise HTTPException(404, f"You have no stream called {slug!r}.")
        return record

    async def kick(stream_id: str, reason: str) -> None:
        if live is not None:
            await live.disconnect(stream_id, reason)

    # ---- sign-in -------------------------------------------------------------------------------------

    def login_form(
        request: Request,
        *,
        next_path: str,
        username: str = "",
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        token = new_login_csrf_token()
        response = render(
            request,
            "studio/login.html",
            {"me": None, "next": next_path, "username": username, "error": error, "csrf_token": token},
            status_code=status_code,
        )
        set_login_csrf_cookie(response, token, request=request, settings=settings)
        return response

    @router.get("/login")
    async def login_page(
        request: Request, next_param: Annotated[str | None, Query(alias="next")] = None
    ) -> Response:
        """The sign-in form; a signed-in browser goes straight on to ``next``."""
        next_path = safe_next(next_param)
        if await current(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        return login_form(request, next_path=next_path)

    @router.post("/login")
    async def login(
        request: Request,
        username: Annotated[str, Form(max_length=200)] = "",
        password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH * 4)] = "",
        csrf_token: CsrfField = "",
        next_param: Annotated[str, Form(alias="next")] = "",
    ) -> Response:
        """Check the password; on success open a session and go to ``next`` (a local path only)."""
        next_path = safe_next(next_param)
        if not origin_allowed(request, settings) or not tokens_match(
            request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token
        ):
            return login_form(
                request,
                next_path=next_path,
                username=username,
                error="The sign-in form expired or came from another site. Please sign in again.",
                status_code=403,
            )
        key = (_client_address(request), username.strip().lower())
        wait = guard.retry_after(key, clock())
        if wait is not None:
            response = login_form(
                request, next_path=next_path, username=username, error=TOO_MANY_ATTEMPTS, status_code=429
            )
            response.headers["Retry-After"] = str(max(1, int(wait) + 1))
            return response
        user = await db.users.authenticate(username, password)
        if user is None:
            guard.record_failure(key, clock())
            return login_form(
                request, next_path=next_path, username=username, error=BAD_CREDENTIALS, status_code=401
            )
        guard.reset(key)
        # Sign-ins are rare and already slow (argon2): a good moment to drop sessions nobody can use.
        await db.web_sessions.purge_expired()
        _, token = await db.web_sessions.create(user.id)
        response = RedirectResponse(next_path, status_code=303)
        set_session_cookie(
            response, token, max_age=int(SESSION_LIFETIME.total_seconds()), request=request, settings=settings
        )
        clear_login_csrf_cookie(response, request=request, settings=settings)
        return _no_store(response)

    @router.post("/logout")
    async def logout(request: Request, me: PageUser, csrf_token: CsrfField = "") -> Response:
        """End this browser's session."""
        if (refusal := csrf_refusal(request, me, csrf_token)) is not None:
            return refusal
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await db.web_sessions.delete(token)
        response = RedirectResponse(LOGIN, status_code=303)
        clear_session_cookie(response, request=request, settings=settings)
        return _no_store(response)

    # ---- streams -------------------------------------------------------------------------------------

    @router.get("")
    async def index(request: Request, me: PageUser) -> Response:
        """The signed-in user's streams (an admin's: all of them) with their status."""
        records = await db.streams.list(owner_id=None if me.user.is_admin else me.user.id)
        owners = {user.id: user.username for user in await db.users.list()} if me.user.is_admin else {}
        return render(request, "studio/index.html", {"me": me, "streams": records, "owners": owners})

    def stream_form(
        request: Request,
        me: SignedIn,
        *,
        record: StreamRecord | None,
        values: Mapping[str, str],
        error: str | None = None,
        status_code: int = 200,
    ) -> Response:
        return render(
            request,
            "studio/stream_form.html",
            {"me": me, "stream": record, "values": values, "error": error},
            status_code=status_code,
        )

    @router.get("/new")
    async def new_stream_page(request: Request, me: PageUser) -> Response:
        """The form for a new stream."""
        return stream_form(request, me, record=None, values={"title": "", "slug": "", "description": ""})

    @router.post("/new")
    async def create_stream(
        request: Request,
        me: PageUser,
        title: Annotated[str, Form()] = "",
        slug: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
        csrf_token: CsrfField = "",
    ) -> Response:
        """Create a stream owned by the signed-in user and open its page."""
        if (refusal := csrf_refusal(request, me, csrf_token)) is not None:
            return refusal
        values = {"title": title, "slug": slug, "description": description}
        try:
            if len(description) > _MAX_DESCRIPTION_LENGTH:
                raise InvalidInput(f"description must be at most {_MAX_DESCRIPTION_LENGTH} characters")
            record, _ = await db.streams.create(
                title, slug=slug.strip() or None, description=description.strip(), owner_id=me.user.id
            )
        except (InvalidInput, SlugTaken) as exc:
            return stream_form(request, me, record=None, values=values, error=str(exc), status_code=422)
        return RedirectResponse(f"{STUDIO}/streams/{record.slug}", status_code=303)

    @router.get("/streams/{slug}")
    async def stream_page(request: Request, me: PageUser, slug: str) -> Response:
        """A stream: how to publish to it, its key (hidden), live status, preview and history."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        sessions = await db.sessions.list_for_stream(record.id)
        now = datetime.now(UTC)
        return render(
            request,
            "studio/stream.html",
            {
                "me": me,
                "stream": record,
                "rtmp_url": settings.resolved_rtmp_url,
                "hls_url": preview_hls_url(settings, record.slug),
                "watch_url": f"/watch/{record.slug}",
                "sessions": [HistoryRow.of(s, now) for s in sessions],
                "live": record.status is StreamStatus.LIVE,
                "rotated": request.query_params.get("rotated") == "1",
            },
        )

    @router.get("/streams/{slug}/edit")
    async def edit_stream_page(request: Request, me: PageUser, slug: str) -> Response:
        """The form to change a stream's title, slug and description."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        values = {"title": record.title, "slug": record.slug, "description": record.description}
        return stream_form(request, me, record=record, values=values)

    @router.post("/streams/{slug}/edit")
    async def edit_stream(
        request: Request,
        me: PageUser,
        slug: str,
        title: Annotated[str, Form()] = "",
        new_slug: Annotated[str, Form(alias="slug")] = "",
        description: Annotated[str, Form()] = "",
        csrf_token: CsrfField = "",
    ) -> Response:
        """Save the changes and go back to the stream's page (under its new slug if it changed)."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        if (refusal := csrf_refusal(request, me, csrf_token)) is not None:
            return refusal
        values = {"title": title, "slug": new_slug, "description": description}
        try:
            if len(description) > _MAX_DESCRIPTION_LENGTH:
                raise InvalidInput(f"description must be at most {_MAX_DESCRIPTION_LENGTH} characters")
            updated = await db.streams.update(
                slug,
                title=title,
                description=description.strip(),
                new_slug=new_slug.strip() or None,
            )
        except (InvalidInput, SlugTaken) as exc:
            return stream_form(request, me, record=record, values=values, error=str(exc), status_code=422)
        return RedirectResponse(f"{STUDIO}/streams/{updated.slug}", status_code=303)

    @router.get("/streams/{slug}/delete")
    async def delete_stream_page(request: Request, me: PageUser, slug: str) -> Response:
        """Ask for confirmation before deleting."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        return render(request, "studio/delete.html", {"me": me, "stream": record})

    @router.post("/streams/{slug}/delete")
    async def delete_stream(
        request: Request, me: PageUser, slug: str, csrf_token: CsrfField = ""
    ) -> Response:
        """Delete the stream and its history; a live publisher is disconnected."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        if (refusal := csrf_refusal(request, me, csrf_token)) is not None:
            return refusal
        await kick(record.id, "stream deleted")
        await db.streams.delete(slug)
        return RedirectResponse(STUDIO, status_code=303)

    @router.post("/streams/{slug}/rotate-key")
    async def rotate_key(request: Request, me: PageUser, slug: str, csrf_token: CsrfField = "") -> Response:
        """Give the stream a new key: the old one stops working and its publisher is disconnected."""
        record = await owned(me, slug)
        if record is None:
            return not_found(request, me, slug)
        if (refusal := csrf_refusal(request, me, csrf_token)) is not None:
            return refusal
        await db.streams.rotate_key(slug)
        await kick(record.id, "stream key rotated")
        return RedirectResponse(f"{STUDIO}/streams/{slug}?rotated=1", status_code=303)

    @router.post("/streams/{slug}/key")
    async def reveal_key(request: Request, me: ApiUser, slug: str) -> Response:
        """The stream key and full publish URL, for the Reveal button (needs ``X-CSRF-Token``)."""
        check_fetch(request, me)
        record = await owned_or_404(me, slug)
        key = await db.streams.reveal_key(record.slug)
        if key is None:
            raise HTTPException(
                409, "This key was stored before keys could be shown again. Rotate the key to get a new one."
            )
        server = settings.resolved_rtmp_url
        body = {"stream_key": key, "server": server, "publish_url": f"{server}/{key}"}
        return _no_store(JSONResponse(body))

    @router.get("/streams/{slug}/sessions")
    async def session_history(me: ApiUser, slug: str) -> Response:
        """The stream's publish sessions, newest first, as the history table shows them."""
        record = await owned_or_404(me, slug)
        now = datetime.now(UTC)
        rows = [HistoryRow.of(s, now).as_json() for s in await db.sessions.list_for_stream(record.id)]
        return _no_store(JSONResponse({"sessions": rows}))

    return router
