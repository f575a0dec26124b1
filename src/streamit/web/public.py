"""Public pages: the live directory and the watch page."""

from __future__ import annotations

from fastapi import APIRouter

from streamit.config import Settings
from streamit.db import Database


def create_public_router(db: Database, settings: Settings) -> APIRouter:
    """Routes of ``/`` and ``/watch/{slug}``."""
    return APIRouter(include_in_schema=False)
