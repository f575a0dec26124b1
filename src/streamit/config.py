"""Typed settings: CLI flags, ``STREAMIT_*`` environment variables and an optional TOML file.

Precedence, highest first: command-line flags, environment, ``--config FILE``, defaults.
"""

from __future__ import annotations

import enum
import socket
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamit.errors import ConfigError


class TakeoverPolicy(enum.Enum):
    """What happens when a second publisher arrives with the key of a stream that is live."""

    TAKEOVER = "takeover"  # the new connection wins; encoders reconnect after network drops
    REJECT = "reject"


class Settings(BaseSettings):
    """All settings of a Streamit process."""

    model_config = SettingsConfigDict(env_prefix="STREAMIT_", extra="ignore")

    rtmp_host: str = "0.0.0.0"
    rtmp_port: int = Field(1935, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    http_port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("./streamit-data")
    database_url: str | None = None
    redis_url: str | None = None
    cluster_secret: str | None = None
    """Signs and verifies cluster registry entries (``edge``, ``discovery``); every node must share it."""
    public_url: str | None = None
    rtmp_public_url: str | None = None
    playback_url: str | None = None
    """Base URL players fetch ``/hls/…`` from (the edges' address in a cluster); default: ``public_url``."""

    takeover: TakeoverPolicy = TakeoverPolicy.TAKEOVER
    hls_segment_duration: float = Field(2.0, gt=0.1, le=60)
    hls_playlist_length: int = Field(6, ge=2, le=1000)
    # Segments are written as they are built; the last ones viewers requested stay in memory (read back
    # once from the page cache), so a stream nobody watches holds none.
    hls_memory_segments: int = Field(1, ge=0, le=100)
    hls_low_latency: bool = True
    """Also package each stream as LL-HLS (fMP4 parts, ``/hls/<slug>/ll.m3u8``) beside the TS playlist."""
    hls_part_duration: float = Field(0.334, ge=0.05, le=5.0)
    """LL-HLS part target in seconds (0.334 s: 10-frame parts at 30 fps); capped at the segment duration."""
    rtmp_max_message_size: int = Field(8 * 1024 * 1024, ge=65536)
    rtmp_max_connections: int = Field(1000, ge=1)
    """RTMP connections this node accepts at once; more are closed on accept and logged."""
    rtmp_max_connections_per_ip: int = Field(50, ge=1)
    """RTMP connections from one IP address at once (a flood from one host cannot starve the others)."""
    rtmp_handshake_timeout: float = Field(10.0, gt=0, le=600)
    """Seconds from accept until the RTMP handshake must be complete, however slowly bytes trickle in."""
    rtmp_idle_timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds an RTMP connection may go without sending a byte before it is closed."""
    rtmp_read_coalesce: float = Field(0.1, ge=0, le=0.5)
    """Seconds a publisher's socket rests after each read, so one read carries several RTMP messages (fewer
    event-loop wake-ups, less CPU per stream); 0 reads as soon as bytes arrive.  Frames wait up to this long
    before they are packaged, so keep it well below ``hls_part_duration``."""
    malloc_mmap_threshold: int = Field(64 * 1024, ge=0, le=32 * 1024 * 1024)
    """Bytes from which glibc's malloc gives a block its own mapping, returned to the system when freed
    (ingest frees large buffers all the time; without it freed memory stays resident); 0 keeps glibc's
    own adaptive threshold, as do ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` in the environment."""
    max_streams: int = Field(1000, ge=1)
    """Streams this node ingests at once; further publishes are refused with ``NetStream.Publish.Failed``."""
    publish_failure_limit: int = Field(10, ge=1)
    """Refused publishes (unknown key …) one IP may have within ``publish_failure_window`` before it is
    refused at once, without a database lookup, until the window has passed: key guessing is slowed down."""
    publish_failure_window: float = Field(60.0, gt=0, le=86400)
    http_max_connections: int = Field(10_000, ge=1)
    """HTTP connections and requests in flight at once; beyond it uvicorn answers 503 instead of queueing."""
    http_shutdown_timeout: int = Field(5, ge=1, le=300)
    """Seconds a stopping node lets HTTP requests in flight finish; those still running then are cancelled,
    so that one request that never ends (a stuck client, a hung upstream) cannot keep the process alive."""
    rtmps_port: int | None = Field(None, ge=0, le=65535)
    """RTMPS (RTMP over TLS) ingest port; needs ``tls_cert_file`` and ``tls_key_file``."""
    tls_cert_file: Path | None = None
    """PEM certificate chain for RTMPS."""
    tls_key_file: Path | None = None
    """PEM private key for RTMPS."""
    log_level: str = "INFO"

    node_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    """Names this process in publish sessions; crash recovery closes only this node's sessions."""
    secret_key: str | None = None
    """Encrypts stream keys at rest so owners can see them again; default: ``<data-dir>/secret.key``."""

    on_publish_url: str | None = None
    """nginx-rtmp-style authorisation callback: 2xx allows, 3xx ``Location`` renames, else refuses."""
    on_publish_done_url: str | None = None
    on_update_url: str | None = None
    on_update_interval: float = Field(30.0, ge=1.0, le=3600.0)
    hook_timeout: float = Field(3.0, gt=0.0, le=60.0)
    hook_secret: str | None = None
    """Signs outgoing callbacks and webhooks with HMAC-SHA256 when set."""
    webhook_urls: list[str] = Field(default_factory=list)
    """Receivers of JSON ``stream.live`` / ``stream.ended`` events."""
    web_vendor_dir: Path | None = None
    """``node_modules`` holding the web pages' npm assets (hls.js); default: ``./node_modules``, else the
    source checkout's (``npm ci`` installs them)."""

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The database URL; SQLite at ``<data-dir>/streamit.db`` unless configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamit.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """Base URL viewers use for HTTP (playlists, pages)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://localhost:{self.http_port}"

    @property
    def resolved_playback_url(self) -> str:
        """Base URL of HLS delivery: ``playback_url``, else the public URL."""
        if self.playback_url:
            return self.playback_url.rstrip("/")
        return self.resolved_public_url

    @property
    def resolved_rtmp_url(self) -> str:
        """Base URL broadcasters use to publish, without the stream key."""
        if self.rtmp_public_url:
            return self.rtmp_public_url.rstrip("/")
        return f"rtmp://localhost:{self.rtmp_port}/live"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit ``overrides``.

    ``overrides`` whose value is ``None`` are ignored, so unset CLI flags do not mask the environment.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            with config_file.open("rb") as fh:
                raw = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        section = raw.get("streamit", raw)
        file_values = {str(k).replace("-", "_"): v for k, v in section.items()}
    explicit = {k: v for k, v in overrides.items() if v is not None}
    env_settings = Settings()
    merged: dict[str, Any] = dict(file_values)
    # Environment wins over the file: take only fields the environment actually set.
    merged.update({k: getattr(env_settings, k) for k in env_settings.model_fields_set})
    merged.update(explicit)
    try:
        return Settings.model_validate(merged)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
