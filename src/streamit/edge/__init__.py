"""Edge: HLS delivery from each stream's origin through a byte-bounded cache with single-flight fetches."""

from streamit.edge.cache import ByteLruCache, CachedObject, fresh_until, playlist_target_duration
from streamit.edge.locations import LocationCache, Resolver
from streamit.edge.proxy import EdgeProxy, create_edge_app
from streamit.edge.singleflight import Flight, SingleFlight

__all__ = [
    "ByteLruCache",
    "CachedObject",
    "EdgeProxy",
    "Flight",
    "LocationCache",
    "Resolver",
    "SingleFlight",
    "create_edge_app",
    "fresh_until",
    "playlist_target_duration",
]
