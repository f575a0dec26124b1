"""Stream key generation and hashing."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from streamit.db.keys import (
    KEY_PREFIX,
    MAX_KEY_LENGTH,
    generate_stream_key,
    hash_stream_key,
    is_plausible_key,
    key_matches,
)


def test_keys_carry_at_least_128_random_bits() -> None:
    key = generate_stream_key()
    assert key.startswith(KEY_PREFIX)
    raw = base64.urlsafe_b64decode(key[len(KEY_PREFIX) :] + "=" * (-len(key) % 4))
    assert len(raw) * 8 >= 128
    assert len({generate_stream_key() for _ in range(1000)}) == 1000
    assert is_plausible_key(key)


def test_keys_are_url_and_rtmp_path_safe() -> None:
    for _ in range(200):
        key = generate_stream_key()
        assert key.isascii()
        assert not set(key) & set("/?#&=%+ ")


def test_hash_is_sha256_hex() -> None:
    assert hash_stream_key("sk_abc") == hashlib.sha256(b"sk_abc").hexdigest()
    assert len(hash_stream_key(generate_stream_key())) == 64


def test_key_matches_rejects_near_misses() -> None:
    key = generate_stream_key()
    stored = hash_stream_key(key)
    assert key_matches(key, stored)
    for guess in (key[:-1], key + "x", key.swapcase(), "", stored):
        assert not key_matches(guess, stored)


def test_plausibility_bounds() -> None:
    assert not is_plausible_key("")
    assert is_plausible_key("x" * MAX_KEY_LENGTH)
    assert not is_plausible_key("x" * (MAX_KEY_LENGTH + 1))


@given(st.text())
def test_hashing_any_text_is_total(text: str) -> None:
    digest = hash_stream_key(text)
    assert len(digest) == 64
    assert key_matches(text, digest)
