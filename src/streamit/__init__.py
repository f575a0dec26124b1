"""Streamit: a live-video streaming platform (RTMP ingest, native HLS, origin, edge, API)."""

__version__ = "0.1.0"
