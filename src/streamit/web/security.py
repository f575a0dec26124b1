"""Security headers of the web pages: a strict Content-Security-Policy without inline scripts or styles."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamit.config import Settings

# The API's own HTML (Swagger UI at /api/docs) has inline scripts and is not a page of ours.
UNGUARDED_PREFIX = "/api/"


def playback_origin(settings: Settings) -> str | None:
    """The origin HLS is fetched from when it is not the pages' own (``playback_url`` names the edges)."""
    if not settings.playback_url:
        return None
    parts = urlsplit(settings.playback_url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """The CSP of every page: scripts, styles and media only from this server (and the playback origin).

    hls.js feeds the video through Media Source Extensions (``media-src blob:``) and may run its transmuxer
    in a worker made from a blob (``worker-src blob:``).
    """
    media = "'self'"
    origin = playback_origin(settings)
    if origin is not None:
        media += f" {origin}"
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"media-src {media} blob:",
        "worker-src 'self' blob:",
        f"connect-src {media}",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    return "; ".join(directives)


class SecurityHeadersMiddleware:
    """Adds the CSP and companion headers to every HTML response outside ``/api/``.

    Plain ASGI (not ``BaseHTTPMiddleware``): HLS segments stream through untouched and unbuffered.
    """

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self.app = app
        self.page_headers: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", csp.encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"x-frame-options", b"DENY"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(UNGUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                present = {k.lower() for k, _ in headers}
                if content_type.startswith(b"text/html"):
                    headers += [(k, v) for k, v in self.page_headers if k not in present]
                elif static and b"x-content-type-options" not in present:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
