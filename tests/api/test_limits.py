"""Request bodies over the cap are refused with 413 problem JSON, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from streamit.api.limits import RequestBodyLimit
from tests.api.conftest import OwnerApi


def app_with_limit(max_bytes: int) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestBodyLimit, max_bytes=max_bytes)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_bodies_within_the_cap_pass() -> None:
    async with client(app_with_limit(100)) as http:
        response = await http.post("/echo", content=b"x" * 100)
    assert response.status_code == 200 and response.json() == {"length": 100}


async def test_declared_length_over_the_cap_is_refused_unread() -> None:
    async with client(app_with_limit(100)) as http:
        response = await http.post("/echo", content=b"x" * 101)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The request body is larger than 100 bytes."


async def test_streamed_body_over_the_cap_is_refused() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 30

    async with client(app_with_limit(100)) as http:
        response = await http.post("/echo", content=chunks())
    assert response.status_code == 413


async def test_malformed_content_length_is_a_bad_request() -> None:
    async with client(app_with_limit(100)) as http:
        response = await http.post("/echo", content=b"x", headers={"Content-Length": "many"})
    assert response.status_code == 400


async def test_the_api_refuses_a_huge_body(owner_api: OwnerApi) -> None:
    response = await owner_api.client.post(
        "/api/v1/streams", content=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=owner_api.auth
    )
    assert response.status_code == 413
