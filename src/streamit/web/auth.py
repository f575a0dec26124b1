"""Studio sign-in plumbing: the session cookie, CSRF checks, safe redirects and the guessing limiter.

Cookie. ``streamit_session`` holds a random token whose SHA-256 names a row of ``web_sessions``. It is
``HttpOnly`` (scripts never see it), ``SameSite=Lax`` (not sent on cross-site POSTs) and ``Path=/``.
It is ``Secure`` whenever the request came over HTTPS or ``public_url`` is ``https://`` (a TLS proxy in
front): then browsers never send it in clear.  On a plain ``http://localhost`` set-up it cannot be
``Secure`` — browsers would drop it and nobody could sign in — and there is no TLS to protect it anyway.

CSRF. Every state-changing request must carry the session's CSRF token, as the form field ``csrf_token``
or the ``X-CSRF-Token`` header of a ``fetch``; it is compared in constant time.  Independently, a POST
whose ``Origin`` header names another site is refused (browsers send ``Origin`` on every cross-origin
POST, so this stops forged requests even if a token leaked).

Sign-in form. There is no session yet, so it uses a double-submit token: the form page sets a random
``streamit_login_csrf`` cookie (``SameSite=Strict``, ``HttpOnly``, ten minutes) and puts the same value in
a hidden field; the POST must bring both, equal.  Another site can neither read nor set that cookie, so
it cannot sign a victim into the attacker's account (login CSRF).  The ``Origin`` check applies as well.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from streamit.config import Settings

SESSION_COOKIE = "streamit_session"
LOGIN_CSRF_COOKIE = "streamit_login_csrf"
LOGIN_CSRF_MAX_AGE = 600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
DEFAULT_NEXT = "/studio"
_MAX_NEXT_LENGTH = 2000


def cookie_secure(request: Request, settings: Settings) -> bool:
    """Whether cookies must be ``Secure``: the request is HTTPS, or the public URL is."""
    if request.url.scheme == "https":
        return True
    return (settings.public_url or "").lower().startswith("https://")


def set_session_cookie(
    response: Response, token: str, *, max_age: int, request: Request, settings: Settings
) -> None:
    """Give the browser its session cookie (see the module docstring for the flags)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request, settings),
    )


def clear_session_cookie(response: Response, *, request: Request, settings: Settings) -> None:
    """Make the browser forget its session cookie (sign-out, or a cookie naming no live session)."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request, settings)
    )


def new_login_csrf_token() -> str:
    """A fresh random value for the sign-in form's double-submit check."""
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, token: str, *, request: Request, settings: Settings) -> None:
    """Store the sign-in form's CSRF value in its short-lived cookie."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE,
        path="/studio/login",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, settings),
    )


def clear_login_csrf_cookie(response: Response, *, request: Request, settings: Settings) -> None:
    """Drop the sign-in form's CSRF cookie once it has served."""
    response.delete_cookie(
        LOGIN_CSRF_COOKIE,
        path="/studio/login",
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request, settings),
    )


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time equality of two CSRF tokens; ``False`` when either is missing or empty."""
    if not expected or not given:
        return False
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default_port = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None or port == default_port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(request: Request, settings: Settings) -> bool:
    """``False`` when the request has an ``Origin`` header naming another site than this one.

    "This site" is the origin the request was addressed to (scheme + ``Host``) or that of ``public_url``
    (behind a TLS proxy the two differ).  Without an ``Origin`` header the CSRF token alone decides.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    given = _origin_of(origin.strip())
    if given is None:  # "null" (sandboxed frames, privacy redirects) or garbage
        return False
    allowed = {_origin_of(str(request.base_url))}
    if settings.public_url:
        allowed.add(_origin_of(settings.public_url))
    return given in allowed


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """``value`` if it is a path on this site, else ``default`` — never a redirect to another host.

    Refused: absolute URLs, scheme-relative ``//host``, backslashes (browsers read ``/\\host`` as
    ``//host``), control characters and whitespace.
    """
    if not value or len(value) > _MAX_NEXT_LENGTH or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


@dataclass
class _Failures:
    times: deque[float]


class LoginLimiter:
    """Counts failed sign-ins per (client address, username); too many in ``window`` seconds → blocked.

    Memory is bounded: at most ``max_entries`` keys are tracked, the least recently failed dropped first.
    Time is passed in (``now``, seconds on a monotonic clock) so the limiter itself does no I/O.
    """

    def __init__(self, *, max_failures: int = 10, window: float = 300.0, max_entries: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self, key: tuple[str, str], now: float) -> _Failures | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        while entry.times and entry.times[0] <= now - self.window:
            entry.times.popleft()
        if not entry.times:
            del self._entries[key]
            return None
        return entry

    def retry_after(self, key: tuple[str, str], now: float) -> float | None:
        """Seconds until ``key`` may try again, or ``None`` if it may try now."""
        entry = self._prune(key, now)
        if entry is None or len(entry.times) < self.max_failures:
            return None
        return max(0.0, entry.times[0] + self.window - now)

    def record_failure(self, key: tuple[str, str], now: float) -> None:
        """Note a failed sign-in of ``key``."""
        entry = self._prune(key, now)
        if entry is None:
            entry = _Failures(deque(maxlen=self.max_failures))
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        entry.times.append(now)
        self._entries.move_to_end(key)

    def reset(self, key: tuple[str, str]) -> None:
        """Forget ``key``'s failures (after it signed in successfully)."""
        self._entries.pop(key, None)
