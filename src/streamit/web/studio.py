"""The studio: signed-in users manage their streams."""

from __future__ import annotations

from fastapi import APIRouter

from streamit.api.live_control import LiveControl
from streamit.config import Settings
from streamit.db import Database


def create_studio_router(db: Database, settings: Settings, *, live: LiveControl | None = None) -> APIRouter:
    """Routes under ``/studio``; ``live`` kicks the publisher of a stream whose key is rotated or deleted."""
    return APIRouter(include_in_schema=False)
