"""The API as a FastAPI application, ready for the server to add origin and ops routes."""

from __future__ import annotations

from fastapi import FastAPI

import streamit
from streamit.api.hooks import create_hooks_router
from streamit.api.limits import RequestBodyLimit
from streamit.api.live_control import LiveControl
from streamit.api.problems import install_error_handlers
from streamit.api.routes import create_api_router
from streamit.config import Settings
from streamit.db import Database
from streamit.hooks import WebhookDispatcher

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"


def create_api_app(
    db: Database,
    settings: Settings,
    *,
    live: LiveControl | None = None,
    webhooks: WebhookDispatcher | None = None,
) -> FastAPI:
    """A FastAPI app with the stream API, problem-JSON errors, OpenAPI at ``/api/openapi.json`` and
    docs at ``/api/docs``.  It neither opens nor closes ``db``: its owner does.

    ``live`` is told to disconnect a stream's publisher when its key is rotated or it is deleted;
    ``webhooks`` receives stream events of publishes reported by nginx-rtmp's hooks.
    """
    app = FastAPI(
        title="Streamit",
        version=streamit.__version__,
        summary="Live-video streaming: streams, keys, sessions, status and playback.",
        openapi_url=OPENAPI_URL,
        docs_url=DOCS_URL,
        redoc_url=None,
        # "/api/v1/streams/" is not a stream: answer 404 rather than redirect to the collection.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_middleware(RequestBodyLimit)
    app.include_router(create_api_router(db, settings, live=live))
    app.include_router(create_hooks_router(db, settings, webhooks=webhooks))
    return app
