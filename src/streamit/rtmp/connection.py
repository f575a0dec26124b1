"""The server side of one RTMP connection, sans I/O: bytes in, events and bytes out.

The I/O layer feeds received bytes to :meth:`RtmpConnection.receive_data`, pulls events with
:meth:`~RtmpConnection.next_event`, answers the two decisions that are its business (``connect`` and
``publish``) and writes :meth:`~RtmpConnection.data_to_send`.  Everything else — the handshake, chunking,
acknowledgements, pings and the routine replies to ``createStream``, ``releaseStream``, ``FCPublish``,
``FCUnpublish`` and ``deleteStream`` — is done here.

While a ``connect`` decision is pending, the messages that follow it are held back and processed once the
decision is made, so that our replies leave in the order the client expects.  A protocol error found while
processing those held messages (inside :meth:`accept_connect`) is raised by the next :meth:`receive_data`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from streamit.errors import LocalProtocolError, MessageTooLarge, RemoteProtocolError
from streamit.rtmp.amf0 import UNDEFINED
from streamit.rtmp.chunk import ChunkReader, ChunkWriter, RawMessage
from streamit.rtmp.events import (
    AcknowledgementReceived,
    AudioReceived,
    CommandReceived,
    ConnectRequested,
    Event,
    MetaDataReceived,
    PingResponded,
    PublishRequested,
    PublishStopped,
    StreamCreated,
    StreamDeleted,
    VideoReceived,
)
from streamit.rtmp.handshake import ServerHandshake
from streamit.rtmp.messages import (
    COMMAND_CHUNK_STREAM,
    CONTROL_CHUNK_STREAM,
    STATUS_CHUNK_STREAM,
    Command,
    MessageType,
    PeerBandwidthLimit,
    UserControlEvent,
    decode_amf_values,
    decode_command,
    decode_uint32,
    decode_user_control,
    encode_acknowledgement,
    encode_command,
    encode_set_chunk_size,
    encode_set_peer_bandwidth,
    encode_user_control,
    encode_window_ack_size,
    split_aggregate,
)

MAX_STREAMS: Final = 64
"""Message streams one connection may hold at once; more is refused as abuse."""
MAX_AMF_MESSAGE_SIZE: Final = 64 * 1024
"""Largest command or data message decoded.  AMF decoding costs about 1 µs and up to ~70 bytes of Python
objects per input byte, so an 8 MiB command of empty objects (found by fuzzing) would block the event loop
for seconds and allocate ~250 MB; real commands and ``onMetaData`` are well under a kilobyte."""

SERVER_PROPERTIES: Final = {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0, "mode": 1.0}

_BYTE_COUNTER_WRAP: Final = 1 << 32
_VIDEO: Final = int(MessageType.VIDEO)
_AUDIO: Final = int(MessageType.AUDIO)


class ConnectionState(enum.Enum):
    """Where the connection stands."""

    HANDSHAKE = "handshake"
    AWAITING_CONNECT = "awaiting connect"
    CONNECT_PENDING = "connect pending"
    CONNECTED = "connected"
    REJECTED = "rejected"


# Module constants for the per-read and per-message checks: on Python 3.11 an Enum member lookup goes
# through the slot hook that EnumType.__getattr__ installs (about a thousand instructions).
_HANDSHAKE: Final = ConnectionState.HANDSHAKE
_CONNECT_PENDING: Final = ConnectionState.CONNECT_PENDING


class StreamState(enum.Enum):
    """The publish state of one message stream."""

    IDLE = "idle"
    PUBLISH_PENDING = "publish pending"
    PUBLISHING = "publishing"
    REJECTED = "rejected"
    ENDED = "ended"


_ACCEPTS_MEDIA: Final = frozenset((StreamState.PUBLISH_PENDING, StreamState.PUBLISHING))


class _MessageStream:
    __slots__ = ("_state", "accepts_media", "name")

    def __init__(self) -> None:
        self._state = StreamState.IDLE
        self.accepts_media = False
        """Whether the state is in ``_ACCEPTS_MEDIA``: a plain bool for the per-message check."""
        self.name = ""

    @property
    def state(self) -> StreamState:
        return self._state

    @state.setter
    def state(self, state: StreamState) -> None:
        self._state = state
        self.accepts_media = state in _ACCEPTS_MEDIA


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


class RtmpConnection:
    """One RTMP connection in the server role (publishers)."""

    def __init__(
        self,
        *,
        max_message_size: int = 8 * 1024 * 1024,
        out_chunk_size: int = 4096,
        window_ack_size: int = 2_500_000,
        peer_bandwidth: int = 2_500_000,
    ) -> None:
        self._handshake = ServerHandshake()
        self._reader = ChunkReader(max_message_size=max_message_size)
        self._writer = ChunkWriter()
        if not 1 <= out_chunk_size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"invalid chunk size {out_chunk_size}")
        self._out_chunk_size = out_chunk_size
        self._window_ack_size = window_ack_size
        self._peer_bandwidth = peer_bandwidth
        self._inbox = bytearray()
        self._outbox: list[bytes] = []
        self._events: deque[Event] = deque()
        self._held: deque[RawMessage] = deque()
        self._deferred_error: RemoteProtocolError | None = None
        self._bytes_received = 0
        self._acknowledged = 0
        self._ack_window = 0
        self._object_encoding = 0.0
        self._streams: dict[int, _MessageStream] = {}
        self._next_stream_id = 1
        self.state = ConnectionState.HANDSHAKE
        self.failed = False
        """Set once :meth:`receive_data` raised; events queued before the error can still be taken."""
        self.dropped_messages = 0
        """Media and metadata messages dropped: their stream was not publishing, or metadata too large."""
        self._command_handlers: dict[str, Callable[[int, Command], None]] = {
            "connect": self._on_connect,
            "createStream": self._on_create_stream,
            "publish": self._on_publish,
            "releaseStream": self._on_routine_call,
            "FCPublish": self._on_fc_publish,
            "FCUnpublish": self._on_fc_unpublish,
            "closeStream": self._on_close_stream,
            "deleteStream": self._on_delete_stream,
            "getStreamLength": self._on_routine_call,
            "checkBandwidth": self._on_routine_call,
            "_checkbw": self._on_routine_call,
        }

    @property
    def bytes_received(self) -> int:
        """Every byte fed to :meth:`receive_data`, handshake included."""
        return self._bytes_received

    @property
    def chunk_size_in(self) -> int:
        """The chunk size the peer currently uses."""
        return self._reader.chunk_size

    # --- the I/O side ------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """Process bytes from the peer; ``now`` is a clock in seconds (only used for the S1 timestamp).

        Raises :class:`~streamit.errors.RemoteProtocolError` (or a subclass) if the peer broke the protocol;
        the connection is then unusable, but events parsed before the error stay available.
        """
        if self.failed:
            raise LocalProtocolError("receive_data called after the connection failed")
        if self._deferred_error is not None:
            self.failed = True
            raise self._deferred_error
        try:
            self._receive(data, now)
        except RemoteProtocolError:
            self.failed = True
            raise

    def next_event(self) -> Event | None:
        """The oldest undelivered event, or ``None``."""
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer (then forgotten here)."""
        if not self._outbox:
            return b""
        out = b"".join(self._outbox)
        self._outbox.clear()
        return out

    # --- decisions -----------------------------------------------------------------------------------

    def accept_connect(self, transaction_id: float) -> None:
        """Accept ``connect``: window, peer bandwidth, our chunk size, then ``_result`` Connect.Success."""
        if self.state is not ConnectionState.CONNECT_PENDING:
            raise LocalProtocolError(f"accept_connect in state {self.state.value}")
        self._send_control(MessageType.WINDOW_ACK_SIZE, encode_window_ack_size(self._window_ack_size))
        self._send_control(
            MessageType.SET_PEER_BANDWIDTH,
            encode_set_peer_bandwidth(self._peer_bandwidth, PeerBandwidthLimit.DYNAMIC),
        )
        self._send_control(MessageType.SET_CHUNK_SIZE, encode_set_chunk_size(self._out_chunk_size))
        self._writer.chunk_size = self._out_chunk_size
        info = {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": self._object_encoding,
        }
        self._send_command(0, "_result", transaction_id, dict(SERVER_PROPERTIES), info)
        self.state = ConnectionState.CONNECTED
        held = self._held
        try:
            while held:
                self._dispatch(*held.popleft())
        except RemoteProtocolError as exc:
            held.clear()
            self._deferred_error = exc

    def reject_connect(self, transaction_id: float, description: str) -> None:
        """Refuse ``connect`` with ``_error`` NetConnection.Connect.Rejected; later messages are ignored."""
        if self.state is not ConnectionState.CONNECT_PENDING:
            raise LocalProtocolError(f"reject_connect in state {self.state.value}")
        info = {"level": "error", "code": "NetConnection.Connect.Rejected", "description": description}
        self._send_command(0, "_error", transaction_id, None, info)
        self.state = ConnectionState.REJECTED
        self._held.clear()

    def accept_publish(self, stream_id: int) -> None:
        """Start the publish: User Control StreamBegin and ``onStatus`` NetStream.Publish.Start.

        A no-op if the client already stopped the publish or deleted the stream.
        """
        stream = self._decided_stream(stream_id)
        if stream is None or stream.state is not StreamState.PUBLISH_PENDING:
            return
        self._send_control(
            MessageType.USER_CONTROL, encode_user_control(UserControlEvent.STREAM_BEGIN, stream_id)
        )
        self._send_status(stream_id, "status", "NetStream.Publish.Start", f"{stream.name} is now published.")
        stream.state = StreamState.PUBLISHING

    def reject_publish(
        self, stream_id: int, description: str, code: str = "NetStream.Publish.BadName"
    ) -> None:
        """Refuse the publish with an error-level ``onStatus``; its queued and future media are dropped."""
        stream = self._decided_stream(stream_id)
        kept: deque[Event] = deque()
        for event in self._events:
            if isinstance(event, VideoReceived | AudioReceived | MetaDataReceived | PublishStopped) and (
                event.stream_id == stream_id
            ):
                if not isinstance(event, PublishStopped):
                    self.dropped_messages += 1
                continue
            kept.append(event)
        self._events = kept
        if stream is None or stream.state is not StreamState.PUBLISH_PENDING:
            return
        self._send_status(stream_id, "error", code, description)
        stream.state = StreamState.REJECTED

    def end_publish(self, stream_id: int, description: str) -> None:
        """End an accepted publish from our side with ``onStatus`` NetStream.Unpublish.Success."""
        stream = self._decided_stream(stream_id)
        if stream is None or stream.state is not StreamState.PUBLISHING:
            return
        self._send_status(stream_id, "status", "NetStream.Unpublish.Success", description)
        stream.state = StreamState.ENDED

    def send_ping(self, timestamp: int) -> None:
        """Send a User Control PingRequest; the answer arrives as :class:`PingResponded`."""
        self._send_control(
            MessageType.USER_CONTROL, encode_user_control(UserControlEvent.PING_REQUEST, timestamp)
        )

    # --- internals -----------------------------------------------------------------------------------

    def _decided_stream(self, stream_id: int) -> _MessageStream | None:
        if not 1 <= stream_id < self._next_stream_id:
            raise LocalProtocolError(f"message stream {stream_id} was never created")
        return self._streams.get(stream_id)

    def _receive(self, data: bytes, now: float) -> None:
        self._bytes_received += len(data)
        inbox = self._inbox
        if self.state is _HANDSHAKE:
            handshake = self._handshake
            inbox += data
            data = b""
            while not handshake.complete:
                consumed, reply = handshake.receive(inbox, now)
                if not consumed:
                    return
                del inbox[:consumed]
                if reply:
                    self._outbox.append(reply)
            self.state = ConnectionState.AWAITING_CONNECT
        # The reader keeps the data of an unfinished chunk itself; only the handshake's leftovers or an
        # incomplete chunk header wait here, so received bytes are mostly parsed in place.
        if inbox:
            source = b"".join((inbox, data))
            inbox.clear()
        else:
            source = data
        if source:
            messages: list[RawMessage] = []
            consumed = 0
            try:
                consumed = self._reader.read_raw(source, messages)
            finally:
                # Messages completed before a chunk-level error are still processed, then the error is raised.
                streams = self._streams
                events = self._events
                for message in messages:
                    _, type_id, stream_id, timestamp, payload = message
                    if self.state is _CONNECT_PENDING:
                        self._held.append(message)
                        continue
                    # The common case first: media of a publishing stream becomes its event directly.
                    if type_id == _VIDEO or type_id == _AUDIO:  # noqa: SIM109 (no tuple built per message)
                        stream = streams.get(stream_id)
                        if stream is not None and stream.accepts_media and payload:
                            if type_id == _VIDEO:
                                events.append(VideoReceived(stream_id, timestamp, payload))
                            else:
                                events.append(AudioReceived(stream_id, timestamp, payload))
                            continue
                    self._dispatch(*message)
            if consumed < len(source):
                inbox += source[consumed:]
        window = self._ack_window
        # RTMP 1.0 §5.4.3: acknowledge each time another window's worth of bytes has arrived.
        if window and self._bytes_received - self._acknowledged >= window:
            self._acknowledged = self._bytes_received
            self._send_control(
                MessageType.ACKNOWLEDGEMENT, encode_acknowledgement(self._bytes_received % _BYTE_COUNTER_WRAP)
            )

    def _dispatch(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> None:
        if type_id in (_VIDEO, _AUDIO):
            self._on_media(stream_id, type_id, timestamp, payload)
        elif type_id == MessageType.COMMAND_AMF0 or type_id == MessageType.COMMAND_AMF3:
            if self.state is not ConnectionState.REJECTED:
                if len(payload) > MAX_AMF_MESSAGE_SIZE:
                    raise MessageTooLarge(f"command message of {len(payload)} bytes")
                self._on_command(stream_id, decode_command(type_id, payload))
        elif type_id == MessageType.DATA_AMF0 or type_id == MessageType.DATA_AMF3:
            self._on_data(stream_id, type_id, timestamp, payload)
        elif type_id == MessageType.AGGREGATE:
            for sub in split_aggregate(payload, timestamp):
                if sub.type_id in (MessageType.VIDEO, MessageType.AUDIO):
                    self._on_media(stream_id, sub.type_id, sub.timestamp, sub.payload)
                elif sub.type_id == MessageType.DATA_AMF0:
                    self._on_data(stream_id, sub.type_id, sub.timestamp, sub.payload)
        elif type_id == MessageType.USER_CONTROL:
            event_type, value = decode_user_control(payload)
            if event_type == UserControlEvent.PING_REQUEST:
                self._send_control(
                    MessageType.USER_CONTROL, encode_user_control(UserControlEvent.PING_RESPONSE, value)
                )
            elif event_type == UserControlEvent.PING_RESPONSE:
                self._events.append(PingResponded(value))
        elif type_id == MessageType.ACKNOWLEDGEMENT:
            self._events.append(AcknowledgementReceived(decode_uint32(payload, "Acknowledgement")))
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            self._ack_window = decode_uint32(payload, "Window Acknowledgement Size")
        elif type_id == MessageType.SET_PEER_BANDWIDTH and len(payload) < 5:
            raise RemoteProtocolError("Set Peer Bandwidth message shorter than 5 bytes")

    def _accepts_media(self, stream_id: int) -> bool:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.accepts_media:
            return True
        self.dropped_messages += 1
        return False

    def _on_media(self, stream_id: int, type_id: int, timestamp: int, payload: bytes) -> None:
        if not payload:
            # An empty body is not an FLV tag body; Flash sends such messages as keep-alives.
            self.dropped_messages += 1
            return
        if not self._accepts_media(stream_id):
            return
        if type_id == MessageType.VIDEO:
            self._events.append(VideoReceived(stream_id, timestamp, payload))
        else:
            self._events.append(AudioReceived(stream_id, timestamp, payload))

    def _on_data(self, stream_id: int, type_id: int, timestamp: int, payload: bytes) -> None:
        if len(payload) > MAX_AMF_MESSAGE_SIZE:
            self.dropped_messages += 1
            return
        values = decode_amf_values(type_id, payload)
        if values[:1] == ["@setDataFrame"]:
            values = values[1:]
        if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
            return
        if self._accepts_media(stream_id):
            self._events.append(MetaDataReceived(stream_id, timestamp, dict(values[1])))

    def _on_command(self, stream_id: int, command: Command) -> None:
        if self.state is ConnectionState.AWAITING_CONNECT and command.name != "connect":
            raise RemoteProtocolError(f"command {command.name!r} before connect")
        handler = self._command_handlers.get(command.name)
        if handler is None:
            arguments = (command.command_object, *command.arguments)
            self._events.append(CommandReceived(command.name, command.transaction_id, arguments))
        else:
            handler(stream_id, command)

    def _on_connect(self, stream_id: int, command: Command) -> None:
        if self.state is not ConnectionState.AWAITING_CONNECT:
            raise RemoteProtocolError("second connect on one connection")
        info = command.command_object
        if not isinstance(info, dict):
            raise RemoteProtocolError("connect without a command object")
        self._object_encoding = _number(info.get("objectEncoding"))
        self.state = ConnectionState.CONNECT_PENDING
        self._events.append(
            ConnectRequested(
                transaction_id=command.transaction_id,
                app=_text(info.get("app")),
                tc_url=_text(info.get("tcUrl")),
                flash_ver=_text(info.get("flashVer")),
                swf_url=_text(info.get("swfUrl")),
                page_url=_text(info.get("pageUrl")),
                object_encoding=self._object_encoding,
                command_object=dict(info),
            )
        )

    def _on_create_stream(self, stream_id: int, command: Command) -> None:
        if len(self._streams) >= MAX_STREAMS:
            raise RemoteProtocolError(f"more than {MAX_STREAMS} message streams")
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._streams[stream_id] = _MessageStream()
        self._send_command(0, "_result", command.transaction_id, None, float(stream_id))
        self._events.append(StreamCreated(stream_id))

    def _on_publish(self, stream_id: int, command: Command) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise RemoteProtocolError(f"publish on message stream {stream_id}, which was not created")
        if stream.accepts_media:
            raise RemoteProtocolError(f"second publish on message stream {stream_id}")
        arguments = command.arguments
        name = arguments[0] if arguments else None
        if not isinstance(name, str):
            raise RemoteProtocolError("publish without a stream name")
        publish_type = arguments[1] if len(arguments) > 1 and isinstance(arguments[1], str) else "live"
        stream.state = StreamState.PUBLISH_PENDING
        stream.name = name
        self._events.append(PublishRequested(stream_id, command.transaction_id, name, publish_type))

    def _on_routine_call(self, stream_id: int, command: Command) -> None:
        if command.transaction_id:
            self._send_command(0, "_result", command.transaction_id, None, UNDEFINED)

    def _on_fc_publish(self, stream_id: int, command: Command) -> None:
        name = _text(command.arguments[0]) if command.arguments else ""
        self._send_command(
            0, "onFCPublish", 0, None, {"code": "NetStream.Publish.Start", "description": name}
        )
        self._on_routine_call(stream_id, command)

    def _on_fc_unpublish(self, stream_id: int, command: Command) -> None:
        name = _text(command.arguments[0]) if command.arguments else ""
        for stream_id, stream in self._streams.items():
            if stream.accepts_media and name in (stream.name, stream.name.split("?", 1)[0]):
                self._stop_publish(stream_id, stream)
                break
        info = {"code": "NetStream.Unpublish.Success", "description": name}
        self._send_command(0, "onFCUnpublish", 0, None, info)
        self._on_routine_call(stream_id, command)

    def _on_close_stream(self, stream_id: int, command: Command) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stop_publish(stream_id, stream)

    def _on_delete_stream(self, stream_id: int, command: Command) -> None:
        target = command.arguments[0] if command.arguments else None
        if isinstance(target, int | float) and not isinstance(target, bool) and target == int(target):
            stream = self._streams.pop(int(target), None)
            if stream is not None:
                self._stop_publish(int(target), stream)
                self._events.append(StreamDeleted(int(target)))
        self._on_routine_call(stream_id, command)

    def _stop_publish(self, stream_id: int, stream: _MessageStream) -> None:
        if stream.accepts_media:
            self._events.append(PublishStopped(stream_id))
        stream.state = StreamState.IDLE

    def _send_control(self, type_id: MessageType, payload: bytes) -> None:
        self._outbox.append(self._writer.write(CONTROL_CHUNK_STREAM, type_id, 0, 0, payload))

    def _send_command(self, stream_id: int, name: str, transaction_id: float, *values: Any) -> None:
        chunk_stream = COMMAND_CHUNK_STREAM if stream_id == 0 else STATUS_CHUNK_STREAM
        payload = encode_command(name, transaction_id, *values)
        self._outbox.append(self._writer.write(chunk_stream, MessageType.COMMAND_AMF0, stream_id, 0, payload))

    def _send_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._send_command(stream_id, "onStatus", 0, None, info)
