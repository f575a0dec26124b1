"""The one exception tree of Streamit.

Every error that Streamit raises on purpose derives from :class:`StreamitError`.  Protocol cores raise
:class:`RemoteProtocolError` when the *peer* sent bytes that violate the protocol, and
:class:`LocalProtocolError` when *our* code asked a protocol object to do something invalid.  Peer bytes
either parse or raise ``RemoteProtocolError``; no other exception may escape a parser.
"""

from __future__ import annotations


class StreamitError(Exception):
    """Base class of every error raised by Streamit."""


class ProtocolError(StreamitError):
    """A protocol was violated (RTMP, AMF, FLV, H.264, AAC, MPEG-TS, HLS …)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that do not follow the protocol."""


class LocalProtocolError(ProtocolError):
    """Our own code used a protocol object incorrectly (a bug, never the peer's fault)."""


class MessageTooLarge(RemoteProtocolError):
    """The peer announced a message larger than the configured cap."""


class UnsupportedCodec(RemoteProtocolError):
    """The media uses a codec the packager cannot carry (only H.264 and AAC are supported)."""


class ConfigError(StreamitError):
    """Settings are invalid or inconsistent."""


class NotFound(StreamitError):
    """A stream, segment or other named object does not exist."""


class PublishRefused(StreamitError):
    """A publish attempt was refused (unknown key, stream already live with ``reject`` policy, …).

    ``code`` is the RTMP ``onStatus`` code to send, ``description`` the human-readable reason.
    """

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class InvalidInput(StreamitError, ValueError):
    """A value given by a user (title, slug, time …) is not acceptable."""


class InvalidSlug(InvalidInput):
    """A slug does not match ``[a-z0-9-]{1,64}`` (no leading/trailing hyphen) or is a reserved word."""


class SlugTaken(StreamitError):
    """Another stream already uses the requested slug."""


class InvalidTransition(StreamitError):
    """The stream's status does not allow the requested change (e.g. ``DRAFT`` → ``ENDED``)."""


class DatabaseUnavailable(StreamitError):
    """The database cannot be reached or refused the connection."""


class RegistryUnavailable(StreamitError, ConnectionError):
    """The discovery registry's store (Redis) cannot be reached; callers retry on their next heartbeat.

    It is a :class:`ConnectionError` too, so code that treats any unreachable peer alike still catches it.
    """
