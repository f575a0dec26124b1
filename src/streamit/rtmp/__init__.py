"""Sans-I/O RTMP (server role): handshake, chunk stream, AMF0/AMF3, messages and the connection state machine.

Feed bytes to :meth:`RtmpConnection.receive_data`, take events from :meth:`RtmpConnection.next_event` and
write :meth:`RtmpConnection.data_to_send` to the socket.  Nothing here performs I/O.
"""

from streamit.rtmp.chunk import ChunkReader, ChunkWriter, Message
from streamit.rtmp.connection import ConnectionState, RtmpConnection, StreamState
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
from streamit.rtmp.handshake import HandshakeState, ServerHandshake

__all__ = [
    "AcknowledgementReceived",
    "AudioReceived",
    "ChunkReader",
    "ChunkWriter",
    "CommandReceived",
    "ConnectRequested",
    "ConnectionState",
    "Event",
    "HandshakeState",
    "Message",
    "MetaDataReceived",
    "PingResponded",
    "PublishRequested",
    "PublishStopped",
    "RtmpConnection",
    "ServerHandshake",
    "StreamCreated",
    "StreamDeleted",
    "StreamState",
    "VideoReceived",
]
