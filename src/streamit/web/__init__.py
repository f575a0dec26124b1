"""The web pages: live directory (``/``), watch page (``/watch/{slug}``) and studio (``/studio``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from streamit.api.live_control import LiveControl
from streamit.config import Settings
from streamit.db import Database
from streamit.web.public import create_public_router
from streamit.web.security import SecurityHeadersMiddleware, content_security_policy
from streamit.web.studio import create_studio_router
from streamit.web.templating import STATIC_DIR
from streamit.web.vendor import VendorAssets


def install_web(app: FastAPI, db: Database, settings: Settings, *, live: LiveControl | None = None) -> None:
    """Add the public pages, the studio and their static files to ``app``.

    Every HTML page gets a Content-Security-Policy without inline scripts or styles
    (:mod:`streamit.web.security`); hls.js is served from ``node_modules`` (:mod:`streamit.web.vendor`), and a
    missing install is logged once here.  ``live`` disconnects a stream's publisher when the studio rotates
    its key or deletes it.
    """
    vendor = VendorAssets.locate(settings)
    app.state.hls_js_installed = vendor.has_hls_js
    app.add_middleware(SecurityHeadersMiddleware, csp=content_security_policy(settings))
    # The vendor route is in the public router, which must come before the /static mount that would
    # otherwise answer /static/vendor/... with a 404.
    app.include_router(create_public_router(db, settings, vendor=vendor))
    app.include_router(create_studio_router(db, settings, live=live))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
