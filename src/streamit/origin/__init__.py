"""Origin: stores HLS segments (memory ring + disk) and serves playlists and segments over HTTP."""

from streamit.origin.routes import create_origin_router
from streamit.origin.store import SegmentStore, SegmentStoreRegistry

__all__ = ["SegmentStore", "SegmentStoreRegistry", "create_origin_router"]
