"""Cluster roles: ``streamit origin`` and ``streamit api`` (with the database), and ``streamit edge`` and
``streamit discovery`` (without).

They find each other through the Redis registry (``--redis-url``), whose entries are signed with the shared
cluster secret, and all run until SIGINT/SIGTERM (or until the caller's ``stop`` event is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from streamit.api import create_api_app
from streamit.api.liveness import OriginLossReaper
from streamit.app import EmbeddedUvicorn, install_ops_routes, run_node, stop_on_signals
from streamit.config import Settings
from streamit.db import Database
from streamit.discovery import (
    DEFAULT_TTL,
    HlsFolderWatcher,
    RedisControlChannel,
    RedisRegistry,
    normalize_origin_url,
)
from streamit.edge.http import EdgeHttpServer
from streamit.edge.proxy import create_edge_proxy, upstream_client
from streamit.errors import ConfigError
from streamit.hooks import WebhookDispatcher
from streamit.servers.http import http_config
from streamit.servers.memory import return_large_blocks
from streamit.web import install_web

log = logging.getLogger(__name__)

DEFAULT_REDIS_PREFIX = "streamit:"
"""The key prefix every node of a cluster shares unless told otherwise."""


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _redis_registry(settings: Settings, cluster_secret: str, prefix: str, client_name: str) -> RedisRegistry:
    if not settings.redis_url:
        raise ConfigError(
            "this role needs --redis-url (or STREAMIT_REDIS_URL): Redis is the cluster registry"
        )
    if not cluster_secret:
        raise ConfigError("this role needs --cluster-secret (or STREAMIT_CLUSTER_SECRET)")
    return RedisRegistry(settings.redis_url, secret=cluster_secret, prefix=prefix, client_name=client_name)


def _control_channel(
    settings: Settings, cluster_secret: str, prefix: str, client_name: str
) -> RedisControlChannel:
    if not settings.redis_url:
        raise ConfigError("this role needs --redis-url (or STREAMIT_REDIS_URL)")
    return RedisControlChannel(
        settings.redis_url, secret=cluster_secret, prefix=prefix, client_name=f"{client_name}-control"
    )


async def run_origin(
    settings: Settings,
    cluster_secret: str,
    *,
    redis_prefix: str = DEFAULT_REDIS_PREFIX,
    discovery_ttl: float = DEFAULT_TTL,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run what ``streamit serve`` runs, announcing live streams in the Redis registry, until stopped.

    Streams are registered under ``settings.public_url`` (the URL edges reach this origin at), owned by
    ``settings.node_id``, and heartbeated every ``discovery_ttl / 3`` seconds.  Raises :class:`ConfigError`
    when ``settings.public_url``, ``settings.redis_url`` or ``cluster_secret`` is missing and
    :class:`~streamit.errors.InvalidInput` for an unusable public URL.
    """
    if not settings.public_url:
        raise ConfigError("streamit origin needs --public-url: the URL edges reach this origin at")
    normalize_origin_url(settings.public_url)
    registry = _redis_registry(settings, cluster_secret, redis_prefix, f"streamit-origin-{settings.node_id}")
    control = _control_channel(settings, cluster_secret, redis_prefix, f"streamit-origin-{settings.node_id}")
    try:
        async with stop_on_signals(stop) as stopping:
            await run_node(
                settings,
                ready,
                stopping,
                cluster_registry=registry,
                cluster_control=control,
                discovery_ttl=discovery_ttl,
            )
    finally:
        await control.close()
        await registry.close()


async def run_edge(
    settings: Settings,
    cluster_secret: str,
    *,
    redis_prefix: str = DEFAULT_REDIS_PREFIX,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve HLS from the origins the Redis registry names, through the edge cache, until stopped.

    Listens on ``settings.http_host``:``settings.http_port``.  Without ``stop``, SIGINT and SIGTERM stop
    it; ``ready`` is set once the port accepts connections.  Raises :class:`ConfigError` when
    ``settings.redis_url`` or ``cluster_secret`` is missing, :class:`SystemExit` if the port cannot be bound.
    """
    _configure_logging(settings)
    return_large_blocks(settings.malloc_mmap_threshold)
    registry = _redis_registry(settings, cluster_secret, redis_prefix, f"streamit-edge-{settings.node_id}")
    try:
        async with upstream_client() as client, stop_on_signals(stop) as stopping:
            proxy = create_edge_proxy(registry, client=client, node=settings.node_id)
            # Our own HTTP/1.1 server, not uvicorn: it answers cache hits without the ASGI machinery.
            http = EdgeHttpServer(proxy, max_connections=settings.http_max_connections)
            try:
                await http.start(settings.http_host, settings.http_port)
            except OSError as exc:
                raise SystemExit(f"edge HTTP server failed to start: {exc}") from exc
            log.info("edge listening on %s:%d", settings.http_host, http.port)
            if ready is not None:
                ready.set()
            await stopping.wait()
            log.info("edge shutting down")
            await http.stop(grace=settings.http_shutdown_timeout)
    finally:
        await registry.close()
    log.info("edge stopped")


async def run_discovery(
    settings: Settings,
    hls_dir: Path,
    origin_url: str,
    cluster_secret: str,
    *,
    node: str | None = None,
    redis_prefix: str = DEFAULT_REDIS_PREFIX,
    stop: asyncio.Event | None = None,
    rescan_interval: float = 1.0,
) -> None:
    """Register the streams whose playlists appear in ``hls_dir`` as served by ``origin_url``, until stopped.

    ``node`` (default ``settings.node_id``) owns the entries.  On a clean stop every stream this watcher
    registered is withdrawn at once, so edges never serve streams nobody watches any more.  Raises
    :class:`ConfigError` when ``settings.redis_url`` or ``cluster_secret`` is missing and
    :class:`~streamit.errors.InvalidInput` for an unusable ``origin_url``.
    """
    _configure_logging(settings)
    origin = normalize_origin_url(origin_url)
    owner = node or settings.node_id
    registry = _redis_registry(settings, cluster_secret, redis_prefix, f"streamit-discovery-{owner}")
    try:
        watcher = HlsFolderWatcher(
            hls_dir, registry, origin_url=origin, node=owner, rescan_interval=rescan_interval
        )
        async with stop_on_signals(stop) as stopping:
            log.info("watching %s for HLS playlists served by %s (node %s)", hls_dir, origin, owner)
            watch_task = asyncio.create_task(watcher.run())
            stop_wait = asyncio.create_task(stopping.wait())
            await asyncio.wait({stop_wait, watch_task}, return_when=asyncio.FIRST_COMPLETED)
            log.info("discovery shutting down")
            stop_wait.cancel()
            watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch_task
            await watcher.registrar.withdraw_all()
    finally:
        await registry.close()
    log.info("discovery stopped")


async def _serve_http(
    app: FastAPI,
    settings: Settings,
    stopping: asyncio.Event,
    ready: asyncio.Event | None,
    *,
    role: str,
    lifespan: Literal["auto", "on", "off"] = "off",
) -> None:
    """Serve ``app`` on the configured HTTP address until ``stopping`` is set or the server fails."""
    http = EmbeddedUvicorn(http_config(app, settings, lifespan=lifespan))
    http_task = asyncio.create_task(http.serve())
    while not http.started and not http_task.done():
        await asyncio.sleep(0.01)
    if http_task.done():
        http_task.result()
        raise SystemExit(f"{role} HTTP server failed to start")
    log.info("%s listening on %s:%d", role, settings.http_host, settings.http_port)
    if ready is not None:
        ready.set()
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
    log.info("%s shutting down", role)
    stop_wait.cancel()
    http.should_exit = True
    await http_task


async def run_api(
    settings: Settings,
    cluster_secret: str,
    *,
    redis_prefix: str = DEFAULT_REDIS_PREFIX,
    discovery_ttl: float = DEFAULT_TTL,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve the API and the web pages from the database, keeping stream status in step with the registry.

    Streams whose origin stops heartbeating are ended with the reason ``origin lost`` (see
    :class:`~streamit.api.liveness.OriginLossReaper`).  Playback URLs point at ``settings.playback_url``
    (the edges).  ``discovery_ttl`` is the origins' registry TTL (they heartbeat every third of it).
    Raises :class:`ConfigError` when ``settings.redis_url`` or ``cluster_secret`` is missing and
    :class:`~streamit.errors.DatabaseUnavailable` when the database cannot be reached.
    """
    _configure_logging(settings)
    registry = _redis_registry(settings, cluster_secret, redis_prefix, f"streamit-api-{settings.node_id}")
    control = _control_channel(settings, cluster_secret, redis_prefix, f"streamit-api-{settings.node_id}")
    db = Database.from_settings(settings)
    webhooks = WebhookDispatcher(settings)
    try:
        await db.upgrade()
        await webhooks.start()
        # Rotating a key or deleting a stream kicks its publisher on whichever origin holds it.
        app = create_api_app(db, settings, live=control, webhooks=webhooks)
        install_web(app, db, settings, live=control)
        metrics = CollectorRegistry()
        ended = Counter(
            "streamit_streams_origin_lost",
            "Streams ended because their origin stopped heartbeating",
            registry=metrics,
        )
        install_ops_routes(app, db, metrics)
        reaper = OriginLossReaper(
            db, registry, heartbeat=discovery_ttl / 3, webhooks=webhooks, on_end=lambda _record: ended.inc()
        )
        async with stop_on_signals(stop) as stopping:
            sweeps = asyncio.create_task(reaper.run())
            try:
                await _serve_http(app, settings, stopping, ready, role="api")
            finally:
                sweeps.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeps
    finally:
        await webhooks.aclose()
        await control.close()
        await registry.close()
        await db.close()
    log.info("api stopped")
