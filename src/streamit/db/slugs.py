"""Stream slugs: the public, URL-safe name of a stream (``/hls/<slug>/…``, ``/watch/<slug>``)."""

from __future__ import annotations

import re
import secrets
import unicodedata

from streamit.errors import InvalidSlug

MAX_SLUG_LENGTH = 64
SUFFIX_LENGTH = 6
_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# Leave room for "-" + suffix so a generated slug that collides can still be made unique.
_BASE_LENGTH = MAX_SLUG_LENGTH - SUFFIX_LENGTH - 1
_FALLBACK_BASE = "stream"

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_SLUG_RE = re.compile(SLUG_PATTERN)
_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9]+")

# Words that name routes or would read as one in a URL; a stream called "api" or "new" confuses people
# and tools even where the router could tell them apart.
RESERVED_SLUGS: frozenset[str] = frozenset(
    {
        "admin",
        "api",
        "assets",
        "dashboard",
        "docs",
        "edge",
        "favicon-ico",
        "healthz",
        "hls",
        "hooks",
        "index",
        "live",
        "login",
        "logout",
        "metrics",
        "new",
        "null",
        "origin",
        "readyz",
        "static",
        "streams",
        "studio",
        "undefined",
        "watch",
    }
)


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is a well-formed, non-reserved slug, else raise :class:`InvalidSlug`."""
    if not _SLUG_RE.fullmatch(slug):
        raise InvalidSlug(
            f"invalid slug {slug!r}: use 1-{MAX_SLUG_LENGTH} lowercase letters, digits and inner hyphens"
        )
    if slug in RESERVED_SLUGS:
        raise InvalidSlug(f"slug {slug!r} is reserved")
    return slug


def is_valid_slug(slug: str) -> bool:
    """Whether :func:`validate_slug` would accept ``slug``."""
    return bool(_SLUG_RE.fullmatch(slug)) and slug not in RESERVED_SLUGS


def slugify(title: str) -> str:
    """Derive a slug base from a title: ASCII-folded, lowercase, hyphen-separated, never empty.

    The result is well-formed but may be reserved or taken; callers add :func:`random_suffix` then.
    """
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    base = _NOT_SLUG_CHARS.sub("-", folded).strip("-")[:_BASE_LENGTH].rstrip("-")
    return base or _FALLBACK_BASE


def random_suffix() -> str:
    """A short random tail (``SUFFIX_LENGTH`` characters of ``[a-z0-9]``) to make a slug unique."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def with_suffix(base: str) -> str:
    """``base`` plus a hyphen and a random suffix, trimmed to stay within ``MAX_SLUG_LENGTH``."""
    trimmed = base[:_BASE_LENGTH].rstrip("-") or _FALLBACK_BASE
    return f"{trimmed}-{random_suffix()}"
