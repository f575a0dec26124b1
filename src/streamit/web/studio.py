"""The studio: signed-in users manage their streams."""

from __future__ import annotations

from fastapi import APIRouter

from streamit.config import Settings
from streamit.db import Database


def create_studio_router(db: Database, settings: Settings) -> APIRouter:
    """Routes under ``/studio``."""
    return APIRouter(include_in_schema=False)
