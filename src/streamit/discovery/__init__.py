"""Stream discovery: which origin serves which live stream.

A :class:`Registry` maps slugs to :class:`StreamLocation` entries that expire unless heartbeated:
:class:`MemoryRegistry` in one process (``streamit serve``), :class:`RedisRegistry` across a cluster
(entries signed with the cluster secret).  Origins keep their streams registered through an
:class:`OriginRegistrar`; :class:`HlsFolderWatcher` does the same for playlists another packager writes.
"""

from streamit.discovery.control import CommandSigner, DisconnectCommand, RedisControlChannel
from streamit.discovery.entry import EntrySigner, decode_entry, encode_entry
from streamit.discovery.location import StreamLocation, is_valid_slug, normalize_origin_url
from streamit.discovery.memory import MemoryRegistry
from streamit.discovery.playlist_summary import PlaylistSummary, summarize_playlist
from streamit.discovery.redis_registry import RedisRegistry
from streamit.discovery.registrar import OriginRegistrar
from streamit.discovery.registry import DEFAULT_TTL, Registry
from streamit.discovery.watcher import HlsFolderWatcher, PlaylistState

__all__ = [
    "DEFAULT_TTL",
    "CommandSigner",
    "DisconnectCommand",
    "EntrySigner",
    "HlsFolderWatcher",
    "MemoryRegistry",
    "OriginRegistrar",
    "PlaylistState",
    "PlaylistSummary",
    "RedisControlChannel",
    "RedisRegistry",
    "Registry",
    "StreamLocation",
    "decode_entry",
    "encode_entry",
    "is_valid_slug",
    "normalize_origin_url",
    "summarize_playlist",
]
