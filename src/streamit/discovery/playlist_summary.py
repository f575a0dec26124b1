"""What the discovery watcher needs to know about an HLS media playlist, parsed from its bytes (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamit.errors import MessageTooLarge, RemoteProtocolError

MAX_PLAYLIST_SIZE = 1024 * 1024
"""Live playlists are a few kilobytes; a bigger file is not one a live origin is writing."""

_TAG_LINE = re.compile(
    rb"^#EXT-X-(TARGETDURATION|ENDLIST|STREAM-INF|MEDIA-SEQUENCE)(?::([^\r\n]*))?\r?$", re.M
)
_DECIMAL_INTEGER = re.compile(rb"[0-9]{1,18}")
_SEGMENT_LINE = re.compile(rb"^#EXTINF:", re.M)


@dataclass(frozen=True, slots=True)
class PlaylistSummary:
    """The facts of one playlist the watcher acts on.

    ``target_duration`` is EXT-X-TARGETDURATION in seconds (None when absent), ``ended`` whether
    EXT-X-ENDLIST is present, ``master`` whether it is a master playlist (EXT-X-STREAM-INF), ``segments``
    the number of EXTINF entries and ``media_sequence`` EXT-X-MEDIA-SEQUENCE (0 when absent).
    """

    target_duration: int | None
    ended: bool
    master: bool
    segments: int
    media_sequence: int


def _integer(name: bytes, value: bytes | None) -> int:
    # RFC 8216 §4.2: decimal-integer is an unquoted string of 0-9 in the range 0 to 2^64-1.
    if value is None or _DECIMAL_INTEGER.fullmatch(value) is None:
        raise RemoteProtocolError(f"#EXT-X-{name.decode()} needs a decimal integer, got {value!r}")
    return int(value)


def summarize_playlist(data: bytes) -> PlaylistSummary:
    """Parse the tags of an HLS playlist that the watcher acts on.

    Raises :class:`RemoteProtocolError` when ``data`` is not an M3U8 playlist: it must be UTF-8 (RFC 8216
    §4.1) and begin with ``#EXTM3U`` (§4.3.1.1); a file caught while a non-atomic writer truncated it fails
    here and is looked at again on its next change.
    """
    if len(data) > MAX_PLAYLIST_SIZE:
        raise MessageTooLarge(f"playlist of {len(data)} bytes exceeds {MAX_PLAYLIST_SIZE}")
    if data.startswith(b"\xef\xbb\xbf"):
        # RFC 8216 §4.1 forbids a BOM; nginx-rtmp and ffmpeg never write one.
        raise RemoteProtocolError("playlist starts with a byte order mark")
    first_line_end = data.find(b"\n")
    first_line = data if first_line_end < 0 else data[:first_line_end]
    if first_line.rstrip(b"\r") != b"#EXTM3U":
        raise RemoteProtocolError("playlist does not begin with #EXTM3U")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"playlist is not UTF-8: {exc}") from exc
    target_duration: int | None = None
    media_sequence = 0
    ended = False
    master = False
    for match in _TAG_LINE.finditer(data):
        name, value = match.group(1), match.group(2)
        if name == b"TARGETDURATION":
            if target_duration is not None:
                raise RemoteProtocolError("playlist has more than one #EXT-X-TARGETDURATION")
            target_duration = _integer(name, value)
        elif name == b"MEDIA-SEQUENCE":
            media_sequence = _integer(name, value)
        elif name == b"ENDLIST":
            ended = True
        else:
            master = True
    return PlaylistSummary(
        target_duration=target_duration,
        ended=ended,
        master=master,
        segments=len(_SEGMENT_LINE.findall(data)),
        media_sequence=media_sequence,
    )
