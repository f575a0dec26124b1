"""Stream routes under ``/api/v1``: the public directory and playback, and the owner's management API.

Owner routes need a bearer token.  ``GET /streams`` and ``GET /streams/{slug}`` serve both audiences:
without a token the public view, with a valid token the owner view (stream key, publish URL).
"""

# No "from __future__ import annotations": FastAPI must see the dependency aliases made inside
# create_api_router as objects, not as strings it would have to resolve in module globals.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from streamit.api.auth import OPTIONAL_TOKEN_OPENAPI, token_dependencies
from streamit.api.live_control import LiveControl
from streamit.api.problems import problem_docs
from streamit.api.schemas import (
    AnyStreamOut,
    OwnerStreamOut,
    SessionListOut,
    StreamCreateIn,
    StreamListOut,
    StreamOut,
    StreamPlaybackOut,
    StreamUpdateIn,
    owner_stream_out,
    session_out,
    stream_out,
    stream_playback_out,
)
from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus, TokenRecord
from streamit.errors import NotFound

API_PREFIX = "/api/v1"

Responses = dict[int | str, dict[str, Any]]

_UNAUTHORIZED: Responses = {401: problem_docs("The API token is missing, unknown or revoked.")}
_BAD_TOKEN: Responses = {401: problem_docs("A token was sent but it is unknown or revoked.")}
_NOT_FOUND: Responses = {404: problem_docs("No stream has this slug.")}
_INVALID: Responses = {422: problem_docs("The request's parameters or JSON body are not valid.")}
_CONFLICT: Responses = {409: problem_docs("Another stream already uses this slug.")}


def _responses(*parts: Responses) -> Responses:
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged


def create_api_router(db: Database, settings: Settings, *, live: LiveControl | None = None) -> APIRouter:
    """The API's routes (all under ``/api/v1``) on ``db``; ``live`` kicks publishers off streams."""
    router = APIRouter(prefix=API_PREFIX, tags=["streams"])
    optional_token, required_token = token_dependencies(db)
    MaybeOwner = Annotated[TokenRecord | None, Depends(optional_token)]
    Owner = Annotated[TokenRecord, Depends(required_token)]

    async def find(slug: str) -> StreamRecord:
        record = await db.streams.get(slug)
        if record is None:
            raise NotFound(f"no stream with slug {slug!r}")
        return record

    async def owner_view(record: StreamRecord) -> OwnerStreamOut:
        return owner_stream_out(record, await db.streams.reveal_key(record.slug), settings)

    async def kick(stream_id: str, reason: str) -> None:
        if live is not None:
            await live.disconnect(stream_id, reason)

    @router.get(
        "/streams",
        response_model=StreamListOut,
        responses=_responses(_BAD_TOKEN, _INVALID),
        openapi_extra=OPTIONAL_TOKEN_OPENAPI,
        summary="List streams",
    )
    async def list_streams(
        owner: MaybeOwner,
        status: Annotated[StreamStatus | None, Query(description="Only streams with this status.")] = None,
    ) -> StreamListOut:
        """All streams, newest first; ``?status=LIVE`` lists only those on air.

        With a valid token every stream carries its owner fields (``stream_key``, ``publish_url`` …).
        """
        records = await db.streams.list(status)
        streams: list[AnyStreamOut]
        if owner is None:
            streams = [stream_out(record, settings) for record in records]
        else:
            streams = [await owner_view(record) for record in records]
        return StreamListOut(streams=streams)

    @router.post(
        "/streams",
        status_code=201,
        response_model=OwnerStreamOut,
        responses=_responses(_UNAUTHORIZED, _CONFLICT, _INVALID),
        summary="Create a stream",
    )
    async def create_stream(body: StreamCreateIn, owner: Owner) -> OwnerStreamOut:
        """A new ``DRAFT`` stream with its stream key; the slug is derived from the title unless given."""
        record, key = await db.streams.create(body.title, slug=body.slug, description=body.description)
        return owner_stream_out(record, key, settings)

    @router.get(
        "/streams/{slug}",
        response_model=AnyStreamOut,
        responses=_responses(_BAD_TOKEN, _NOT_FOUND),
        openapi_extra=OPTIONAL_TOKEN_OPENAPI,
        summary="Get a stream",
    )
    async def get_stream(slug: str, owner: MaybeOwner) -> StreamOut:
        """One stream by slug; with a valid token including its owner fields."""
        record = await find(slug)
        if owner is None:
            return stream_out(record, settings)
        return await owner_view(record)

    @router.patch(
        "/streams/{slug}",
        response_model=OwnerStreamOut,
        responses=_responses(_UNAUTHORIZED, _NOT_FOUND, _CONFLICT, _INVALID),
        summary="Change a stream",
    )
    async def update_stream(slug: str, body: StreamUpdateIn, owner: Owner) -> OwnerStreamOut:
        """Change the title, description and/or slug; fields left out stay as they are."""
        record = await db.streams.update(
            slug, title=body.title, description=body.description, new_slug=body.slug
        )
        return await owner_view(record)

    @router.delete(
        "/streams/{slug}",
        status_code=204,
        response_class=Response,
        responses=_responses(_UNAUTHORIZED, _NOT_FOUND),
        summary="Delete a stream",
    )
    async def delete_stream(slug: str, owner: Owner) -> Response:
        """Delete a stream and its sessions; a live publisher on it is disconnected."""
        record = await find(slug)
        await kick(record.id, "stream deleted")
        if not await db.streams.delete(slug):
            raise NotFound(f"no stream with slug {slug!r}")
        return Response(status_code=204)

    @router.post(
        "/streams/{slug}/rotate-key",
        response_model=OwnerStreamOut,
        responses=_responses(_UNAUTHORIZED, _NOT_FOUND),
        summary="Replace a stream's key",
    )
    async def rotate_key(slug: str, owner: Owner) -> OwnerStreamOut:
        """Give the stream a new key.  The old key stops working at once; a publisher using it is
        disconnected."""
        record = await find(slug)
        key = await db.streams.rotate_key(slug)
        await kick(record.id, "stream key rotated")
        return owner_stream_out(record, key, settings)

    @router.get(
        "/streams/{slug}/sessions",
        response_model=SessionListOut,
        responses=_responses(_UNAUTHORIZED, _NOT_FOUND),
        summary="List a stream's publish sessions",
    )
    async def list_sessions(slug: str, owner: Owner) -> SessionListOut:
        """Every publish of the stream, newest first, with its traffic and media figures."""
        record = await find(slug)
        sessions = await db.sessions.list_for_stream(record.id)
        return SessionListOut(sessions=[session_out(session) for session in sessions])

    @router.get(
        "/streams/{slug}/playback",
        response_model=StreamPlaybackOut,
        responses=_NOT_FOUND,
        summary="Where to watch a stream",
    )
    async def get_playback(slug: str) -> StreamPlaybackOut:
        """HLS URL, status, start time and media of a stream; ``hls`` is ``null`` unless it is ``LIVE``."""
        return stream_playback_out(await find(slug), settings)

    return router
