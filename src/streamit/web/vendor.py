"""Third-party browser assets installed by npm (``package-lock.json``), served under ``/static/vendor/``.

They are never copied into git nor fetched from a CDN: ``npm ci`` puts them in ``node_modules`` and the server
serves the few files the pages load from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import streamit
from streamit.config import Settings

log = logging.getLogger(__name__)

HLS_JS_DIST = Path("hls.js") / "dist"
HLS_JS_FILE = "hls.min.js"
VENDOR_FILES: dict[str, tuple[Path, str]] = {
    HLS_JS_FILE: (HLS_JS_DIST / HLS_JS_FILE, "text/javascript; charset=utf-8"),
    f"{HLS_JS_FILE}.map": (HLS_JS_DIST / f"{HLS_JS_FILE}.map", "application/json"),
}
"""URL name under ``/static/vendor/`` → (path inside ``node_modules``, content type)."""

MISSING_HLS_JS = (
    "the watch page's player library hls.js is not installed (run `npm ci` in the Streamit checkout, or "
    "point STREAMIT_WEB_VENDOR_DIR at a node_modules holding hls.js); pages fall back to the browser's "
    "native HLS where it has one"
)


def source_checkout_node_modules() -> Path:
    """``node_modules`` next to ``pyproject.toml`` when Streamit runs from a source checkout."""
    return Path(streamit.__file__).resolve().parents[2] / "node_modules"


def candidate_node_modules(settings: Settings, cwd: Path | None = None) -> list[Path]:
    """Where hls.js is looked for, in order: the setting alone when set, else ``<cwd>`` then the checkout."""
    if settings.web_vendor_dir is not None:
        return [settings.web_vendor_dir.expanduser()]
    return [(cwd or Path.cwd()) / "node_modules", source_checkout_node_modules()]


@dataclass(frozen=True)
class VendorAssets:
    """The ``node_modules`` directory the vendor files come from (``None``: not installed)."""

    node_modules: Path | None

    @classmethod
    def locate(cls, settings: Settings, cwd: Path | None = None) -> VendorAssets:
        """The first candidate directory that holds hls.js; logs one warning when none does."""
        for directory in candidate_node_modules(settings, cwd):
            if (directory / HLS_JS_DIST / HLS_JS_FILE).is_file():
                return cls(directory)
        log.warning(MISSING_HLS_JS)
        return cls(None)

    @property
    def has_hls_js(self) -> bool:
        """Whether ``/static/vendor/hls.min.js`` can be served."""
        return self.node_modules is not None

    def file(self, name: str) -> tuple[Path, str] | None:
        """Path and content type of the vendor file ``name``, or ``None`` if unknown or not installed."""
        entry = VENDOR_FILES.get(name)
        if entry is None or self.node_modules is None:
            return None
        relative, content_type = entry
        path = self.node_modules / relative
        return (path, content_type) if path.is_file() else None
