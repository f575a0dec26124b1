"""RtmpConnection end to end: real ffmpeg publishes, our replies, decisions, control, hostile input."""

from __future__ import annotations

import pathlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from streamit.rtmp import (
    AcknowledgementReceived,
    AudioReceived,
    ChunkReader,
    ChunkWriter,
    CommandReceived,
    ConnectRequested,
    Event,
    Message,
    MetaDataReceived,
    PingResponded,
    PublishRequested,
    PublishStopped,
    RtmpConnection,
    StreamCreated,
    StreamDeleted,
    VideoReceived,
)
from streamit.rtmp.amf0 import UNDEFINED, EcmaArray, encode_amf0_all
from streamit.rtmp.messages import decode_amf_values

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "rtmp"
HANDSHAKE_BYTES = 1 + 1536 + 1536


def drive(connection: RtmpConnection, into: list[Event]) -> None:
    """The I/O layer's part: take every event, accepting connect and publish."""
    while (event := connection.next_event()) is not None:
        into.append(event)
        if isinstance(event, ConnectRequested):
            connection.accept_connect(event.transaction_id)
        elif isinstance(event, PublishRequested):
            connection.accept_publish(event.stream_id)


def replay(data: bytes, step: int | None = None) -> tuple[RtmpConnection, list[Event], bytes]:
    connection = RtmpConnection()
    events: list[Event] = []
    sent: list[bytes] = []
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        connection.receive_data(piece)
        drive(connection, events)
        sent.append(connection.data_to_send())
    return connection, events, b"".join(sent)


def server_messages(sent: bytes, reader: ChunkReader | None = None) -> list[Message]:
    """What a client would read from our bytes (after S0+S1+S2); Set Chunk Size is applied by the reader."""
    messages, consumed = (reader or ChunkReader()).read(sent[HANDSHAKE_BYTES:])
    assert consumed == len(sent) - HANDSHAKE_BYTES
    return messages


def commands(messages: list[Message]) -> list[list[Any]]:
    return [decode_amf_values(m.type_id, m.payload) for m in messages if m.type_id == 20]


def check_publish_events(events: list[Event], first_media_timestamp: int) -> None:
    connect, created, publish, metadata = events[:4]
    assert isinstance(connect, ConnectRequested)
    assert connect.app == "live"
    assert connect.transaction_id == 1.0
    assert connect.flash_ver.startswith("FMLE/3.0")
    assert connect.tc_url.endswith("/live")
    assert created == StreamCreated(1)
    assert publish == PublishRequested(1, 5.0, "key", "live")
    assert isinstance(metadata, MetaDataReceived)
    assert metadata.values["width"] == 320.0
    assert metadata.values["height"] == 180.0
    assert events[-2:] == [PublishStopped(1), StreamDeleted(1)]
    media = events[4:-2]
    assert all(isinstance(e, VideoReceived | AudioReceived) and e.stream_id == 1 for e in media)
    video = [e for e in media if isinstance(e, VideoReceived)]
    audio = [e for e in media if isinstance(e, AudioReceived)]
    assert (len(video), len(audio)) == (62, 96)
    assert video[0].payload[:2] == b"\x17\x00"
    assert audio[0].payload[:2] == b"\xaf\x00"
    # Sequence headers are stamped 0; the media after them is monotone.
    for track in (video, audio):
        stamps = [e.timestamp for e in track[1:]]
        assert stamps == sorted(stamps)
    assert video[1].timestamp == first_media_timestamp


@pytest.fixture(scope="module")
def capture() -> bytes:
    return (FIXTURES / "ffmpeg_publish.bin").read_bytes()


def test_real_ffmpeg_publish_whole(capture: bytes) -> None:
    connection, events, _ = replay(capture)
    check_publish_events(events, first_media_timestamp=21)
    assert connection.bytes_received == len(capture)
    assert connection.dropped_messages == 0


def test_real_ffmpeg_publish_one_byte_at_a_time(capture: bytes) -> None:
    _, whole, _ = replay(capture)
    _, bytewise, _ = replay(capture, step=1)
    assert bytewise == whole


@pytest.mark.parametrize("step", [7, 100, 1000, 4097, 12288])
def test_real_ffmpeg_publish_in_reads_of_any_size(capture: bytes, step: int) -> None:
    _, whole, _ = replay(capture)
    _, pieces, _ = replay(capture, step=step)
    assert pieces == whole


def test_real_ffmpeg_publish_with_extended_timestamps() -> None:
    _, events, _ = replay((FIXTURES / "ffmpeg_publish_extended_ts.bin").read_bytes())
    check_publish_events(events, first_media_timestamp=16_780_000)


def test_trailing_garbage_raises_after_delivering_everything_before_it(capture: bytes) -> None:
    connection = RtmpConnection()
    with pytest.raises(RemoteProtocolError):
        connection.receive_data(capture + b"\xff" * 16)
    events: list[Event] = []
    drive(connection, events)
    check_publish_events(events, first_media_timestamp=21)
    assert connection.failed
    with pytest.raises(LocalProtocolError):
        connection.receive_data(b"")


def test_trailing_partial_chunk_is_left_pending(capture: bytes) -> None:
    connection, events, _ = replay(capture + b"\x04\x00\x00\x10")
    check_publish_events(events, first_media_timestamp=21)
    assert not connection.failed


def test_replies_to_ffmpeg(capture: bytes) -> None:
    # Fed byte by byte, like a live peer that waits for our replies (a whole capture fed at once would reach
    # deleteStream before the publish decision, turning accept_publish into a no-op).
    _, _, sent = replay(capture, step=1)
    assert sent[0] == 3
    reader = ChunkReader()
    messages = server_messages(sent, reader)
    control = [(m.type_id, m.payload) for m in messages[:2]]
    assert control == [(5, struct.pack(">I", 2_500_000)), (6, struct.pack(">IB", 2_500_000, 2))]
    # Set Chunk Size 4096: a type-1 header on chunk stream 2 (the reader applies it, never returns it).
    assert bytes.fromhex("420000000000040100001000") in sent
    assert reader.chunk_size == 4096
    calls = commands(messages)
    connect_result = calls[0]
    assert connect_result[:2] == ["_result", 1.0]
    assert connect_result[3]["code"] == "NetConnection.Connect.Success"
    assert connect_result[3]["objectEncoding"] == 0.0
    assert ["_result", 2.0, None, UNDEFINED] in calls  # releaseStream
    assert ["onFCPublish", 0.0, None, {"code": "NetStream.Publish.Start", "description": "key"}] in calls
    assert ["_result", 4.0, None, 1.0] in calls  # createStream
    start = [m for m in messages if m.type_id == 20 and m.stream_id == 1]
    assert len(start) == 1
    assert decode_amf_values(20, start[0].payload)[3]["code"] == "NetStream.Publish.Start"
    stream_begin = [m for m in messages if m.type_id == 4]
    assert stream_begin[0].payload == b"\x00\x00\x00\x00\x00\x01"
    assert [c[:2] for c in calls[-3:]] == [["onFCUnpublish", 0.0], ["_result", 6.0], ["_result", 7.0]]


class Client:
    """A scripted publisher: plain handshake, then chunks written with our own ChunkWriter."""

    def __init__(self, **options: Any) -> None:
        self.connection = RtmpConnection(**options)
        self.writer = ChunkWriter()
        self.received = bytearray()
        self.reader = ChunkReader()
        self.events: list[Event] = []
        self.connection.receive_data(b"\x03" + bytes(1536))
        self.connection.receive_data(bytes(1536))
        assert len(self.connection.data_to_send()) == HANDSHAKE_BYTES

    def send(self, csid: int, type_id: int, msid: int, timestamp: int, payload: bytes) -> None:
        self.connection.receive_data(self.writer.write(csid, type_id, msid, timestamp, payload))

    def call(self, name: str, transaction_id: float, *values: Any, msid: int = 0) -> None:
        self.send(3, 20, msid, 0, encode_amf0_all(name, transaction_id, *values))

    def take(self) -> list[Event]:
        events = []
        while (event := self.connection.next_event()) is not None:
            events.append(event)
        return events

    def replies(self) -> list[Message]:
        self.received += self.connection.data_to_send()
        messages, consumed = self.reader.read(self.received)
        del self.received[:consumed]
        return messages

    def connect(self) -> None:
        self.call("connect", 1, {"app": "live", "tcUrl": "rtmp://h/live", "objectEncoding": 0})
        (event,) = self.take()
        assert isinstance(event, ConnectRequested)
        self.connection.accept_connect(1)

    def publish(self, accept: bool = True) -> int:
        self.call("createStream", 2, None)
        (created,) = self.take()
        assert isinstance(created, StreamCreated)
        self.call("publish", 3, None, "key?token=abc", "live", msid=created.stream_id)
        assert self.take() == [PublishRequested(created.stream_id, 3.0, "key?token=abc", "live")]
        if accept:
            self.connection.accept_publish(created.stream_id)
        return created.stream_id


def test_decisions_and_routine_replies() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish()
    calls = commands(client.replies())
    assert calls[0][:2] == ["_result", 1.0]
    assert calls[1] == ["_result", 2.0, None, 1.0]
    assert calls[2][3] == {
        "level": "status",
        "code": "NetStream.Publish.Start",
        "description": "key?token=abc is now published.",
    }
    client.send(6, 9, stream_id, 40, b"\x17\x01data")
    client.send(4, 8, stream_id, 41, b"\xaf\x01aac")
    assert client.take() == [VideoReceived(1, 40, b"\x17\x01data"), AudioReceived(1, 41, b"\xaf\x01aac")]


def test_messages_after_a_pending_connect_wait_for_the_decision() -> None:
    client = Client()
    client.call("connect", 1, {"app": "live"})
    client.call("createStream", 2, None)
    assert [type(e) for e in client.take()] == [ConnectRequested]
    assert client.replies() == []
    client.connection.accept_connect(1)
    assert client.take() == [StreamCreated(1)]
    calls = commands(client.replies())
    assert [c[:2] for c in calls] == [["_result", 1.0], ["_result", 2.0]]


def test_reject_connect_ignores_later_commands() -> None:
    client = Client()
    client.call("connect", 7, {"app": "nope"})
    client.call("createStream", 2, None)
    client.take()
    client.connection.reject_connect(7, "unknown app")
    (reply,) = commands(client.replies())
    assert reply[:3] == ["_error", 7.0, None]
    assert reply[3]["code"] == "NetConnection.Connect.Rejected"
    assert reply[3]["description"] == "unknown app"
    client.call("createStream", 3, None)
    assert client.take() == []
    with pytest.raises(LocalProtocolError):
        client.connection.accept_connect(7)


def test_decisions_out_of_turn_are_local_errors() -> None:
    client = Client()
    with pytest.raises(LocalProtocolError):
        client.connection.accept_connect(1)
    client.connect()
    with pytest.raises(LocalProtocolError):
        client.connection.accept_publish(1)


def test_media_outside_a_publish_is_dropped_and_counted() -> None:
    client = Client()
    client.connect()
    client.call("createStream", 2, None)
    client.take()
    client.send(6, 9, 1, 0, b"\x17\x00early")
    client.send(6, 9, 7, 0, b"\x17\x00nostream")
    client.send(6, 9, 1, 0, b"")
    assert client.take() == []
    assert client.connection.dropped_messages == 3


def test_reject_publish_drops_queued_and_future_media() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish(accept=False)
    client.send(6, 9, stream_id, 0, b"\x17\x00queued")
    client.connection.reject_publish(stream_id, "bad key", code="NetStream.Publish.Unauthorized")
    assert client.take() == []
    client.send(6, 9, stream_id, 33, b"\x17\x01later")
    assert client.take() == []
    assert client.connection.dropped_messages == 2
    status = commands(client.replies())[-1]
    assert status[0] == "onStatus"
    assert status[3] == {"level": "error", "code": "NetStream.Publish.Unauthorized", "description": "bad key"}


def test_end_publish_sends_unpublish_success_and_stops_media() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish()
    client.connection.end_publish(stream_id, "taken over")
    assert commands(client.replies())[-1][3] == {
        "level": "status",
        "code": "NetStream.Unpublish.Success",
        "description": "taken over",
    }
    client.send(6, 9, stream_id, 0, b"\x17\x01x")
    assert client.take() == []
    client.call("FCUnpublish", 0, None, "key?token=abc")
    assert client.take() == []


def test_publish_stopped_is_emitted_once() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish()
    client.call("FCUnpublish", 6, None, "key")
    client.call("closeStream", 0, None, msid=stream_id)
    client.call("deleteStream", 7, None, float(stream_id))
    assert client.take() == [PublishStopped(stream_id), StreamDeleted(stream_id)]
    calls = commands(client.replies())
    assert [
        "onFCUnpublish",
        0.0,
        None,
        {"code": "NetStream.Unpublish.Success", "description": "key"},
    ] in calls
    assert ["_result", 7.0, None, UNDEFINED] in calls
    client.connection.accept_publish(stream_id)
    assert client.replies() == []


def test_close_stream_stops_and_allows_a_new_publish() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish()
    client.call("closeStream", 0, None, msid=stream_id)
    assert client.take() == [PublishStopped(stream_id)]
    client.call("publish", 9, None, "again", "live", msid=stream_id)
    assert client.take() == [PublishRequested(stream_id, 9.0, "again", "live")]


def test_metadata_from_set_data_frame_and_plain_on_meta_data() -> None:
    client = Client()
    client.connect()
    stream_id = client.publish()
    client.send(5, 18, stream_id, 0, encode_amf0_all("@setDataFrame", "onMetaData", EcmaArray(width=320.0)))
    client.send(5, 18, stream_id, 10, encode_amf0_all("onMetaData", {"height": 180.0}))
    client.send(5, 18, stream_id, 10, encode_amf0_all("onCuePoint", {"x": 1.0}))
    events = client.take()
    assert events == [
        MetaDataReceived(stream_id, 0, {"width": 320.0}),
        MetaDataReceived(stream_id, 10, {"height": 180.0}),
    ]
    assert type(events[0].values) is dict  # type: ignore[union-attr]


def test_aggregate_messages_are_split() -> None:
    def tag(type_id: int, ts: int, body: bytes) -> bytes:
        header = bytes([type_id]) + len(body).to_bytes(3, "big") + ts.to_bytes(3, "big") + b"\x00" + bytes(3)
        return header + body + struct.pack(">I", len(body) + 11)

    client = Client()
    client.connect()
    stream_id = client.publish()
    client.send(7, 22, stream_id, 1000, tag(9, 500, b"\x17\x01v") + tag(8, 520, b"\xaf\x01a"))
    assert client.take() == [
        VideoReceived(stream_id, 1000, b"\x17\x01v"),
        AudioReceived(stream_id, 1020, b"\xaf\x01a"),
    ]


def test_pings_both_ways() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.send(2, 4, 0, 0, b"\x00\x06\x00\x00\x30\x39")
    (pong,) = client.replies()
    assert (pong.type_id, pong.payload) == (4, b"\x00\x07\x00\x00\x30\x39")
    client.connection.send_ping(777)
    (ping,) = client.replies()
    assert ping.payload == b"\x00\x06" + struct.pack(">I", 777)
    client.send(2, 4, 0, 0, b"\x00\x07" + struct.pack(">I", 777))
    assert client.take() == [PingResponded(777)]


def test_acknowledgements_follow_the_peer_window() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.send(2, 5, 0, 0, struct.pack(">I", 5000))
    client.call("getStreamLength", 0, None, "x")
    assert client.replies() == []
    client.send(2, 3, 0, 0, struct.pack(">I", 1234))
    assert client.take() == [AcknowledgementReceived(1234)]
    client.call("customCall", 0, None, "x" * 3000)
    (ack,) = client.replies()
    assert ack.type_id == 3
    assert struct.unpack(">I", ack.payload)[0] == client.connection.bytes_received
    client.call("customCall", 0, None, "y")
    assert client.replies() == []


def test_other_commands_are_reported_and_bandwidth_checks_tolerated() -> None:
    client = Client()
    client.connect()
    client.replies()
    client.call("checkBandwidth", 0, None)
    client.call("_checkbw", 0, None)
    client.call("releaseStream", 2, None, "key")
    client.call("play", 3, None, "key", -2000.0)
    assert client.take() == [CommandReceived("play", 3.0, (None, "key", -2000.0))]
    assert commands(client.replies()) == [["_result", 2.0, None, UNDEFINED]]


def test_amf3_connect_echoes_object_encoding() -> None:
    client = Client()
    body = b"\x00" + encode_amf0_all("connect", 1, {"app": "live", "objectEncoding": 3.0})
    client.send(3, 17, 0, 0, body)
    (event,) = client.take()
    assert isinstance(event, ConnectRequested)
    assert event.object_encoding == 3.0
    client.connection.accept_connect(1)
    assert commands(client.replies())[0][3]["objectEncoding"] == 3.0


@pytest.mark.parametrize(
    "script",
    [
        [("createStream", 2, (None,), 0)],
        [("connect", 1, ("not an object",), 0)],
        [("connect", 1, ({"app": "live"},), 0), ("connect", 2, ({"app": "live"},), 0)],
        [("connect", 1, ({"app": "live"},), 0), ("publish", 2, (None, "key"), 1)],
    ],
)
def test_command_protocol_violations(script: list[tuple[str, int, tuple[Any, ...], int]]) -> None:
    client = Client()
    with pytest.raises(RemoteProtocolError):
        for name, transaction, values, msid in script:
            client.call(name, transaction, *values, msid=msid)
            for event in client.take():
                if isinstance(event, ConnectRequested):
                    client.connection.accept_connect(event.transaction_id)


def test_errors_in_messages_held_during_connect_surface_on_the_next_receive() -> None:
    client = Client()
    client.call("connect", 1, {"app": "live"})
    client.send(2, 4, 0, 0, b"\x00")
    client.take()
    client.connection.accept_connect(1)
    with pytest.raises(RemoteProtocolError):
        client.connection.receive_data(b"")


def test_message_size_cap() -> None:
    client = Client(max_message_size=1000)
    with pytest.raises(MessageTooLarge):
        client.send(6, 9, 1, 0, bytes(1001))


def test_stream_count_is_capped() -> None:
    client = Client()
    client.connect()
    with pytest.raises(RemoteProtocolError):
        for transaction in range(2, 100):
            client.call("createStream", transaction, None)


def test_three_megabit_stream_in_socket_sized_reads_delivers_every_message() -> None:
    # The CPU cost of this workload is measured by bench/micro.py, not asserted here.
    writer = ChunkWriter()
    parts = [writer.write(2, 1, 0, 0, struct.pack(">I", 4096))]
    writer.chunk_size = 4096
    seconds = 4
    frame = b"\x27\x01" + bytes(12_500 - 2)  # 30 fps x 12.5 kB = 3 Mbit/s
    audio = b"\xaf\x01" + bytes(370)
    for index in range(30 * seconds):
        parts.append(writer.write(6, 9, 1, index * 33, frame))
        if index % 2 == 0:
            parts.append(writer.write(4, 8, 1, index * 33, audio))
            parts.append(writer.write(4, 8, 1, index * 33 + 21, audio))
    data = b"".join(parts)
    client = Client()
    client.connect()
    client.publish()
    connection = client.connection
    videos: list[VideoReceived] = []
    audios: list[AudioReceived] = []
    for offset in range(0, len(data), 16384):
        connection.receive_data(data[offset : offset + 16384])
        while (event := connection.next_event()) is not None:
            if isinstance(event, VideoReceived):
                videos.append(event)
            elif isinstance(event, AudioReceived):
                audios.append(event)
    assert connection.dropped_messages == 0
    assert [v.timestamp for v in videos] == [i * 33 for i in range(30 * seconds)]
    assert all(v.payload == frame for v in videos)
    assert len(audios) == 30 * seconds and all(a.payload == audio for a in audios)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=600), st.booleans(), st.integers(1, 64))
def test_arbitrary_bytes_after_the_handshake_only_raise_remote_protocol_errors(
    data: bytes, connected: bool, step: int
) -> None:
    client = Client()
    if connected:
        client.connect()
    try:
        for start in range(0, len(data), step):
            client.connection.receive_data(data[start : start + step])
            for event in client.take():
                if isinstance(event, ConnectRequested):
                    client.connection.accept_connect(event.transaction_id)
                elif isinstance(event, PublishRequested):
                    client.connection.accept_publish(event.stream_id)
            client.connection.data_to_send()
    except RemoteProtocolError:
        pass
