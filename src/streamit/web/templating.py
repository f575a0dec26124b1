"""The Jinja2 environment shared by the public pages and the studio."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
"""Renders ``web/templates``; autoescaping is on for ``.html`` (Starlette's default)."""
