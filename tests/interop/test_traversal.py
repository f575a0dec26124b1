"""Path traversal against every route of a running ``streamit serve``: all 404, nothing read outside.

Requests are written on a raw socket, so the exact bytes reach the server (HTTP clients normalise ``..``
away).  Every path template of the OpenAPI document is attacked, plus the routes kept out of it (HLS,
static files, web pages).
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import PublisherFactory, Server, wait_for

pytestmark = pytest.mark.interop

PAYLOADS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..%5C..%5C..%5Cetc%5Cpasswd",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "....//....//etc/passwd",
    "seg-000000.ts%00.m3u8",
    "..",
    "%2e%2e",
    "..%00",
    "secret.key",
    "../secret.key",
    "..%2Fsecret.key",
    "..%2F..%2Fstreamit.db",
]

# Routes outside the OpenAPI document, as templates.
OTHER_TEMPLATES = [
    "/hls/{slug}/{name}",
    "/hls/on-air/{name}",
    "/static/{path}",
    "/static/vendor/{path}",
    "/watch/{slug}",
]


def raw_get(port: int, target: str, token: str) -> tuple[int, bytes]:
    """Status and body of ``GET target`` sent byte for byte, as an owner (so 401 cannot hide a 200)."""
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def targets(templates: list[str]) -> list[str]:
    found = []
    for template in templates:
        parts = template.split("/")
        params = [i for i, part in enumerate(parts) if part.startswith("{")]
        for index in params:
            for payload in PAYLOADS:
                filled = ["on-air" if p.startswith("{") else p for p in parts]
                filled[index] = payload
                found.append("/".join(filled))
    return found


def test_every_route_answers_traversal_with_404(
    server: Server, publishers: PublisherFactory, tmp_path: Path
) -> None:
    # A live stream, so that the HLS routes have a real directory next to the data directory's secrets.
    stream = server.create_stream("On air", slug="on-air")
    publishers.generated(server.rtmp_url(stream.stream_key), seconds=30)
    playlist = f"{server.http}/hls/on-air/index.m3u8"
    assert wait_for(lambda: httpx.get(playlist, timeout=5).status_code == 200, 20)
    secrets = [
        (server.data_dir / "secret.key").read_bytes(),
        Path("/etc/passwd").read_bytes()[:32],
        b"SQLite format 3",
    ]

    token = server.create_token()
    spec = httpx.get(f"{server.http}/api/openapi.json", timeout=5).json()
    api_templates = [path for path, item in spec["paths"].items() if "{" in path and "get" in item]
    assert api_templates, "the OpenAPI document lists no parameterised GET routes"
    attacked = targets(api_templates + OTHER_TEMPLATES)

    failures = []
    for target in attacked:
        status, body = raw_get(server.http_port, target, token)
        if status not in (400, 404) or any(secret in body for secret in secrets):
            failures.append((target, status, body[:80]))
    assert failures == [], failures
    # Most are a plain 404 (400 only for requests the HTTP parser itself refuses, e.g. a raw NUL).
    statuses = [raw_get(server.http_port, target, token)[0] for target in attacked[:40]]
    assert statuses.count(404) >= len(statuses) - 2
