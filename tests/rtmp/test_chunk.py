"""Chunk stream: every header format, delta rules, extended timestamps, long ids, control, round trips."""

from __future__ import annotations

import pathlib
import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from streamit.rtmp.chunk import ChunkReader, ChunkWriter, Message, encode_basic_header

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "rtmp"
HANDSHAKE_BYTES = 1 + 1536 + 1536


def basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


def u24(value: int) -> bytes:
    return value.to_bytes(3, "big")


def fmt0(csid: int, ts: int, length: int, type_id: int, msid: int) -> bytes:
    field = min(ts, 0xFFFFFF)
    header = basic(0, csid) + u24(field) + u24(length) + bytes([type_id]) + struct.pack("<I", msid)
    return header + (struct.pack(">I", ts) if field == 0xFFFFFF else b"")


def fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    field = min(delta, 0xFFFFFF)
    header = basic(1, csid) + u24(field) + u24(length) + bytes([type_id])
    return header + (struct.pack(">I", delta) if field == 0xFFFFFF else b"")


def fmt2(csid: int, delta: int) -> bytes:
    field = min(delta, 0xFFFFFF)
    return basic(2, csid) + u24(field) + (struct.pack(">I", delta) if field == 0xFFFFFF else b"")


def read_all(reader: ChunkReader, data: bytes) -> list[Message]:
    messages, consumed = reader.read(data)
    assert consumed == len(data)
    return messages


def stamps(messages: list[Message]) -> list[int]:
    return [m.timestamp for m in messages]


def test_single_chunk_message() -> None:
    data = fmt0(3, 1234, 5, 20, 0) + b"hello"
    assert read_all(ChunkReader(), data) == [Message(3, 20, 0, 1234, b"hello")]


def test_message_split_over_continuation_chunks() -> None:
    payload = bytes(range(256)) + b"xyz" * 20
    data = (
        fmt0(4, 7, len(payload), 9, 1) + payload[:128] + b"\xc4" + payload[128:256] + b"\xc4" + payload[256:]
    )
    assert read_all(ChunkReader(), data) == [Message(4, 9, 1, 7, payload)]


def test_fmt1_fmt2_fmt3_timestamps_accumulate() -> None:
    data = (
        fmt0(6, 1000, 2, 8, 1)
        + b"aa"
        + fmt1(6, 40, 3, 9)
        + b"bbb"
        + fmt2(6, 33)
        + b"ccc"
        # RTMP 1.0 §5.3.1.2.4: a type-3 chunk starting a new message adds the previous delta (33) again.
        + basic(3, 6)
        + b"ddd"
        + basic(3, 6)
        + b"eee"
    )
    messages = read_all(ChunkReader(), data)
    assert stamps(messages) == [1000, 1040, 1073, 1106, 1139]
    assert [(m.type_id, m.stream_id, m.payload) for m in messages] == [
        (8, 1, b"aa"),
        (9, 1, b"bbb"),
        (9, 1, b"ccc"),
        (9, 1, b"ddd"),
        (9, 1, b"eee"),
    ]


def test_fmt3_new_message_after_fmt0_uses_the_timestamp_as_delta() -> None:
    data = fmt0(3, 50, 1, 20, 0) + b"a" + basic(3, 3) + b"b"
    assert stamps(read_all(ChunkReader(), data)) == [50, 100]


def test_extended_timestamp_is_reread_on_continuation_chunks() -> None:
    ts = 0x01000000
    payload = bytes(range(200)) + bytes(100)
    ext = struct.pack(">I", ts)
    data = (
        fmt0(4, ts, 300, 9, 1)
        + payload[:128]
        + b"\xc4"
        + ext
        + payload[128:256]
        + b"\xc4"
        + ext
        + payload[256:]
    )
    assert read_all(ChunkReader(), data) == [Message(4, 9, 1, ts, payload)]


def test_extended_delta_and_fmt3_new_message_with_extended_field() -> None:
    delta = 0x01000005
    data = (
        fmt0(5, 10, 1, 8, 1)
        + b"a"
        + fmt1(5, delta, 1, 8)
        + b"b"
        + basic(3, 5)
        + struct.pack(">I", delta)
        + b"c"
    )
    assert stamps(read_all(ChunkReader(), data)) == [10, 10 + delta, 10 + 2 * delta]


def test_stream_starting_above_24_bits_then_small_deltas() -> None:
    data = fmt0(6, 16_780_000, 1, 9, 1) + b"a" + fmt2(6, 33) + b"b" + basic(3, 6) + b"c"
    assert stamps(read_all(ChunkReader(), data)) == [16_780_000, 16_780_033, 16_780_066]


def test_timestamps_wrap_modulo_2_32() -> None:
    data = fmt0(6, 0xFFFFFFF0, 1, 9, 1) + b"a" + fmt2(6, 0x20) + b"b"
    assert stamps(read_all(ChunkReader(), data)) == [0xFFFFFFF0, 0x10]


@pytest.mark.parametrize(
    ("header", "csid"),
    [
        (b"\x3f", 63),
        (b"\x00\x00", 64),
        (b"\x00\xff", 319),
        (b"\x01\x00\x01", 320),
        (b"\x01\x34\x12", 64 + 0x34 + 0x12 * 256),
        (b"\x01\xff\xff", 65599),
    ],
)
def test_one_two_and_three_byte_chunk_stream_ids(header: bytes, csid: int) -> None:
    data = header + u24(1) + u24(1) + b"\x08" + struct.pack("<I", 1) + b"x"
    data += bytes([0xC0 | header[0]]) + header[1:] + b"y"
    messages = read_all(ChunkReader(), data)
    assert [(m.chunk_stream_id, m.timestamp, m.payload) for m in messages] == [
        (csid, 1, b"x"),
        (csid, 2, b"y"),
    ]
    assert encode_basic_header(0, csid) == header


def test_set_chunk_size_applies_to_the_next_chunk() -> None:
    payload = bytes(range(256)) * 2
    reader = ChunkReader()
    data = fmt0(2, 0, 4, 1, 0) + struct.pack(">I", 4096) + fmt0(4, 0, len(payload), 9, 1) + payload
    assert read_all(reader, data) == [Message(4, 9, 1, 0, payload)]
    assert reader.chunk_size == 4096


@pytest.mark.parametrize("size", [0, 0x80000000, 0xFFFFFFFF])
def test_invalid_chunk_size_is_refused(size: int) -> None:
    with pytest.raises(RemoteProtocolError):
        ChunkReader().read(fmt0(2, 0, 4, 1, 0) + struct.pack(">I", size))


def test_short_control_messages_are_refused() -> None:
    for type_id in (1, 2):
        with pytest.raises(RemoteProtocolError):
            ChunkReader().read(fmt0(2, 0, 2, type_id, 0) + b"\x00\x01")


def test_abort_discards_the_partial_message() -> None:
    partial = fmt0(4, 0, 200, 9, 1) + bytes(128)
    abort = fmt0(2, 0, 4, 2, 0) + struct.pack(">I", 4)
    fresh = fmt0(4, 90, 2, 9, 1) + b"ok"
    assert read_all(ChunkReader(), partial + abort + fresh) == [Message(4, 9, 1, 90, b"ok")]
    with pytest.raises(RemoteProtocolError):
        ChunkReader().read(partial + fresh)


def test_abort_of_an_unknown_chunk_stream_is_harmless() -> None:
    assert read_all(ChunkReader(), fmt0(2, 0, 4, 2, 0) + struct.pack(">I", 77)) == []


@pytest.mark.parametrize("first", [fmt1(3, 0, 1, 8), fmt2(3, 0), basic(3, 3)])
def test_compressed_header_without_a_previous_header_is_refused(first: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ChunkReader().read(first + b"x")


def test_message_larger_than_the_cap_is_refused() -> None:
    reader = ChunkReader(max_message_size=1000)
    assert read_all(reader, fmt0(3, 0, 1000, 9, 1) + bytes(128)) == []
    with pytest.raises(MessageTooLarge):
        ChunkReader(max_message_size=1000).read(fmt0(3, 0, 1001, 9, 1))
    with pytest.raises(MessageTooLarge):
        ChunkReader(max_message_size=1000).read(fmt0(3, 0, 1, 9, 1) + b"x" + fmt1(3, 0, 5000, 9))


def test_zero_length_message() -> None:
    assert read_all(ChunkReader(), fmt0(3, 0, 0, 8, 1)) == [Message(3, 8, 1, 0, b"")]


def capture_chunks() -> bytes:
    return (FIXTURES / "ffmpeg_publish.bin").read_bytes()[HANDSHAKE_BYTES:]


def test_real_capture_whole_bytewise_and_with_trailing_bytes() -> None:
    data = capture_chunks()
    whole = read_all(ChunkReader(), data)
    assert len(whole) > 150
    assert {m.type_id for m in whole} >= {8, 9, 18, 20}

    reader = ChunkReader()
    pending = bytearray()
    bytewise: list[Message] = []
    for byte in data:
        pending.append(byte)
        messages, consumed = reader.read(pending)
        del pending[:consumed]
        bytewise.extend(messages)
    assert not pending
    assert bytewise == whole

    partial_header = b"\x04\x00\x00"
    messages, consumed = ChunkReader().read(data + partial_header)
    assert messages == whole
    assert consumed == len(data)


def test_real_capture_uses_extended_timestamps() -> None:
    data = (FIXTURES / "ffmpeg_publish_extended_ts.bin").read_bytes()[HANDSHAKE_BYTES:]
    assert b"\xff\xff\xff" in data
    messages = read_all(ChunkReader(), data)
    video = [m.timestamp for m in messages if m.type_id == 9]
    assert video[1] == 16_780_000
    assert video[1:] == sorted(video[1:])
    assert video[-1] > 16_781_900


def test_real_capture_with_extended_timestamps_whole_equals_bytewise() -> None:
    # Whole input takes the reader's one-message fast path; byte by byte, the chunk-at-a-time path.
    data = (FIXTURES / "ffmpeg_publish_extended_ts.bin").read_bytes()[HANDSHAKE_BYTES:]
    whole = read_all(ChunkReader(), data)
    reader = ChunkReader()
    pending = bytearray()
    bytewise: list[Message] = []
    for byte in data:
        pending.append(byte)
        messages, consumed = reader.read(pending)
        del pending[:consumed]
        bytewise.extend(messages)
    assert bytewise == whole


def test_continuation_interleaved_with_another_chunk_stream() -> None:
    video = bytes(range(200))
    audio = b"a" * 10
    data = (
        fmt0(6, 40, len(video), 9, 1)
        + video[:128]
        + fmt0(4, 41, len(audio), 8, 1)
        + audio
        + b"\xc6"
        + video[128:]
    )
    assert read_all(ChunkReader(), data) == [Message(4, 8, 1, 41, audio), Message(6, 9, 1, 40, video)]


def test_continuation_header_of_another_chunk_stream_is_not_taken_for_ours() -> None:
    # A type-3 chunk of chunk stream 5 where ours (4) would continue: chunk stream 5 has no header yet.
    payload = bytes(300)
    data = fmt0(4, 0, len(payload), 9, 1) + payload[:128] + b"\xc5" + payload[128:256]
    with pytest.raises(RemoteProtocolError):
        ChunkReader().read(data)


def test_message_type_zero_is_returned() -> None:
    assert read_all(ChunkReader(), fmt0(3, 5, 2, 0, 1) + b"hi") == [Message(3, 0, 1, 5, b"hi")]


def test_read_raw_gives_the_message_fields_as_tuples() -> None:
    data = capture_chunks()
    raw: list[tuple[int, int, int, int, bytes]] = []
    assert ChunkReader().read_raw(data, raw) == len(data)
    assert [Message(*fields) for fields in raw] == read_all(ChunkReader(), data)


def test_writer_picks_the_smallest_header() -> None:
    writer = ChunkWriter()
    assert writer.write(3, 20, 0, 0, b"abc") == b"\x03" + u24(0) + u24(3) + b"\x14" + bytes(4) + b"abc"
    assert writer.write(3, 20, 0, 10, b"abcd") == b"\x43" + u24(10) + u24(4) + b"\x14" + b"abcd"
    assert writer.write(3, 20, 0, 30, b"efgh") == b"\x83" + u24(20) + b"efgh"
    assert writer.write(3, 20, 0, 50, b"ijkl") == b"\xc3" + b"ijkl"
    assert writer.write(3, 20, 1, 50, b"ijkl")[0] == 0x03
    assert writer.write(3, 20, 1, 40, b"ijkl")[0] == 0x03


def test_writer_repeats_the_extended_timestamp_on_continuation_chunks() -> None:
    writer = ChunkWriter(chunk_size=4)
    data = writer.write(5, 9, 1, 0x01020304, b"abcdefghij")
    ext = b"\x01\x02\x03\x04"
    assert data == b"\x05\xff\xff\xff" + u24(10) + b"\x09" + b"\x01\x00\x00\x00" + ext + b"abcd" + (
        b"\xc5" + ext + b"efgh" + b"\xc5" + ext + b"ij"
    )


def test_writer_refuses_local_mistakes() -> None:
    with pytest.raises(LocalProtocolError):
        ChunkWriter(chunk_size=0)
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(1, 20, 0, 0, b"")
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(65600, 20, 0, 0, b"")
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(3, 20, 0, 0, bytes(0x1000000))


outgoing = st.tuples(
    st.sampled_from([2, 3, 5, 63, 64, 319, 320, 65599]),
    st.sampled_from([8, 9, 18, 20]),
    st.integers(0, 2),
    st.one_of(st.integers(0, 100), st.integers(0, 0xFFFFFFFF), st.just(0), st.just(33)),
    st.one_of(st.binary(max_size=700), st.just(b"same-size!")),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(outgoing, min_size=1, max_size=12),
    st.integers(1, 800),
    st.data(),
)
def test_writer_output_reads_back(
    batch: list[tuple[int, int, int, int, bytes]], chunk_size: int, data: st.DataObject
) -> None:
    writer = ChunkWriter()
    parts = [writer.write(2, 1, 0, 0, struct.pack(">I", chunk_size))]
    writer.chunk_size = chunk_size
    last: dict[int, int] = {}
    expected = []
    for csid, type_id, msid, step, payload in batch:
        timestamp = (last.get(csid, 0) + step) & 0xFFFFFFFF
        last[csid] = timestamp
        parts.append(writer.write(csid, type_id, msid, timestamp, payload))
        expected.append(Message(csid, type_id, msid, timestamp, payload))
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = ChunkReader()
    pending = bytearray()
    got: list[Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pending += stream[start:end]
        messages, consumed = reader.read(pending)
        del pending[:consumed]
        got.extend(messages)
    assert not pending
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(outgoing, min_size=1, max_size=12),
    st.integers(1, 800),
    st.data(),
)
def test_bytes_reads_leave_at_most_a_chunk_header_behind(
    batch: list[tuple[int, int, int, int, bytes]], chunk_size: int, data: st.DataObject
) -> None:
    # Like the connection: immutable reads, only the unconsumed tail carried over to the next one.
    writer = ChunkWriter()
    parts = [writer.write(2, 1, 0, 0, struct.pack(">I", chunk_size))]
    writer.chunk_size = chunk_size
    expected = []
    for csid, type_id, msid, timestamp, payload in batch:
        parts.append(writer.write(csid, type_id, msid, timestamp, payload))
        expected.append(Message(csid, type_id, msid, timestamp & 0xFFFFFFFF, payload))
    stream = b"".join(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = ChunkReader()
    tail = b""
    got: list[Message] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        piece = tail + stream[start:end]
        messages, consumed = reader.read(piece)
        tail = piece[consumed:]
        # 3-byte basic header + 11-byte message header + 4-byte extended timestamp.
        assert len(tail) < 18
        got.extend(messages)
    assert not tail
    assert got == expected


def test_message_split_inside_a_chunk_completes_from_the_next_buffers() -> None:
    payload = bytes(range(256)) * 2
    data = fmt0(6, 40, len(payload), 9, 1)
    for start in range(0, len(payload), 128):
        data += (b"" if start == 0 else b"\xc6") + payload[start : start + 128]
    reader = ChunkReader()
    first, consumed = reader.read(data[:20])
    assert (first, consumed) == ([], 20)
    second, consumed = reader.read(data[20:300])
    assert (second, consumed) == ([], 280)
    third, consumed = reader.read(bytearray(data[300:]))
    assert third == [Message(6, 9, 1, 40, payload)]
    assert consumed == len(data) - 300


@pytest.mark.parametrize("chunk_size", [1, 4096])
def test_a_message_trickling_in_byte_by_byte_holds_about_its_size(chunk_size: int) -> None:
    writer = ChunkWriter()
    payload = bytes(range(256)) * 64
    data = writer.write(2, 1, 0, 0, struct.pack(">I", chunk_size))
    writer.chunk_size = chunk_size
    data += writer.write(6, 9, 1, 0, payload)
    reader = ChunkReader()
    tail = b""
    tracemalloc.start()
    try:
        for index in range(len(data) - 1):
            piece = tail + data[index : index + 1]
            messages, consumed = reader.read(piece)
            tail = piece[consumed:]
            assert not messages
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # An object per received byte would take ~40 times the payload.
    assert peak < 3 * len(payload)
    assert reader.read(tail + data[-1:]) == ([Message(6, 9, 1, 0, payload)], len(tail) + 1)


@settings(deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_remote_protocol_error(data: bytes) -> None:
    reader = ChunkReader(max_message_size=4096)
    try:
        messages, consumed = reader.read(data)
    except RemoteProtocolError:
        return
    assert 0 <= consumed <= len(data)
    assert all(isinstance(m, Message) for m in messages)
