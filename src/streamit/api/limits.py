"""A cap on request bodies, so a client cannot make the server buffer an unbounded upload."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 1024 * 1024
"""Bytes a request body may have: API and form bodies are small JSON or form documents."""


class BodyTooLarge(Exception):
    """Raised inside the middleware when a streamed body passes the cap."""


class RequestBodyLimit:
    """ASGI middleware answering 413 (problem JSON) to bodies over ``max_bytes``.

    A declared ``Content-Length`` over the cap is refused before the body is read; a body sent without one
    (chunked) is counted as it arrives and refused once it passes the cap.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "Content-Length is not a number.")
                    return
                if declared > self.max_bytes:
                    await self._refuse(send, 413, self._detail())
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, 413, self._detail())

    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        title = "Content Too Large" if status == 413 else "Bad Request"
        problem = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        body = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
