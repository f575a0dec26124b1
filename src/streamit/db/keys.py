"""Stream keys: the secret a broadcaster appends to the publish URL.

Keys carry 192 random bits, so a single unsalted SHA-256 is enough to store them: there is nothing to
brute-force, and a deterministic digest can be looked up through an index.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk_"
KEY_RANDOM_BYTES = 24
# A key longer than this cannot be one of ours; refusing it early keeps hostile input out of the DB query.
MAX_KEY_LENGTH = 128


def generate_stream_key() -> str:
    """A fresh stream key: ``sk_`` followed by 192 bits of URL-safe randomness."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_stream_key(key: str) -> str:
    """The hex SHA-256 digest stored in place of ``key``."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time check that ``key`` hashes to ``stored_hash``."""
    return hmac.compare_digest(hash_stream_key(key), stored_hash)


def is_plausible_key(key: str) -> bool:
    """Cheap shape check before touching the database."""
    return 0 < len(key) <= MAX_KEY_LENGTH
