"""Public stream routes under ``/api/v1``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from streamit.api.schemas import (
    ProblemOut,
    StreamListOut,
    StreamOut,
    StreamPlaybackOut,
    stream_out,
    stream_playback_out,
)
from streamit.config import Settings
from streamit.db import Database, StreamRecord, StreamStatus
from streamit.errors import NotFound

API_PREFIX = "/api/v1"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemOut, "description": "No stream has this slug."}
}


def create_api_router(db: Database, settings: Settings) -> APIRouter:
    """The API's routes (all under ``/api/v1``), reading streams from ``db``."""
    router = APIRouter(prefix=API_PREFIX, tags=["streams"])

    async def find(slug: str) -> StreamRecord:
        record = await db.streams.get(slug)
        if record is None:
            raise NotFound(f"no stream with slug {slug!r}")
        return record

    @router.get("/streams", response_model=StreamListOut, summary="List streams")
    async def list_streams(
        status: Annotated[StreamStatus | None, Query(description="Only streams with this status.")] = None,
    ) -> StreamListOut:
        """All streams, newest first; ``?status=LIVE`` lists only those on air."""
        records = await db.streams.list(status)
        return StreamListOut(streams=[stream_out(record, settings) for record in records])

    @router.get("/streams/{slug}", response_model=StreamOut, responses=_NOT_FOUND, summary="Get a stream")
    async def get_stream(slug: str) -> StreamOut:
        """One stream by slug."""
        return stream_out(await find(slug), settings)

    @router.get(
        "/streams/{slug}/playback",
        response_model=StreamPlaybackOut,
        responses=_NOT_FOUND,
        summary="Where to watch a stream",
    )
    async def get_playback(slug: str) -> StreamPlaybackOut:
        """The HLS URL of a stream; ``hls`` is ``null`` unless it is ``LIVE``."""
        return stream_playback_out(await find(slug), settings)

    return router
