from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.discovery.entry import MAX_ENTRY_SIZE, EntrySigner, decode_entry, encode_entry
from streamit.discovery.location import StreamLocation
from streamit.errors import ConfigError, MessageTooLarge, RemoteProtocolError

LOCATION = StreamLocation(
    slug="cam-one",
    origin_url="http://127.0.0.1:8081",
    node="origin-a",
    started_at=datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC),
    metadata={"video_codec": "h264", "audio_codec": "aac", "bitrate_kbps": "2500", "viewers": "17"},
)
ENTRY = encode_entry(LOCATION)


def test_encoding_is_canonical_and_round_trips() -> None:
    assert ENTRY == (
        b'{"metadata":{"audio_codec":"aac","bitrate_kbps":"2500","video_codec":"h264","viewers":"17"},'
        b'"node":"origin-a","origin_url":"http://127.0.0.1:8081","slug":"cam-one",'
        b'"started_at":"2024-05-01T12:30:15.250000+00:00","v":1}'
    )
    assert decode_entry(ENTRY) == LOCATION
    assert decode_entry(encode_entry(StreamLocation("x", "http://o", "n"))).started_at is None


def test_every_truncation_is_refused() -> None:
    for end in range(len(ENTRY)):
        with pytest.raises(RemoteProtocolError):
            decode_entry(ENTRY[:end])


@pytest.mark.parametrize("trailer", [b" ", b"\n", b"{}", b"\x00", b"x"])
def test_trailing_bytes_are_refused(trailer: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_entry(ENTRY + trailer)


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"v": True},
        {"v": 1.0},
        {"slug": "a/b"},
        {"origin_url": "ftp://x"},
        {"node": 5},
        {"started_at": "yesterday"},
        {"started_at": 5},
        {"started_at": "2024-05-01T12:00:00"},
        {"metadata": []},
        {"metadata": {"k": 1}},
        {"extra": 1},
    ],
)
def test_invalid_documents_are_refused(change: dict[str, object]) -> None:
    document = json.loads(ENTRY) | change
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(RemoteProtocolError):
        decode_entry(data)


def test_non_canonical_spelling_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_entry(json.dumps(json.loads(ENTRY)).encode())


def test_oversized_entry_is_refused() -> None:
    with pytest.raises(MessageTooLarge):
        decode_entry(b" " * (MAX_ENTRY_SIZE + 1))


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_entry(b"[" * 100_000)


def test_signer_verifies_its_own_entries_only() -> None:
    signer = EntrySigner("cluster secret")
    entry, mac = signer.sign(LOCATION)
    assert signer.verify(entry, mac) == LOCATION
    assert signer.verify(entry, mac.encode()) == LOCATION
    with pytest.raises(RemoteProtocolError):
        EntrySigner("another secret").verify(entry, mac)
    tampered = entry.replace(b"127.0.0.1:8081", b"evil.example:80")
    with pytest.raises(RemoteProtocolError):
        signer.verify(tampered, mac)
    with pytest.raises(RemoteProtocolError):
        signer.verify(entry, b"\xff" * 64)
    with pytest.raises(RemoteProtocolError):
        signer.verify(entry, "é" * 64)


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        EntrySigner("")


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_entry(data)


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=len(ENTRY) - 1), st.binary(min_size=1, max_size=8))
def test_mutated_entries_parse_or_raise_remote_protocol_error(position: int, noise: bytes) -> None:
    data = ENTRY[:position] + noise + ENTRY[position + len(noise) :]
    with contextlib.suppress(RemoteProtocolError):
        decode_entry(data)


@settings(deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=8),
    st.datetimes(timezones=st.just(UTC)) | st.none(),
)
def test_any_valid_location_round_trips(metadata: dict[str, str], started_at: datetime | None) -> None:
    location = StreamLocation("cam", "https://o.example", "node", started_at, metadata)
    assert decode_entry(encode_entry(location)) == location
