"""The signed wire form of a registry entry, shared by every node of a cluster.

An entry is canonical JSON (sorted keys, no spaces, ASCII only) authenticated with HMAC-SHA256 under the
cluster secret, so only nodes that know the secret can announce an origin and edges never follow an entry
that someone else wrote into the shared store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from streamit.discovery.location import StreamLocation
from streamit.errors import ConfigError, InvalidInput, MessageTooLarge, RemoteProtocolError

ENTRY_VERSION = 1
MAX_ENTRY_SIZE = 256 * 1024
_MAC_CONTEXT = b"streamit.discovery.entry.v1\x00"
"""Domain separation: a MAC made for a discovery entry is never valid for another use of the secret."""

_FIELDS = frozenset({"v", "slug", "origin_url", "node", "started_at", "metadata"})


def encode_entry(location: StreamLocation) -> bytes:
    """The canonical JSON bytes of ``location``: equal locations always give equal bytes."""
    document = {
        "v": ENTRY_VERSION,
        "slug": location.slug,
        "origin_url": location.origin_url,
        "node": location.node,
        "started_at": None if location.started_at is None else location.started_at.isoformat(),
        "metadata": dict(location.metadata),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode_entry(data: bytes) -> StreamLocation:
    """Parse canonical entry bytes (as made by :func:`encode_entry`) back into a location.

    Raises :class:`RemoteProtocolError` for anything else; the bytes come from the shared store.
    """
    if len(data) > MAX_ENTRY_SIZE:
        raise MessageTooLarge(f"registry entry of {len(data)} bytes exceeds {MAX_ENTRY_SIZE}")
    try:
        document: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"registry entry is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise RemoteProtocolError("registry entry does not have exactly the expected fields")
    if document["v"] != ENTRY_VERSION or isinstance(document["v"], bool):
        raise RemoteProtocolError(f"registry entry version {document['v']!r} is not {ENTRY_VERSION}")
    started_text = document["started_at"]
    started_at: datetime | None = None
    if started_text is not None:
        if not isinstance(started_text, str):
            raise RemoteProtocolError("registry entry started_at is not a string")
        try:
            started_at = datetime.fromisoformat(started_text)
        except ValueError as exc:
            raise RemoteProtocolError(f"registry entry started_at {started_text!r} is not ISO 8601") from exc
    metadata = document["metadata"]
    if not isinstance(metadata, dict):
        raise RemoteProtocolError("registry entry metadata is not an object")
    try:
        location = StreamLocation(
            slug=document["slug"],
            origin_url=document["origin_url"],
            node=document["node"],
            started_at=started_at,
            metadata=metadata,
        )
    except InvalidInput as exc:
        raise RemoteProtocolError(f"registry entry is invalid: {exc}") from exc
    if encode_entry(location) != data:
        # Only the canonical form is signed; anything else was not written by a Streamit node.
        raise RemoteProtocolError("registry entry is not in canonical form")
    return location


class EntrySigner:
    """Signs and verifies entries with the cluster secret (HMAC-SHA256)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the cluster secret must not be empty")
        self._key = secret.encode("utf-8")

    def mac(self, entry: bytes) -> str:
        """The hex HMAC-SHA256 of ``entry``."""
        return hmac.new(self._key, _MAC_CONTEXT + entry, hashlib.sha256).hexdigest()

    def sign(self, location: StreamLocation) -> tuple[bytes, str]:
        """The canonical entry of ``location`` and its MAC."""
        entry = encode_entry(location)
        return entry, self.mac(entry)

    def verify(self, entry: bytes, mac: bytes | str) -> StreamLocation:
        """The location in ``entry`` if ``mac`` authenticates it; :class:`RemoteProtocolError` otherwise."""
        if isinstance(mac, bytes):
            try:
                mac = mac.decode("ascii")
            except UnicodeDecodeError as exc:
                raise RemoteProtocolError("registry entry MAC is not ASCII") from exc
        if not hmac.compare_digest(self.mac(entry).encode("ascii"), mac.encode("ascii", "replace")):
            raise RemoteProtocolError("registry entry MAC does not match: not signed with the cluster secret")
        return decode_entry(entry)
