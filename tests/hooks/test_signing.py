"""Signature headers: HMAC-SHA256 over "<timestamp>." + body, checked against an independent computation."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_headers, verify_signature

SECRET = "s3cret"
BODY = b'{"type":"stream.live"}'
NOW = 1_767_225_600


def test_headers_hold_timestamp_and_hmac_of_timestamp_dot_body() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=NOW)
    expected = hmac.new(b"s3cret", b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1767225600", SIGNATURE_HEADER: f"sha256={expected}"}
    assert SIGNATURE_HEADER == "X-Streamit-Signature" and TIMESTAMP_HEADER == "X-Streamit-Timestamp"


def test_verify_accepts_fresh_signature() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=NOW)
    assert verify_signature(SECRET, BODY, headers, now=NOW + 10)


def test_verify_refuses_tampering_replay_and_garbage() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=NOW)
    assert not verify_signature(SECRET, BODY + b" ", headers, now=NOW)
    assert not verify_signature("other", BODY, headers, now=NOW)
    assert not verify_signature(SECRET, BODY, headers, now=NOW + 301)  # a replay after five minutes
    moved = {**headers, TIMESTAMP_HEADER: str(NOW + 1)}
    assert not verify_signature(SECRET, BODY, moved, now=NOW)  # the timestamp is covered by the MAC
    assert not verify_signature(SECRET, BODY, {SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, now=NOW)
    assert not verify_signature(SECRET, BODY, {**headers, TIMESTAMP_HEADER: "-5"}, now=NOW)
    assert not verify_signature(SECRET, BODY, {**headers, TIMESTAMP_HEADER: "1e9"}, now=NOW)


@settings(deadline=None)
@given(st.binary(max_size=200), st.text(max_size=30), st.text(max_size=80))
def test_fuzz_foreign_headers_never_verify_and_never_raise(body: bytes, stamp: str, claimed: str) -> None:
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: claimed}
    assert not verify_signature(SECRET, body, headers, now=NOW)
