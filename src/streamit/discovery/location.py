"""Where a live stream is served from: :class:`StreamLocation` and its validation rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from urllib.parse import urlsplit

from streamit.errors import InvalidInput

_SLUG = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}")
"""URL path-safe names (RFC 3986 §2.3 unreserved characters), as Streamit slugs and nginx-rtmp names are."""

_NODE = re.compile(r"[\x21-\x7e]{1,128}")
MAX_METADATA_ITEMS = 64
MAX_METADATA_TEXT = 1024


def is_valid_slug(slug: str) -> bool:
    """Whether ``slug`` can name a registry entry: 1-128 unreserved URL characters, no leading dot."""
    return _SLUG.fullmatch(slug) is not None


def normalize_origin_url(url: str) -> str:
    """The base URL of an origin's HTTP server without a trailing slash.

    Raises :class:`InvalidInput` unless ``url`` is an absolute ``http``/``https`` URL with a host and no
    credentials, query or fragment: edges build request URLs from it, so nothing else may hide in it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"origin URL {url!r} is not a URL: {exc}") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(f"origin URL {url!r} must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"origin URL {url!r} must not carry credentials")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidInput(f"origin URL {url!r} must not have a query or fragment")
    if port == 0:
        raise InvalidInput(f"origin URL {url!r} has port 0")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise InvalidInput(f"origin URL {url!r} contains whitespace or control characters")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class StreamLocation:
    """A live stream and the origin that serves it.

    ``origin_url`` is the base URL of the origin's HTTP server (normalised without a trailing slash),
    ``node`` names the origin process that registered it, ``metadata`` carries strings such as
    ``video_codec``, ``audio_codec``, ``bitrate_kbps`` and ``viewers``.  A naive ``started_at`` is taken to
    be UTC.  Invalid values raise :class:`~streamit.errors.InvalidInput`.
    """

    slug: str
    origin_url: str
    node: str
    started_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.slug, str) or not is_valid_slug(self.slug):
            raise InvalidInput(f"stream name {self.slug!r} is not a valid registry slug")
        if not isinstance(self.origin_url, str):
            raise InvalidInput("origin URL must be a string")
        object.__setattr__(self, "origin_url", normalize_origin_url(self.origin_url))
        if not isinstance(self.node, str) or _NODE.fullmatch(self.node) is None:
            raise InvalidInput(f"node name {self.node!r} must be 1-128 printable ASCII characters")
        if self.started_at is not None:
            if not isinstance(self.started_at, datetime):
                raise InvalidInput("started_at must be a datetime")
            if self.started_at.tzinfo is None:
                object.__setattr__(self, "started_at", self.started_at.replace(tzinfo=UTC))
        if not isinstance(self.metadata, Mapping):
            raise InvalidInput("metadata must be a mapping of strings")
        items = dict(self.metadata)
        if len(items) > MAX_METADATA_ITEMS:
            raise InvalidInput(f"metadata has more than {MAX_METADATA_ITEMS} items")
        for key, value in items.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidInput("metadata keys and values must be strings")
            if not key or len(key) > MAX_METADATA_TEXT or len(value) > MAX_METADATA_TEXT:
                raise InvalidInput(f"metadata item {key!r} is empty or longer than {MAX_METADATA_TEXT}")
        object.__setattr__(self, "metadata", MappingProxyType(items))
