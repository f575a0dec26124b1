"""The server side of the RTMP handshake: plain (RTMP 1.0 §5.2) and digest ("complex", Flash lineage).

The plain handshake echoes C1 as S2.  When C1 carries a valid HMAC-SHA256 digest keyed with the Flash
Player key, clients of the librtmp/Flash lineage (rtmpdump, GStreamer rtmpsink, OBS, ffmpeg) expect S1 to
carry a digest keyed with the Flash Media Server key and S2 to be signed with a key derived from C1's digest;
we answer that way so that they validate the server.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Final

from streamit.errors import LocalProtocolError, RemoteProtocolError

RTMP_VERSION: Final = 3
HANDSHAKE_SIZE: Final = 1536
DIGEST_SIZE: Final = 32

_KEY_SUFFIX: Final = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP_KEY: Final = b"Genuine Adobe Flash Player 001" + _KEY_SUFFIX
"""The Flash Player key; its first 30 bytes sign C1 (the client digest)."""
FMS_KEY: Final = b"Genuine Adobe Flash Media Server 001" + _KEY_SUFFIX
"""The Flash Media Server key; its first 36 bytes sign S1, all 68 bytes derive the S2 signing key."""
FP_KEY_SHORT: Final = FP_KEY[:30]
FMS_KEY_SHORT: Final = FMS_KEY[:36]

SERVER_VERSION: Final = bytes((5, 0, 3, 1))
"""The version we claim in S1 bytes 4..7 for the digest handshake (non-zero marks the digest scheme)."""


class DigestScheme(enum.IntEnum):
    """Where the 32-byte digest sits in a 1536-byte C1/S1 block.

    Scheme 0: offset = (sum of bytes 8..11) % 728 + 12.
    Scheme 1: offset = (sum of bytes 772..775) % 728 + 776.
    """

    SCHEME_0 = 0
    SCHEME_1 = 1


def digest_offset(block: bytes | bytearray | memoryview, scheme: DigestScheme) -> int:
    """The offset of the digest inside ``block`` for ``scheme``."""
    base = 8 if scheme is DigestScheme.SCHEME_0 else 772
    return sum(block[base : base + 4]) % 728 + base + 4


def compute_digest(block: bytes | bytearray | memoryview, offset: int, key: bytes) -> bytes:
    """HMAC-SHA256 with ``key`` of ``block`` without the 32 bytes at ``offset``."""
    mac = hmac.new(key, block[:offset], hashlib.sha256)
    mac.update(block[offset + DIGEST_SIZE :])
    return mac.digest()


def find_client_digest(c1: bytes | bytearray | memoryview) -> tuple[DigestScheme, int] | None:
    """The scheme and offset of a valid Flash Player digest in ``c1``, or ``None`` if there is none."""
    for scheme in DigestScheme:
        offset = digest_offset(c1, scheme)
        expected = compute_digest(c1, offset, FP_KEY_SHORT)
        if hmac.compare_digest(expected, bytes(c1[offset : offset + DIGEST_SIZE])):
            return scheme, offset
    return None


class HandshakeState(enum.Enum):
    """Progress of the server handshake."""

    AWAITING_C0_C1 = "awaiting C0+C1"
    AWAITING_C2 = "awaiting C2"
    COMPLETE = "complete"


class ServerHandshake:
    """Consumes C0, C1, C2 from a receive buffer and produces S0, S1, S2.

    ``random_bytes`` supplies the random fields (``os.urandom`` by default; tests pass a deterministic one).
    """

    __slots__ = ("_random_bytes", "digest_scheme", "state")

    def __init__(self, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random_bytes = random_bytes
        self.state = HandshakeState.AWAITING_C0_C1
        self.digest_scheme: DigestScheme | None = None
        """The digest scheme C1 used, or ``None`` for a plain handshake (known after C1)."""

    @property
    def complete(self) -> bool:
        """Whether C2 was received."""
        return self.state is HandshakeState.COMPLETE

    def receive(self, buffer: bytes | bytearray | memoryview, now: float = 0.0) -> tuple[int, bytes]:
        """Consume what can be consumed from the start of ``buffer``.

        Returns the number of bytes consumed and the bytes to send (S0+S1+S2 once C0+C1 are complete).
        ``now`` (seconds) only fills S1's timestamp field.
        """
        if self.state is HandshakeState.AWAITING_C0_C1:
            if not buffer:
                return 0, b""
            # RTMP 1.0 §5.2.2: 3 is the only defined version; 6 would be RTMPE, which we do not speak.
            if buffer[0] != RTMP_VERSION:
                raise RemoteProtocolError(f"unsupported RTMP version {buffer[0]} in C0")
            if len(buffer) < 1 + HANDSHAKE_SIZE:
                return 0, b""
            c1 = bytes(buffer[1 : 1 + HANDSHAKE_SIZE])
            self.state = HandshakeState.AWAITING_C2
            return 1 + HANDSHAKE_SIZE, bytes((RTMP_VERSION,)) + self._answer(c1, now)
        if self.state is HandshakeState.AWAITING_C2:
            if len(buffer) < HANDSHAKE_SIZE:
                return 0, b""
            self.state = HandshakeState.COMPLETE
            return HANDSHAKE_SIZE, b""
        raise LocalProtocolError("the handshake is already complete")

    def _answer(self, c1: bytes, now: float) -> bytes:
        timestamp = (int(now * 1000) & 0xFFFFFFFF).to_bytes(4, "big")
        # C1 bytes 4..7 are zero in the plain handshake (RTMP 1.0 §5.2.3); Flash sends its version there.
        found = find_client_digest(c1) if c1[4:8] != b"\x00\x00\x00\x00" else None
        if found is None:
            return timestamp + b"\x00\x00\x00\x00" + self._random_bytes(HANDSHAKE_SIZE - 8) + c1
        scheme, client_offset = found
        self.digest_scheme = scheme
        s1 = bytearray(timestamp + SERVER_VERSION + self._random_bytes(HANDSHAKE_SIZE - 8))
        offset = digest_offset(s1, scheme)
        s1[offset : offset + DIGEST_SIZE] = compute_digest(s1, offset, FMS_KEY_SHORT)
        client_digest = c1[client_offset : client_offset + DIGEST_SIZE]
        signing_key = hmac.new(FMS_KEY, client_digest, hashlib.sha256).digest()
        s2_body = self._random_bytes(HANDSHAKE_SIZE - DIGEST_SIZE)
        s2 = s2_body + hmac.new(signing_key, s2_body, hashlib.sha256).digest()
        return bytes(s1) + s2
