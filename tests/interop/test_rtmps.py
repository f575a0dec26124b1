"""RTMPS ingest: ffmpeg publishes to ``rtmps://`` on the configured TLS port and the HLS output is valid."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.interop.conftest import (
    PublisherFactory,
    Server,
    ffprobe_codecs,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.interop


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path, ffmpeg: str) -> Iterator[tuple[Server, int]]:
    cert, key = self_signed(tmp_path)
    rtmps_port = free_port()
    env = {
        "STREAMIT_RTMPS_PORT": str(rtmps_port),
        "STREAMIT_TLS_CERT_FILE": str(cert),
        "STREAMIT_TLS_KEY_FILE": str(key),
    }
    srv = start_server(tmp_path / "data", tmp_path / "serve.log", free_port(), free_port(), env)
    yield srv, rtmps_port
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def test_ffmpeg_publishes_over_rtmps(
    tls_server: tuple[Server, int], publishers: PublisherFactory, ffprobe: str, tmp_path: Path
) -> None:
    srv, rtmps_port = tls_server
    stream = srv.create_stream("Encrypted", slug="encrypted")
    url = f"rtmps://127.0.0.1:{rtmps_port}/live/{stream.stream_key}"
    publisher = publishers.generated(url, seconds=8)

    def listed() -> m3u8.M3U8 | None:
        response = httpx.get(f"{srv.http}/hls/encrypted/index.m3u8", timeout=5)
        parsed = m3u8.loads(response.text) if response.status_code == 200 else None
        return parsed if parsed is not None and len(parsed.segments) >= 2 else None

    assert wait_for(listed, 25), srv.log() + publisher.errors()
    assert publisher.wait(30) == 0, publisher.errors()
    assert wait_for(lambda: (p := listed()) is not None and p.is_endlist, 10), srv.log()
    final = listed()
    assert final is not None
    segment = httpx.get(f"{srv.http}/hls/encrypted/{final.segments[0].uri}", timeout=5)
    (tmp_path / "first.ts").write_bytes(segment.content)
    assert ffprobe_codecs(ffprobe, tmp_path / "first.ts") >= {"h264", "aac"}
    assert f"RTMPS listening on 0.0.0.0:{rtmps_port}" in srv.log()
    assert srv.stream_json("encrypted")["status"] == "ENDED"


def test_plain_rtmp_to_the_tls_port_is_refused(
    tls_server: tuple[Server, int], publishers: PublisherFactory
) -> None:
    srv, rtmps_port = tls_server
    stream = srv.create_stream("Mixed up", slug="mixed-up")
    publisher = publishers.generated(f"rtmp://127.0.0.1:{rtmps_port}/live/{stream.stream_key}", seconds=3)
    assert publisher.wait(30) != 0
    assert srv.stream_json("mixed-up")["status"] == "DRAFT"
