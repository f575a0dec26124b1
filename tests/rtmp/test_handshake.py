"""Server handshake: plain echo, the digest handshake checked with a client-side validator, real C1s."""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib
import random
import shutil
import socket
import subprocess
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.rtmp.connection import RtmpConnection
from streamit.rtmp.events import ConnectRequested
from streamit.rtmp.handshake import DigestScheme, HandshakeState, ServerHandshake

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "rtmp"
SUFFIX = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
CLIENT_KEY = b"Genuine Adobe Flash Player 001" + SUFFIX
SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + SUFFIX


def client_offset(block: bytes, scheme: int) -> int:
    """The client's view of where a digest sits (written independently of the server code)."""
    if scheme == 0:
        return (block[8] + block[9] + block[10] + block[11]) % 728 + 12
    return (block[772] + block[773] + block[774] + block[775]) % 728 + 776


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def make_digest_c1(scheme: int, seed: int) -> bytes:
    """A C1 as librtmp builds it: time, Flash Player version, random, digest with the 30-byte FP key."""
    rng = random.Random(seed)
    block = bytearray(rng.randbytes(1536))
    block[0:4] = b"\x00\x00\x00\x00"
    block[4:8] = bytes((9, 0, 124, 2))
    offset = client_offset(bytes(block), scheme)
    block[offset : offset + 32] = hmac_sha256(CLIENT_KEY[:30], bytes(block[:offset] + block[offset + 32 :]))
    return bytes(block)


def validate_server(c1: bytes, s1: bytes, s2: bytes) -> int:
    """librtmp's client-side checks: S1's digest (either scheme), then S2's signature. Returns S1's scheme."""
    for scheme in (0, 1):
        offset = client_offset(s1, scheme)
        if hmac_sha256(SERVER_KEY[:36], s1[:offset] + s1[offset + 32 :]) == s1[offset : offset + 32]:
            break
    else:
        raise AssertionError("S1 carries no valid server digest")
    for client_scheme in (0, 1):
        c_offset = client_offset(c1, client_scheme)
        if hmac_sha256(CLIENT_KEY[:30], c1[:c_offset] + c1[c_offset + 32 :]) == c1[c_offset : c_offset + 32]:
            break
    else:
        raise AssertionError("C1 carries no valid client digest")
    key = hmac_sha256(SERVER_KEY, c1[c_offset : c_offset + 32])
    assert hmac_sha256(key, s2[:1504]) == s2[1504:], "S2 signature does not validate"
    return scheme


def test_plain_handshake_echoes_c1() -> None:
    c1 = b"\x00\x00\x01\x00" + b"\x00" * 4 + os.urandom(1528)
    handshake = ServerHandshake()
    consumed, reply = handshake.receive(b"\x03" + c1, now=2.5)
    assert consumed == 1537
    assert reply[0] == 3
    s1, s2 = reply[1:1537], reply[1537:]
    assert len(s1) == 1536
    assert s1[:4] == (2500).to_bytes(4, "big")
    assert s1[4:8] == b"\x00\x00\x00\x00"
    assert s2 == c1
    assert handshake.digest_scheme is None
    assert handshake.state is HandshakeState.AWAITING_C2
    assert handshake.receive(b"\x00" * 1535) == (0, b"")
    assert handshake.receive(b"\x00" * 1536 + b"\x02\x00") == (1536, b"")
    assert handshake.complete
    with pytest.raises(LocalProtocolError):
        handshake.receive(b"\x00")


def test_one_byte_at_a_time_waits_for_complete_blocks() -> None:
    data = b"\x03" + os.urandom(1536)
    handshake = ServerHandshake()
    for cut in range(len(data)):
        assert handshake.receive(data[:cut]) == (0, b"")
    consumed, reply = handshake.receive(data)
    assert consumed == len(data)
    assert len(reply) == 1 + 2 * 1536


@pytest.mark.parametrize("version", [0, 6, 0x47, 0xFF])
def test_other_versions_are_refused(version: int) -> None:
    with pytest.raises(RemoteProtocolError):
        ServerHandshake().receive(bytes((version,)))


@pytest.mark.parametrize("scheme", [0, 1])
@pytest.mark.parametrize("seed", range(4))
def test_digest_handshake_validates_like_librtmp(scheme: int, seed: int) -> None:
    c1 = make_digest_c1(scheme, seed)
    handshake = ServerHandshake()
    consumed, reply = handshake.receive(b"\x03" + c1)
    assert consumed == 1537
    s1, s2 = reply[1:1537], reply[1537:]
    assert s1[4:8] != b"\x00\x00\x00\x00"
    assert validate_server(c1, s1, s2) == scheme
    assert handshake.digest_scheme is DigestScheme(scheme)


def test_digest_handshake_for_the_real_ffmpeg_c1() -> None:
    capture = (FIXTURES / "ffmpeg_publish.bin").read_bytes()
    c1 = capture[1:1537]
    handshake = ServerHandshake()
    _, reply = handshake.receive(capture[:1537])
    assert handshake.digest_scheme is DigestScheme.SCHEME_0
    validate_server(c1, reply[1:1537], reply[1537:])


def test_versioned_c1_without_a_valid_digest_gets_the_plain_answer() -> None:
    c1 = bytearray(make_digest_c1(0, 7))
    c1[-1] ^= 0xFF
    handshake = ServerHandshake()
    _, reply = handshake.receive(b"\x03" + bytes(c1))
    assert handshake.digest_scheme is None
    assert reply[1537:] == bytes(c1)


def test_random_source_is_injectable() -> None:
    handshake = ServerHandshake(random_bytes=lambda n: b"\xab" * n)
    _, reply = handshake.receive(b"\x03" + bytes(1536))
    assert reply[9:1537] == b"\xab" * 1528


@settings(deadline=None)
@given(st.binary(min_size=1536, max_size=1536))
def test_any_c1_gets_a_well_formed_answer(c1: bytes) -> None:
    consumed, reply = ServerHandshake().receive(b"\x03" + c1)
    assert consumed == 1537
    assert len(reply) == 3073
    assert reply[0] == 3


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_ffmpeg_player_accepts_our_digest_answer() -> None:
    """ffmpeg validates S1's digest and S2's signature when it plays; it only sends connect if both pass."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    events: list[object] = []

    def serve() -> None:
        peer, _ = listener.accept()
        peer.settimeout(10)
        connection = RtmpConnection()
        with peer:
            while not events and (data := peer.recv(65536)):
                connection.receive_data(data)
                while (event := connection.next_event()) is not None:
                    events.append(event)
                peer.sendall(connection.data_to_send())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "debug",
            "-i",
            f"rtmp://127.0.0.1:{port}/live/key",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    server.join(timeout=10)
    listener.close()
    assert "Signature mismatch" not in result.stderr
    assert "validating failed" not in result.stderr
    assert events and isinstance(events[0], ConnectRequested)
    assert events[0].app == "live"
