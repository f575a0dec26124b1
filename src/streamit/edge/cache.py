"""The edge's response cache: an LRU bounded in bytes, and how long each response stays fresh.

Pure: no clock, no I/O.  Callers pass ``now`` (any monotonic seconds) and the bytes they fetched.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

IMMUTABLE = math.inf
"""Expiry of an object that never changes (a segment: RFC 8216 §6.2.2 forbids reusing a URI's content)."""

MAX_PLAYLIST_LIFETIME = 30.0
"""Upper bound on a playlist's freshness, whatever target duration it announces."""

# RFC 8216 §4.3.3.1: EXT-X-TARGETDURATION:<s>, a decimal-integer number of seconds, on a line of its own.
TARGET_DURATION = re.compile(rb"^#EXT-X-TARGETDURATION:[ \t]*([0-9]{1,9})[ \t]*\r?$", re.MULTILINE)
# RFC 8216bis §4.4.3.7: EXT-X-PART-INF:PART-TARGET=<s>, a decimal-floating-point number of seconds.
PART_TARGET = re.compile(rb"^#EXT-X-PART-INF:(?:.*,)?PART-TARGET=([0-9]{1,6}(?:\.[0-9]{1,9})?)", re.MULTILINE)
PLAYLIST_SUFFIX = ".m3u8"
SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4", ".aac")


@dataclass(frozen=True, slots=True)
class CachedObject:
    """One upstream response kept by the edge: status, the headers worth replaying, and the whole body.

    ``raw_headers`` are ``headers`` plus ``content-length``, encoded once (as an ASGI server wants them),
    and ``header_block`` the same as HTTP/1.1 header lines (``name: value\r\n`` each), so that serving a
    hit encodes nothing.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires_at: float
    raw_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)
    header_block: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # RFC 9110 §5.5: field values are octets; latin-1 maps code points < 256 onto them one to one.
        encoded = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers
        )
        length = ((b"content-length", str(len(self.body)).encode()),)
        object.__setattr__(self, "raw_headers", encoded + length)
        block = b"".join(name + b": " + value + b"\r\n" for name, value in encoded + length)
        object.__setattr__(self, "header_block", block)

    @property
    def size(self) -> int:
        """Bytes this object counts against the cache's budget: body plus header names and values."""
        return len(self.body) + sum(len(name) + len(value) for name, value in self.headers)

    def is_fresh(self, now: float) -> bool:
        """Whether the object may still be served at ``now``."""
        return now < self.expires_at

    def age(self, now: float) -> int:
        """Whole seconds since the object was stored (the ``Age`` header, RFC 9111 §5.1)."""
        return max(0, int(now - self.stored_at))


def playlist_target_duration(body: bytes) -> int | None:
    """The EXT-X-TARGETDURATION of a media playlist, or ``None`` when it has none."""
    match = TARGET_DURATION.search(body)
    if match is None:
        return None
    return int(match.group(1))


def playlist_part_target(body: bytes) -> float | None:
    """The PART-TARGET of a Low-Latency HLS media playlist, or ``None`` when it has none."""
    match = PART_TARGET.search(body)
    if match is None:
        return None
    return float(match.group(1))


def fresh_until(path: str, status: int, body: bytes, now: float, *, blocking: bool = False) -> float | None:
    """Until when a response for ``path`` fetched at ``now`` may be served from cache; ``None``: never.

    * Errors and anything but ``200 OK`` are not cached: a segment missing now may exist a moment later,
      and a failing origin must be asked again.
    * A playlist is fresh for half its target duration: a player reloads about once per target duration
      (RFC 8216 §6.3.4), so at most half a segment of extra latency is added.  A playlist without a
      target duration is not a live media playlist we understand and is not cached.
    * A Low-Latency HLS playlist (it has EXT-X-PART-INF) changes with every part: without delivery
      directives it is fresh for half a part target, so that concurrent viewers share a fetch but the live
      edge moves on; the answer to a blocking request (``blocking``: ``_HLS_msn`` given, RFC 8216bis
      §6.2.5.2) stays a right answer to the same question and is fresh for a target duration.
    * A segment or part never changes once published (RFC 8216 §6.2.2), so it is immutable.
    """
    if status != 200:
        return None
    if path.endswith(PLAYLIST_SUFFIX):
        target = playlist_target_duration(body)
        if target is None or target <= 0:
            return None
        part_target = playlist_part_target(body)
        if part_target is not None and not blocking:
            return now + min(part_target / 2, MAX_PLAYLIST_LIFETIME)
        if part_target is not None:
            return now + min(target, MAX_PLAYLIST_LIFETIME)
        return now + min(target / 2, MAX_PLAYLIST_LIFETIME)
    if path.endswith(SEGMENT_SUFFIXES):
        return IMMUTABLE
    return None


class ByteLruCache(Generic[K]):
    """Least-recently-used objects, evicted so that their total :attr:`CachedObject.size` ≤ ``max_bytes``.

    An object larger than the whole budget is refused rather than emptying the cache for nothing.
    Expired objects are dropped when looked up.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self._objects: OrderedDict[K, CachedObject] = OrderedDict()
        self._bytes = 0
        self.evictions = 0

    @property
    def current_bytes(self) -> int:
        """Total size of the objects held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def keys_by_recency(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._objects)

    def get(self, key: K, now: float) -> CachedObject | None:
        """The fresh object stored under ``key`` (now the most recently used), or ``None``."""
        obj = self._objects.get(key)
        if obj is None:
            return None
        if not obj.is_fresh(now):
            self.pop(key)
            return None
        self._objects.move_to_end(key)
        return obj

    def put(self, key: K, obj: CachedObject) -> bool:
        """Store ``obj`` under ``key``, evicting least recently used objects; ``False`` if it cannot fit."""
        size = obj.size
        self.pop(key)
        if size > self.max_bytes:
            return False
        while self._bytes + size > self.max_bytes:
            _, evicted = self._objects.popitem(last=False)
            self._bytes -= evicted.size
            self.evictions += 1
        self._objects[key] = obj
        self._bytes += size
        return True

    def pop(self, key: K) -> CachedObject | None:
        """Remove and return the object under ``key`` if any."""
        obj = self._objects.pop(key, None)
        if obj is not None:
            self._bytes -= obj.size
        return obj

    def clear(self) -> None:
        """Drop everything."""
        self._objects.clear()
        self._bytes = 0
