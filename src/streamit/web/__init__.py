"""The web pages: live directory (``/``), watch page (``/watch/{slug}``) and studio (``/studio``)."""

from __future__ import annotations

from fastapi import FastAPI

from streamit.api.live_control import LiveControl
from streamit.config import Settings
from streamit.db import Database
from streamit.web.public import create_public_router
from streamit.web.studio import create_studio_router


def install_web(app: FastAPI, db: Database, settings: Settings, *, live: LiveControl | None = None) -> None:
    """Add the public pages, the studio and their static files to ``app``.

    ``live`` disconnects a stream's publisher when the studio rotates its key or deletes it.
    """
    app.include_router(create_public_router(db, settings))
    app.include_router(create_studio_router(db, settings, live=live))
