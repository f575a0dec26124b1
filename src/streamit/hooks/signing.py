"""HMAC-SHA256 signatures on outgoing callbacks and webhooks.

A signed request carries two headers::

    X-Streamit-Timestamp: 1767225600
    X-Streamit-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The timestamp (Unix seconds) is covered by the MAC, so a receiver that checks it is recent (e.g. within five
minutes) refuses replays of an old request.  Receivers must compute the MAC over the raw body bytes they
received, before any form or JSON decoding.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Streamit-Signature"
TIMESTAMP_HEADER = "X-Streamit-Timestamp"
SIGNATURE_SCHEME = "sha256="
DEFAULT_TOLERANCE = 300.0


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return SIGNATURE_SCHEME + mac.hexdigest()


def signature_headers(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    """The two headers that sign ``body`` at ``timestamp`` (Unix seconds)."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: compute_signature(secret, timestamp, body),
    }


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``headers`` sign ``body`` with ``secret`` at a time within ``tolerance`` seconds of ``now``.

    ``headers`` is looked up with the exact header names above; pass a case-insensitive mapping (such as
    ``httpx.Headers`` or ``email.message.Message``) when the names may arrive in another case.
    """
    raw_timestamp = headers.get(TIMESTAMP_HEADER)
    claimed = headers.get(SIGNATURE_HEADER)
    if raw_timestamp is None or claimed is None:
        return False
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        return False
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(compute_signature(secret, timestamp, body), claimed)
