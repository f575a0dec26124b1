"""The cross-cutting fuzz invariant of every peer-facing parser, on mutated real captures.

For every target of :mod:`fuzz.targets`: peer bytes either parse or raise ``RemoteProtocolError`` — no
other exception escapes, and each parser's own assertions hold.  Incremental parsers must reach the same
outcome whether the bytes arrive whole, one byte at a time, or in pieces of any size, and trailing bytes
after a complete structure must not change what was already parsed.

The number of examples is bounded so that the whole directory runs in well under a minute in CI; the long
runs are the atheris harnesses in ``fuzz/`` (see docs/fuzzing.md).
"""

from __future__ import annotations

import contextlib
import os

import pytest
from fuzz.targets import TARGETS, Target, run_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import seeds
from streamit.errors import RemoteProtocolError
from streamit.rtmp import ChunkReader, Message, ServerHandshake
from streamit.rtmp.amf0 import decode_amf0, encode_amf0_all
from streamit.rtmp.chunk import ChunkWriter
from streamit.rtmp.handshake import HANDSHAKE_SIZE
from tests.fuzz.mutations import peer_bytes

ALL_TARGETS = sorted(TARGETS)
INCREMENTAL_TARGETS = sorted(name for name, target in TARGETS.items() if target.incremental)
EXAMPLES = int(os.environ.get("STREAMIT_FUZZ_EXAMPLES", "150"))
"""Examples per target and property: ~16 targets × 3 properties stay within ~30 s on a busy 2-core box.
``STREAMIT_FUZZ_EXAMPLES=5000`` makes a long run without atheris."""

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,  # shared CI machines are slow; correctness is what matters
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_every_seed_parses(name: str) -> None:
    """The unmutated captures are valid input: the targets and seeds are meaningful."""
    target = TARGETS[name]
    outcomes = [run_target(target, seed) for seed in target.seeds()]
    assert outcomes, f"{name} has no seeds"
    # flv_tag's Enhanced-RTMP seeds (HEVC, Opus) are refused as unsupported codecs, on purpose.
    assert sum(outcomes) >= len(outcomes) - 2


@pytest.mark.parametrize("name", ALL_TARGETS)
@fuzz_settings
@given(data=st.data())
def test_peer_bytes_parse_or_raise_remote_protocol_error(name: str, data: st.DataObject) -> None:
    target = TARGETS[name]
    run_target(target, data.draw(peer_bytes(target.seeds()), label="input"))


def _outcome(target: Target, data: bytes, step: int | None) -> bool:
    return run_target(target, data, step)


@pytest.mark.parametrize("name", INCREMENTAL_TARGETS)
@fuzz_settings
@given(data=st.data())
def test_pieces_of_any_size_give_the_same_outcome(name: str, data: st.DataObject) -> None:
    target = TARGETS[name]
    payload = data.draw(peer_bytes(target.seeds()), label="input")
    step = data.draw(st.sampled_from([1, 2, 3, 7, 64, 127, 128, 129, 1536, 4096]), label="step")
    # At most ~2,000 pieces per example keeps the whole captures (74 KB) affordable in CI; the seeds are
    # fed one byte at a time below.
    step = max(step, len(payload) // 2048)
    assert _outcome(target, payload, step) == _outcome(target, payload, None)


@pytest.mark.parametrize("name", INCREMENTAL_TARGETS)
def test_one_byte_at_a_time_parses_every_seed(name: str) -> None:
    target = TARGETS[name]
    for seed in target.seeds():
        assert run_target(target, seed, 1) == run_target(target, seed, None)


@fuzz_settings
@given(seed=st.sampled_from(seeds.chunk_seeds()), tail=st.binary(min_size=1, max_size=64))
def test_trailing_bytes_leave_the_chunks_before_them_alone(seed: bytes, tail: bytes) -> None:
    """A real chunk stream then garbage: every message of the real part still comes out, unchanged."""
    expected, _ = ChunkReader().read(seed)
    got: list[Message] = []
    with contextlib.suppress(RemoteProtocolError):
        ChunkReader().read_into(seed + tail, got)
    assert got[: len(expected)] == expected


@fuzz_settings
@given(seed=st.sampled_from(seeds.amf0_seeds()), tail=st.binary(min_size=1, max_size=64))
def test_trailing_bytes_after_an_amf0_value_are_not_read(seed: bytes, tail: bytes) -> None:
    value, end = decode_amf0(seed)
    assert decode_amf0(seed + tail) == (value, end)


@fuzz_settings
@given(seed=st.sampled_from(seeds.handshake_seeds()), tail=st.binary(min_size=1, max_size=64))
def test_bytes_after_c2_are_left_for_the_chunk_layer(seed: bytes, tail: bytes) -> None:
    shake = ServerHandshake()
    buffer = seed + tail
    consumed, reply = shake.receive(buffer)
    consumed_c2, _ = shake.receive(buffer[consumed:])
    assert shake.complete and len(reply) == 1 + 2 * HANDSHAKE_SIZE
    assert buffer[consumed + consumed_c2 :] == tail


def test_an_error_held_behind_connect_ends_the_same_whole_or_in_pieces() -> None:
    """Messages after ``connect`` wait for its decision; a malformed one among them must still fail."""
    writer = ChunkWriter()
    connect = writer.write(3, 20, 0, 0, encode_amf0_all("connect", 1.0, {"app": "live"}))
    data = b"\x03" + bytes(2 * HANDSHAKE_SIZE) + connect + writer.write(3, 20, 0, 0, b"\x02\x00")
    target = TARGETS["connection"]
    assert run_target(target, data) is False
    assert run_target(target, data, 1) is False
