"""Events produced by :class:`~streamit.rtmp.connection.RtmpConnection` (server role), in arrival order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """The client sent ``connect``; answer with ``accept_connect`` or ``reject_connect``."""

    transaction_id: float
    app: str
    tc_url: str
    flash_ver: str
    swf_url: str
    page_url: str
    object_encoding: float
    command_object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """``createStream`` was answered with this message stream id."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """The client wants to publish; answer with ``accept_publish`` or ``reject_publish``.

    ``name`` is verbatim, including any ``?query``; ``publish_type`` is e.g. ``"live"``.
    """

    stream_id: int
    transaction_id: float
    name: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class MetaDataReceived:
    """``@setDataFrame``/``onMetaData`` (or a bare ``onMetaData``) on a publishing stream."""

    stream_id: int
    timestamp: int
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class VideoReceived:
    """A video message (an FLV video tag body) on a publishing stream; ``timestamp`` in ms mod 2^32."""

    stream_id: int
    timestamp: int
    payload: bytes

    def __init__(self, stream_id: int, timestamp: int, payload: bytes) -> None:
        # One event per media message: slot descriptors instead of object.__setattr__ per field.
        _set_video_stream_id(self, stream_id)
        _set_video_timestamp(self, timestamp)
        _set_video_payload(self, payload)


@dataclass(frozen=True, slots=True)
class AudioReceived:
    """An audio message (an FLV audio tag body) on a publishing stream; ``timestamp`` in ms mod 2^32."""

    stream_id: int
    timestamp: int
    payload: bytes

    def __init__(self, stream_id: int, timestamp: int, payload: bytes) -> None:
        # One event per media message: slot descriptors instead of object.__setattr__ per field.
        _set_audio_stream_id(self, stream_id)
        _set_audio_timestamp(self, timestamp)
        _set_audio_payload(self, payload)


_set_video_stream_id, _set_video_timestamp, _set_video_payload = (
    VideoReceived.__dict__[name].__set__ for name in ("stream_id", "timestamp", "payload")
)
_set_audio_stream_id, _set_audio_timestamp, _set_audio_payload = (
    AudioReceived.__dict__[name].__set__ for name in ("stream_id", "timestamp", "payload")
)


@dataclass(frozen=True, slots=True)
class PublishStopped:
    """The client ended its publish (FCUnpublish, closeStream or deleteStream); emitted once per publish."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamDeleted:
    """The client deleted a message stream it had created."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingResponded:
    """The client answered a ping (User Control PingResponse) carrying ``timestamp``."""

    timestamp: int


@dataclass(frozen=True, slots=True)
class AcknowledgementReceived:
    """The client acknowledged ``sequence_number`` bytes (mod 2^32)."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A command the connection does not handle itself."""

    name: str
    transaction_id: float
    arguments: tuple[Any, ...]
    """The command object followed by the optional arguments."""


Event = (
    ConnectRequested
    | StreamCreated
    | PublishRequested
    | MetaDataReceived
    | VideoReceived
    | AudioReceived
    | PublishStopped
    | StreamDeleted
    | PingResponded
    | AcknowledgementReceived
    | CommandReceived
)
"""Any event of an RTMP connection."""
