"""``streamit serve``: RTMP ingest, HLS packaging, origin HTTP and the API in one process and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database
from streamit.discovery import (
    DEFAULT_TTL,
    DisconnectCommand,
    MemoryRegistry,
    OriginRegistrar,
    RedisControlChannel,
    Registry,
)
from streamit.errors import InvalidInput
from streamit.hooks import PublishCallbacks, WebhookDispatcher
from streamit.origin import SegmentStoreRegistry, create_origin_router
from streamit.origin.routes import HlsResponder
from streamit.origin.store import PlaylistWriter
from streamit.servers.http import http_config
from streamit.servers.ingest import IngestService
from streamit.servers.memory import return_large_blocks
from streamit.servers.rtmp import RtmpServer, tls_context
from streamit.servers.shutdown import ShutdownWatchdog
from streamit.web import install_web

log = logging.getLogger(__name__)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (cheaper per socket read), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn running inside our event loop; signals are ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def create_app(
    settings: Settings, db: Database, stores: SegmentStoreRegistry, ingest: IngestService
) -> FastAPI:
    """The HTTP application: API, origin routes, health and metrics."""
    app = create_api_app(db, settings, live=ingest, webhooks=ingest.webhooks)
    registry = CollectorRegistry()
    responder = HlsResponder(
        stores, segment_duration=settings.hls_segment_duration, metrics=registry, ll_stores=ingest.ll_stores
    )
    app.include_router(
        create_origin_router(stores, segment_duration=settings.hls_segment_duration, responder=responder)
    )
    # The HTTP server answers plain HLS requests from the same responder without the framework.
    app.state.hls_responder = responder
    install_web(app, db, settings, live=ingest)
    live_streams = Gauge("streamit_live_streams", "Streams with a publisher on this node", registry=registry)
    live_streams.set_function(lambda: sum(1 for c in ingest.channels.values() if c.owner is not None))
    install_ops_routes(app, db, registry, disk_errors=stores.write_errors)
    return app


def install_ops_routes(
    app: FastAPI,
    db: Database,
    metrics: CollectorRegistry,
    *,
    disk_errors: Callable[[], dict[str, str]] | None = None,
) -> None:
    """``/healthz`` (the process runs), ``/readyz`` (its database answers and, on an origin, segments can
    be written: ``disk_errors`` names the streams whose writes fail) and ``/metrics`` (Prometheus)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        if not await db.ping():
            return JSONResponse({"status": "unavailable", "detail": "database unreachable"}, 503)
        failing = disk_errors() if disk_errors is not None else {}
        if failing:
            detail = "; ".join(f"{slug}: {reason}" for slug, reason in sorted(failing.items()))
            return JSONResponse(
                {"status": "degraded", "detail": f"segments cannot be written to disk ({detail})"}, 503
            )
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)


@contextlib.asynccontextmanager
async def stop_on_signals(stop: asyncio.Event | None = None) -> AsyncIterator[asyncio.Event]:
    """The event that ends a process role: the caller's ``stop``, or one that SIGINT/SIGTERM sets.

    From the signal on, a :class:`ShutdownWatchdog` logs the tasks a slow stop still waits for (it stays
    armed after this block, through the role's closing steps, until the event loop ends).
    """
    if stop is not None:
        yield stop
        return
    owned = asyncio.Event()
    loop = asyncio.get_running_loop()
    watchdog = ShutdownWatchdog(loop)

    def stop_now() -> None:
        owned.set()
        watchdog.arm()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_now)
    try:
        yield owned
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(
    settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run everything until SIGINT/SIGTERM, then shut down cleanly (ENDLIST, streams ENDED)."""
    async with stop_on_signals(stop) as stopping:
        await run_node(settings, ready, stopping)


def _registrar(
    settings: Settings, registry: Registry, ttl: float, *, required: bool
) -> OriginRegistrar | None:
    """The registrar announcing this node's streams under its public URL.

    A cluster origin (``required``) cannot run without one; the all-in-one server only warns when its
    public URL cannot name an origin (e.g. an ephemeral port), since nothing outside it reads the registry.
    """
    try:
        return OriginRegistrar(
            registry, origin_url=settings.resolved_public_url, node=settings.node_id, ttl=ttl
        )
    except InvalidInput as exc:
        if required:
            raise
        log.warning("streams are not registered for discovery: %s", exc)
        return None


async def run_node(
    settings: Settings,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    *,
    cluster_registry: Registry | None = None,
    cluster_control: RedisControlChannel | None = None,
    discovery_ttl: float = DEFAULT_TTL,
) -> None:
    """Run ingest, packaging and HTTP until ``stop`` is set.

    Live streams are registered in ``cluster_registry`` (a cluster origin; it is closed at the end) or, for
    the all-in-one server, in a :class:`MemoryRegistry`, always under ``settings.resolved_public_url``.
    """
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return_large_blocks(settings.malloc_mmap_threshold)
    # Configuration errors surface before anything starts.
    tls = None
    if settings.rtmps_port is not None:
        tls = tls_context(settings.tls_cert_file, settings.tls_key_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.from_settings(settings)
    await db.upgrade()
    # A crash or kill must not leave a stream LIVE forever: this node's open sessions end as "crash", and
    # in the all-in-one server nothing else can be live either.
    now = datetime.now(UTC)
    crashed = await db.recover_node(settings.node_id, now)
    # A cluster origin may share its database with other origins whose streams are live.
    recovered = await db.streams.end_all_live(now) if cluster_registry is None else 0
    if crashed or recovered:
        log.warning(
            "closed %d session(s) and marked %d more stream(s) ENDED left LIVE when the previous run stopped",
            len(crashed),
            recovered,
        )
    stores = SegmentStoreRegistry(
        settings.data_dir / "hls", memory_segments=settings.hls_memory_segments, writer=PlaylistWriter()
    )
    for slug in stores.close_stale_playlists():
        log.warning("stream %s: closed the playlist a previous run left open", slug)
    callbacks = PublishCallbacks(settings)
    webhooks = WebhookDispatcher(settings)
    await webhooks.start()
    registry: Registry = cluster_registry if cluster_registry is not None else MemoryRegistry()
    registrar = _registrar(settings, registry, discovery_ttl, required=cluster_registry is not None)
    ingest = IngestService(settings, db, stores, callbacks=callbacks, webhooks=webhooks, registrar=registrar)
    rtmp = RtmpServer.from_settings(ingest, settings)
    app = create_app(settings, db, stores, ingest)
    responder: HlsResponder = app.state.hls_responder
    http = EmbeddedUvicorn(http_config(app, settings, lifespan="off", fast_path=responder.fast))
    await rtmp.start(settings.rtmp_host, settings.rtmp_port)
    if tls is not None and settings.rtmps_port is not None:
        await rtmp.start(settings.rtmp_host, settings.rtmps_port, tls=tls)
    http_task = asyncio.create_task(http.serve())
    reporter = asyncio.create_task(ingest.report_live_info())
    while not http.started and not http_task.done():
        await asyncio.sleep(0.01)
    if http_task.done():
        await rtmp.close()
        await registry.close()
        await webhooks.aclose()
        await callbacks.aclose()
        await db.close()
        await asyncio.to_thread(stores.close)
        http_task.result()
        raise SystemExit("HTTP server failed to start")
    log.info("HTTP listening on %s:%d", settings.http_host, settings.http_port)
    log.info(
        "publish to %s/<stream key>; watch at %s/", settings.resolved_rtmp_url, settings.resolved_public_url
    )
    heartbeats = asyncio.create_task(registrar.run()) if registrar is not None else None
    # The API of a cluster asks, through this channel, to kick the publisher of a rotated or deleted key.
    commands = None
    if cluster_control is not None:

        async def obey(command: DisconnectCommand) -> None:
            await ingest.disconnect(command.stream_id, command.reason)

        commands = asyncio.create_task(cluster_control.listen(obey))
    if ready is not None:
        ready.set()
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down")
    reporter.cancel()
    if commands is not None:
        commands.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await commands
    await rtmp.close()
    if heartbeats is not None and registrar is not None:
        heartbeats.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeats
        await registrar.withdraw_all()
    await registry.close()
    http.should_exit = True
    await http_task
    stop_wait.cancel()
    await webhooks.aclose()
    await callbacks.aclose()
    await db.close()
    # The ended streams' last playlists (with EXT-X-ENDLIST) reach the disk before the process ends.
    await asyncio.to_thread(stores.close)
    log.info("stopped")
