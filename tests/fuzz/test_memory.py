"""Memory and CPU bounds on peer bytes: declared lengths allocate nothing up front, decoding is bounded.

Allocations are measured with :mod:`tracemalloc` (Python-level allocations, deterministic for a given
input), never with wall-clock time.  The regressions found by fuzzing keep their exact bytes here.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from fuzz.targets import TARGETS, run_target
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamit.errors import MessageTooLarge, RemoteProtocolError
from streamit.flv import FlvFileReader, FlvFileWriter
from streamit.media.h264 import iter_nal_units
from streamit.rtmp import ChunkReader, ConnectRequested, MetaDataReceived, PublishRequested, RtmpConnection
from streamit.rtmp.amf0 import decode_amf0_all, encode_amf0_all
from streamit.rtmp.amf3 import Amf3Decoder
from streamit.rtmp.chunk import ChunkWriter
from streamit.rtmp.connection import MAX_AMF_MESSAGE_SIZE
from tests.fuzz.mutations import peer_bytes

KiB = 1024
MiB = 1024 * KiB
AMPLIFICATION = 128
"""Peak Python allocation allowed per input byte.  Decoded AMF is the costliest: an AMF3 object with one
sealed member takes 3 bytes by traits reference and becomes a one-item dict, ~67 bytes of objects per byte
(``test_amf3_small_objects_amplify_up_to_67_times``).  A parser allocating by *declared* length exceeds
this by orders of magnitude."""
BASELINE = 256 * KiB
"""Allocation allowed whatever the input: parser state, reference tables, regex and JSON machinery."""


@contextmanager
def peak_allocation() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak traced allocation in bytes during the block."""
    result: list[int] = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        yield result
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result.append(peak)


def peak_of(call: Callable[[], Any]) -> int:
    """Peak allocation of ``call()``; a peer error it raises is fine (and is what most of these expect)."""
    with peak_allocation() as peak, suppress(RemoteProtocolError):
        call()
    return peak[0]


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_allocation_is_proportional_to_the_bytes_received(name: str, data: st.DataObject) -> None:
    target = TARGETS[name]
    payload = data.draw(peer_bytes(target.seeds()), label="input")
    if name == "flv_tag":
        target.seeds()  # the configured demuxer's fixture is read once, outside the measurement
    assert peak_of(lambda: run_target(target, payload)) <= AMPLIFICATION * len(payload) + BASELINE


# --- Declared lengths -------------------------------------------------------------------------------------


def chunk_header(length: int, csid: int = 3, type_id: int = 9, fmt: int = 0) -> bytes:
    """A type-0 chunk header (RTMP 1.0 §5.3.1.2.1) announcing a message of ``length`` bytes."""
    return bytes((fmt << 6 | csid,)) + b"\x00\x00\x00" + struct.pack(">I", length << 8 | type_id) + bytes(4)


def test_a_16_mib_message_header_allocates_nothing_up_front() -> None:
    reader = ChunkReader(max_message_size=32 * MiB)
    data = chunk_header(0xFFFFFF) + bytes(128)
    with peak_allocation() as peak:
        messages, consumed = reader.read(data)
    assert (messages, consumed) == ([], len(data))
    assert peak[0] < 16 * KiB


def test_a_16_mib_message_with_a_huge_chunk_size_waits_without_allocating() -> None:
    """Set Chunk Size 0x7FFFFFFF, then a 16 MiB message whose first kilobyte arrived."""
    reader = ChunkReader(max_message_size=32 * MiB)
    set_chunk_size = chunk_header(4, csid=2, type_id=1) + struct.pack(">I", 0x7FFFFFFF)
    data = set_chunk_size + chunk_header(0xFFFFFF) + bytes(1024)
    with peak_allocation() as peak:
        messages, consumed = reader.read(data)
    # The reader keeps the kilobyte that arrived (the caller keeps nothing), and only that.
    assert (messages, consumed) == ([], len(data))
    assert peak[0] < 16 * KiB


def test_the_connection_refuses_a_16_mib_message_header_at_once() -> None:
    connection = RtmpConnection()
    connection.receive_data(b"\x03" + bytes(3072))
    with peak_allocation() as peak, pytest.raises(MessageTooLarge):
        connection.receive_data(chunk_header(0xFFFFFF) + bytes(64))
    assert peak[0] < 64 * KiB


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x0c\xff\xff\xff\xff" + bytes(16), id="amf0-long-string-4GiB"),
        pytest.param(b"\x0f\xff\xff\xff\xff" + bytes(16), id="amf0-xml-4GiB"),
        pytest.param(b"\x0a\xff\xff\xff\xff" + b"\x05" * 16, id="amf0-strict-array-4G-items"),
        pytest.param(b"\x08\xff\xff\xff\xff" + b"\x00\x00\x09", id="amf0-ecma-array-4G-items"),
        pytest.param(b"\x11\x06\xff\xff\xff\xff" + bytes(16), id="amf3-string-256MiB"),
        pytest.param(b"\x11\x0c\xff\xff\xff\xff" + bytes(16), id="amf3-byte-array-256MiB"),
        pytest.param(b"\x11\x09\xff\xff\xff\xff\x01" + b"\x01" * 16, id="amf3-array-128M-items"),
        pytest.param(b"\x11\x0a\xff\xff\xff\xf3\x01" + b"\x01" * 16, id="amf3-object-16M-sealed-members"),
    ],
)
def test_declared_amf_lengths_allocate_nothing_up_front(body: bytes) -> None:
    assert peak_of(lambda: decode_amf0_all(body)) < 16 * KiB


def test_an_flv_tag_declaring_16_mib_buffers_only_what_arrived() -> None:
    writer = FlvFileWriter()
    head = writer.header(has_audio=True, has_video=True)
    tag_header = b"\x09\xff\xff\xff" + bytes(7)
    reader = FlvFileReader()
    with peak_allocation() as peak:
        reader.feed(head + tag_header + bytes(4096))
        assert list(reader) == []
    assert peak[0] < 64 * KiB


def test_an_avcc_nal_length_of_4_gib_is_refused_without_copying() -> None:
    data = b"\xff\xff\xff\xff" + bytes(4096)
    assert peak_of(lambda: list(iter_nal_units(data))) < 16 * KiB


# --- Regression: AMF amplification through command and data messages (found by fuzzing) -------------------


def u29(value: int) -> bytes:
    """The 4-byte form of an AMF3 U29 (AMF3 §1.3.1)."""
    return bytes((value >> 22 | 0x80, (value >> 15) & 0x7F | 0x80, (value >> 8) & 0x7F | 0x80, value & 0xFF))


def empty_objects_command(count: int) -> bytes:
    """An AMF3 command whose only argument is a dense array of ``count`` empty anonymous objects.

    Three bytes per object (``0a 01 01``: object, traits reference 0, end of dynamic members) decode to
    an empty dict each: ~27 bytes of Python objects and ~1 µs per input byte.
    """
    objects = b"\x0a\x0b\x01\x01" + b"\x0a\x01\x01" * (count - 1)
    array = b"\x11\x09" + u29(count << 1 | 1) + b"\x01" + objects
    return b"\x00" + encode_amf0_all("connect", 1.0) + array


def connected(**options: Any) -> tuple[RtmpConnection, ChunkWriter]:
    connection = RtmpConnection(**options)
    connection.receive_data(b"\x03" + bytes(3072))
    writer = ChunkWriter()
    return connection, writer


def test_amf3_small_objects_amplify_up_to_67_times() -> None:
    """Why the cap exists: decoding is linear, but a byte becomes tens of bytes of Python objects."""
    body = empty_objects_command(20_000)[1:]
    assert 15 * len(body) < peak_of(lambda: decode_amf0_all(body)) < AMPLIFICATION * len(body)
    # One sealed member "a" in the traits, then objects by traits reference: 3 bytes → {"a": None}.
    objects = b"\x0a\x13\x01\x03a\x01" + b"\x0a\x01\x01" * 19_999
    one_member = b"\x11\x09" + u29(20_000 << 1 | 1) + b"\x01" + objects
    peak = peak_of(lambda: decode_amf0_all(one_member))
    assert 40 * len(one_member) < peak < AMPLIFICATION * len(one_member)


def test_an_oversized_command_is_refused_before_decoding() -> None:
    connection, writer = connected(max_message_size=8 * MiB)
    payload = empty_objects_command(400_000)  # 1.2 MB: ~32 MB of objects and ~0.5 s if it were decoded
    assert len(payload) > MAX_AMF_MESSAGE_SIZE
    chunks = writer.write(3, 17, 0, 0, payload)
    with peak_allocation() as peak, pytest.raises(MessageTooLarge):
        connection.receive_data(chunks)
    # The chunk layer holds the message (its bytes, and a view per chunk while joining them); decoding
    # would add ~27 bytes per byte.
    assert peak[0] < 5 * len(payload)


def test_a_command_at_the_cap_is_still_decoded() -> None:
    connection, writer = connected()
    info = {"app": "live", "tcUrl": "rtmp://h/live", "padding": "x" * (MAX_AMF_MESSAGE_SIZE - 200)}
    payload = encode_amf0_all("connect", 1.0, info)
    assert len(payload) <= MAX_AMF_MESSAGE_SIZE
    connection.receive_data(writer.write(3, 20, 0, 0, payload))
    event = connection.next_event()
    assert isinstance(event, ConnectRequested) and event.app == "live"


def test_oversized_metadata_is_dropped_and_the_publish_goes_on() -> None:
    connection, writer = connected()
    connection.receive_data(writer.write(3, 20, 0, 0, encode_amf0_all("connect", 1.0, {"app": "live"})))
    connect = connection.next_event()
    assert isinstance(connect, ConnectRequested)
    connection.accept_connect(connect.transaction_id)
    connection.receive_data(writer.write(3, 20, 0, 0, encode_amf0_all("createStream", 2.0, None)))
    connection.next_event()
    connection.receive_data(writer.write(8, 20, 1, 0, encode_amf0_all("publish", 3.0, None, "key", "live")))
    publish = connection.next_event()
    assert isinstance(publish, PublishRequested)
    connection.accept_publish(publish.stream_id)
    big = encode_amf0_all("@setDataFrame", "onMetaData", {"blob": "x" * MAX_AMF_MESSAGE_SIZE})
    small = encode_amf0_all("@setDataFrame", "onMetaData", {"width": 320.0})
    connection.receive_data(writer.write(4, 18, 1, 0, big) + writer.write(4, 18, 1, 0, small))
    (event,) = [e for e in iter(connection.next_event, None) if isinstance(e, MetaDataReceived)]
    assert event.values == {"width": 320.0}
    assert connection.dropped_messages == 1


def test_amf3_decoder_reference_tables_do_not_copy_values() -> None:
    """A string reference repeated (2 bytes each) costs one list slot, not a new string."""
    body = b"\x09" + u29(50_001 << 1 | 1) + b"\x01" + b"\x06\x81\x00" + b"x" * 128 + b"\x06\x00" * 50_000
    peak = peak_of(lambda: Amf3Decoder(body).decode())
    assert peak < 8 * len(body) + BASELINE
