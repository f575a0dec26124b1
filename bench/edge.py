"""Edge benchmark: a Streamit edge beside nginx on cache hits, and origin fetches under 1,000 viewers.

Two measurements, in one run:

* **Cache hits.** ``wrk`` (same threads, connections and duration for both) against a live playlist and a
  1 MiB segment, served (a) by nginx straight from disk (``sendfile on``, one worker) and (b) by a real
  ``streamit edge`` process whose registered origin is that same nginx, after a warm-up that leaves both
  objects in the edge's cache (``X-Cache: HIT`` checked, and the edge's hit counter read around each run).
  Requests/s, MB/s, latency and the server's CPU, medians over runs, and the ratio edge / nginx.
* **Fan-out.** ffmpeg publishes a live stream to a real ``streamit origin``; two ``streamit edge``
  processes serve it to simulated viewers (asyncio, one keep-alive HTTP/1.1 connection each, half per
  edge) that poll the playlist every half target duration and fetch every new segment.  The origin's own
  ``/metrics`` (``streamit_hls_requests_total``) counts what the edges fetched: origin fetches per segment
  per edge, next to each edge's own upstream counter and every viewer error.

Run with the project's venv::

    .venv/bin/python bench/edge.py [--runs 3] [--duration 10] [--connections 50] [--viewers 1000] \
        [--fanout-duration 30] [--output docs/benchmarks.md] [--quick]

Needs ``wrk``, ``nginx``, ``ffmpeg`` and a Redis server (``--redis-url``, default ``$STREAMIT_TEST_REDIS_URL``
or ``redis://127.0.0.1:6379/0``; every key lives under a fresh prefix and is removed at the end).
The results go into their own marked section of ``docs/benchmarks.md``; ``bench/ingest.py`` keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import redis
from ingest import (
    MARKED_SECTION,
    REPO_DIR,
    WORK_DIR,
    BenchError,
    Children,
    Interrupted,
    _raise_on_signal,
    first_line,
    fmt,
    free_port,
    log_tail,
    machine_facts,
    markdown_table,
    parse_playlist,
    port_accepts,
    tree_cpu_seconds,
    wait_until,
)

from streamit.discovery import RedisRegistry, StreamLocation

SECTION_NAME = "bench/edge.py"
SLUG = "edge-bench"
PLAYLIST_PATH = f"/hls/{SLUG}/index.m3u8"
FIRST_SEQUENCE = 100
SEGMENT_COUNT = 6
TARGET_DURATION = 2
# 5,578 TS packets of 188 bytes: the smallest whole number of packets of at least 1 MiB.
SEGMENT_BYTES = 188 * 5578
HIT_SEGMENT = f"seg{FIRST_SEQUENCE + SEGMENT_COUNT - 1}.ts"
HIT_TARGETS = (("playlist", PLAYLIST_PATH), ("segment", f"/hls/{SLUG}/{HIT_SEGMENT}"))
SERVERS = ("nginx", "edge")
LIVE_CLIP_NAME = "edge-clip.flv"
REQUEST_TIMEOUT = 10.0
VIEWER_FAILURES = (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
MB = 1_000_000


# --------------------------------------------------------------------------------------------------------
# wrk


WRK_SCRIPT = """\
-- Prints wrk's summary as one JSON line, so that nothing depends on its human-readable units.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclasses.dataclass(frozen=True, slots=True)
class WrkResult:
    """What one ``wrk`` run reports (its ``done`` summary)."""

    requests: int
    bytes: int
    duration_s: float
    socket_errors: int
    bad_status: int
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def mb_per_s(self) -> float:
        """Response bytes (headers included) per second, in MB (10^6 bytes)."""
        return self.bytes / self.duration_s / MB

    @property
    def errors(self) -> int:
        return self.socket_errors + self.bad_status


def parse_wrk_output(text: str) -> WrkResult:
    """The ``WRK_RESULT`` line that :data:`WRK_SCRIPT` prints; ``ValueError`` if it is missing or broken."""
    for line in text.splitlines():
        if line.startswith("WRK_RESULT "):
            fields = json.loads(line.partition(" ")[2])
            if fields["duration_us"] <= 0:
                raise ValueError("wrk reported a zero duration")
            return WrkResult(
                requests=int(fields["requests"]),
                bytes=int(fields["bytes"]),
                duration_s=fields["duration_us"] / 1e6,
                socket_errors=sum(int(fields[k]) for k in ("connect", "read", "write", "timeout")),
                bad_status=int(fields["status"]),
                p50_ms=fields["p50_us"] / 1000,
                p99_ms=fields["p99_us"] / 1000,
            )
    raise ValueError("no WRK_RESULT line in wrk's output")


def run_wrk(script: Path, url: str, *, threads: int, connections: int, duration: float) -> WrkResult:
    """One ``wrk`` run against ``url``."""
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--timeout", f"{REQUEST_TIMEOUT:g}s", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr.strip()[:500]}")
    try:
        return parse_wrk_output(done.stdout)
    except (ValueError, KeyError) as exc:
        raise BenchError(f"unexpected wrk output ({exc}):\n{done.stdout[:500]}") from None


# --------------------------------------------------------------------------------------------------------
# Files, nginx, Redis, Streamit processes


def live_playlist(first_sequence: int = FIRST_SEQUENCE, count: int = SEGMENT_COUNT) -> str:
    """A live media playlist (no ENDLIST) as an origin serves it (RFC 8216 §4.3.3)."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{TARGET_DURATION}",
        f"#EXT-X-MEDIA-SEQUENCE:{first_sequence}",
    ]
    for sequence in range(first_sequence, first_sequence + count):
        lines += [f"#EXTINF:{TARGET_DURATION:.3f},", f"seg{sequence}.ts"]
    return "\n".join(lines) + "\n"


def segment_bytes(sequence: int) -> bytes:
    """``SEGMENT_BYTES`` of MPEG-TS null packets (PID 0x1FFF), continuity counters running, seeded payload."""
    rng = random.Random(sequence)
    payload = rng.randbytes(184)
    return b"".join(
        bytes((0x47, 0x1F, 0xFF, 0x10 | (i & 0x0F))) + payload for i in range(SEGMENT_BYTES // 188)
    )


def write_hls_files(root: Path) -> dict[str, bytes]:
    """The playlist and its segments under ``root/hls/<slug>/``; path → body."""
    directory = root / "hls" / SLUG
    directory.mkdir(parents=True)
    objects = {PLAYLIST_PATH: live_playlist().encode()}
    for sequence in range(FIRST_SEQUENCE, FIRST_SEQUENCE + SEGMENT_COUNT):
        objects[f"/hls/{SLUG}/seg{sequence}.ts"] = segment_bytes(sequence)
    for path, body in objects.items():
        (root / path.lstrip("/")).write_bytes(body)
    return objects


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
    }}
}}
"""


def start_nginx(children: Children, run_dir: Path) -> tuple[int, int]:
    """Debian nginx serving ``run_dir/www``; (port, master pid)."""
    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = run_dir / "nginx.conf"
    user = "root" if os.geteuid() == 0 else "nobody"  # workers must read the private run directory
    conf.write_text(NGINX_CONF.format(user=user, dir=run_dir, port=port))
    proc = children.spawn(["nginx", "-c", str(conf), "-p", f"{run_dir}/"], run_dir / "nginx-stderr.log")
    try:
        wait_until(lambda: port_accepts(port), proc, 15, "nginx")
    except BenchError as exc:
        raise BenchError(f"{exc}\n{log_tail(run_dir / 'error.log')}") from None
    return port, proc.pid


@dataclasses.dataclass(frozen=True, slots=True)
class Cluster:
    """What every Streamit node of one benchmark shares: Redis, its key prefix and the cluster secret."""

    redis_url: str
    prefix: str
    secret: str

    @classmethod
    def fresh(cls, redis_url: str) -> Cluster:
        return cls(redis_url, f"streamit-bench-edge-{secrets.token_hex(6)}:", secrets.token_urlsafe(24))

    @property
    def flags(self) -> list[str]:
        return ["--redis-url", self.redis_url, "--cluster-secret", self.secret, "--redis-prefix", self.prefix]

    def registry(self) -> RedisRegistry:
        return RedisRegistry(self.redis_url, secret=self.secret, prefix=self.prefix, client_name="bench")

    def remove_keys(self) -> None:
        """Delete whatever is left under the prefix."""
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=self.prefix + "*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def check_redis(url: str) -> str:
    """Redis' version; ``BenchError`` when it does not answer."""
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        info: dict[str, Any] = client.info("server")
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {url} does not answer ({exc}); give --redis-url") from None
    finally:
        client.close()
    return str(info.get("redis_version", "?"))


def register_static_origin(cluster: Cluster, origin_url: str) -> None:
    """Announce the benchmark's stream as served by ``origin_url`` (a static server), for an hour."""

    async def register() -> None:
        registry = cluster.registry()
        try:
            location = StreamLocation(
                slug=SLUG,
                origin_url=origin_url,
                node="bench-static-origin",
                started_at=datetime.datetime.now(datetime.UTC),
            )
            await registry.register(location, ttl=3600)
        finally:
            await registry.close()

    asyncio.run(register())


def streamit_env(node: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        STREAMIT_RTMP_HOST="127.0.0.1",
        STREAMIT_HTTP_HOST="127.0.0.1",
        STREAMIT_LOG_LEVEL="WARNING",
        STREAMIT_NODE_ID=node,
    )
    return env


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def start_edge(
    children: Children, settings: Settings, cluster: Cluster, run_dir: Path, node: str
) -> tuple[str, int]:
    """A ``streamit edge`` process; (base URL, pid)."""
    port = free_port()
    argv = [
        str(settings.streamit_executable), "edge", "--http-port", str(port),
        "--data-dir", str(run_dir / f"{node}-data"), *cluster.flags,
    ]  # fmt: skip
    log = run_dir / f"{node}.log"
    proc = children.spawn(argv, log, env=streamit_env(node))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base), proc, 30, f"streamit edge {node}")
    except BenchError as exc:
        raise BenchError(f"{exc}\n{log_tail(log)}") from None
    return base, proc.pid


def metric(base: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus ``/metrics`` page (0 when the series does not exist yet)."""
    text = httpx.get(f"{base}/metrics", timeout=5.0, trust_env=False).text
    return metric_value(text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of ``name{labels}`` in Prometheus text exposition format (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# --------------------------------------------------------------------------------------------------------
# Settings


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Parameters of the whole benchmark."""

    runs: int
    duration: float
    warmup: float
    threads: int
    connections: int
    viewers: int
    edges: int
    fanout_duration: float
    parts: tuple[str, ...]
    redis_url: str
    streamit_executable: Path
    keep: bool
    work_dir: Path = WORK_DIR


# --------------------------------------------------------------------------------------------------------
# Part 1: cache hits beside nginx


@dataclasses.dataclass(frozen=True, slots=True)
class HitResult:
    """One wrk run of one server on one target."""

    run: int
    target: str
    server: str
    wrk: WrkResult
    server_cpu_s: float
    hit_fraction: float | None = None

    @property
    def cpu_percent(self) -> float:
        return 100 * self.server_cpu_s / self.wrk.duration_s

    @property
    def requests_per_cpu_s(self) -> float | None:
        """Requests answered per second of server CPU: what a request costs, whoever else wants the CPU."""
        return self.wrk.requests / self.server_cpu_s if self.server_cpu_s > 0 else None


@dataclasses.dataclass(frozen=True, slots=True)
class HitSummary:
    """Medians over runs of one server on one target."""

    target: str
    server: str
    runs: int
    requests_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_percent: float
    requests_per_cpu_s: float | None
    errors: int
    hit_fraction: float | None


def summarize_hits(results: Sequence[HitResult], target: str, server: str) -> HitSummary | None:
    mine = [r for r in results if r.target == target and r.server == server]
    if not mine:
        return None
    fractions = [r.hit_fraction for r in mine if r.hit_fraction is not None]
    per_cpu = [v for r in mine if (v := r.requests_per_cpu_s) is not None]
    return HitSummary(
        target=target,
        server=server,
        runs=len(mine),
        requests_per_s=statistics.median(r.wrk.requests_per_s for r in mine),
        mb_per_s=statistics.median(r.wrk.mb_per_s for r in mine),
        p50_ms=statistics.median(r.wrk.p50_ms for r in mine),
        p99_ms=statistics.median(r.wrk.p99_ms for r in mine),
        cpu_percent=statistics.median(r.cpu_percent for r in mine),
        requests_per_cpu_s=statistics.median(per_cpu) if per_cpu else None,
        errors=sum(r.wrk.errors for r in mine),
        hit_fraction=min(fractions) if fractions else None,
    )


def expect_object(url: str, body: bytes, *, want_hit: bool) -> None:
    """GET ``url`` until it returns ``body`` (and, for the edge, ``X-Cache: HIT``)."""
    deadline = time.monotonic() + 10
    last = ""
    while time.monotonic() < deadline:
        response = httpx.get(url, timeout=5.0, trust_env=False)
        served = response.status_code == 200 and response.content == body
        if served and (not want_hit or response.headers.get("x-cache") == "HIT"):
            return
        last = f"{response.status_code} X-Cache={response.headers.get('x-cache')} {len(response.content)} B"
        time.sleep(0.1)
    raise BenchError(f"{url} did not serve the expected object{' from cache' if want_hit else ''}: {last}")


def measure_hits(settings: Settings, cluster: Cluster, run_dir: Path) -> list[HitResult]:
    """Part 1: wrk on nginx and on the edge, same targets, alternating which goes first each run."""
    results: list[HitResult] = []
    script = run_dir / "summary.lua"
    script.write_text(WRK_SCRIPT)
    with Children() as children:
        objects = write_hls_files(run_dir / "www")
        nginx_port, nginx_pid = start_nginx(children, run_dir)
        nginx = f"http://127.0.0.1:{nginx_port}"
        register_static_origin(cluster, nginx)
        edge, edge_pid = start_edge(children, settings, cluster, run_dir, "bench-edge-hits")
        bases = {"nginx": (nginx, nginx_pid), "edge": (edge, edge_pid)}
        for _, path in HIT_TARGETS:
            expect_object(nginx + path, objects[path], want_hit=False)
            expect_object(edge + path, objects[path], want_hit=True)
        for run in range(1, settings.runs + 1):
            print(f"cache hits, run {run}/{settings.runs}", flush=True)
            for target, path in HIT_TARGETS:
                order = SERVERS if run % 2 else tuple(reversed(SERVERS))
                for server in order:
                    base, pid = bases[server]
                    url = base + path
                    if settings.warmup > 0:
                        run_wrk(
                            script,
                            url,
                            threads=settings.threads,
                            connections=settings.connections,
                            duration=settings.warmup,
                        )
                    hits_before = total_before = 0.0
                    if server == "edge":
                        hits_before, total_before = edge_request_counts(base)
                    cpu_before = tree_cpu_seconds(pid)
                    wrk = run_wrk(
                        script,
                        url,
                        threads=settings.threads,
                        connections=settings.connections,
                        duration=settings.duration,
                    )
                    cpu = tree_cpu_seconds(pid) - cpu_before
                    fraction = None
                    if server == "edge":
                        hits_after, total_after = edge_request_counts(base)
                        answered = total_after - total_before
                        fraction = (hits_after - hits_before) / answered if answered else 0.0
                    result = HitResult(run, target, server, wrk, cpu, fraction)
                    results.append(result)
                    print_hit(result)
        if healthy(edge):
            for _, path in HIT_TARGETS:
                expect_object(edge + path, objects[path], want_hit=False)
    return results


def edge_request_counts(base: str) -> tuple[float, float]:
    """(cache hits, all HLS requests) an edge answered so far."""
    text = httpx.get(f"{base}/metrics", timeout=5.0, trust_env=False).text
    outcomes = {c: metric_value(text, "streamit_edge_requests_total", cache=c) for c in ("HIT", "MISS")}
    coalesced = metric_value(text, "streamit_edge_requests_total", cache="COALESCED")
    return outcomes["HIT"], outcomes["HIT"] + outcomes["MISS"] + coalesced


def print_hit(r: HitResult) -> None:
    hit = f"  hits {100 * r.hit_fraction:.2f} %" if r.hit_fraction is not None else ""
    print(
        f"  {r.target:8} {r.server:5} {r.wrk.requests_per_s:9.0f} req/s {r.wrk.mb_per_s:8.1f} MB/s  "
        f"p50 {r.wrk.p50_ms:6.2f} ms  p99 {r.wrk.p99_ms:6.2f} ms  cpu {r.cpu_percent:5.1f} %  "
        f"errors {r.wrk.errors}{hit}",
        flush=True,
    )


# --------------------------------------------------------------------------------------------------------
# Part 2: fan-out, origin fetches per segment


class HttpConnection:
    """One viewer's keep-alive HTTP/1.1 connection (GET only), reopened after any failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of ``GET path``; any failure closes the connection and propagates."""
        try:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None
            request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: bench\r\n\r\n"
            self._writer.write(request.encode("ascii"))
            head = await self._reader.readuntil(b"\r\n\r\n")
            status, headers = parse_response_head(head)
            if "content-length" in headers:
                body = await self._reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await read_chunked(self._reader)
            else:
                raise ValueError("response without Content-Length or chunked encoding")
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return status, body
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased header fields of an HTTP/1.1 response head (RFC 9112 §4, §5).

    Raises ``ValueError`` for anything that is not one.
    """
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"malformed header line: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None and not length.isdigit():
        raise ValueError(f"bad Content-Length {length!r}")
    return int(code), headers


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (RFC 9112 §7.1), trailers skipped."""
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk not followed by CRLF")


@dataclasses.dataclass
class EdgeLoad:
    """What the viewers of one edge did."""

    playlist_requests: int = 0
    segment_requests: int = 0
    body_bytes: int = 0
    segments: set[str] = dataclasses.field(default_factory=set)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    segment_latencies: list[float] = dataclasses.field(default_factory=list)
    segment_sizes: dict[str, int] = dataclasses.field(default_factory=dict)


def target_duration_of(text: str) -> float:
    match = re.search(r"^#EXT-X-TARGETDURATION:\s*(\d+)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError("playlist without EXT-X-TARGETDURATION")
    return float(match.group(1))


async def viewer(
    connection: HttpConnection, load: EdgeLoad, playlist_path: str, start_delay: float, deadline: float
) -> None:
    """Poll the playlist every half target duration; fetch each segment not seen before.

    A viewer joins at the live edge (its first playlist's newest segment), as a player would after its
    start-up buffer.
    """
    loop = asyncio.get_running_loop()
    await asyncio.sleep(start_delay)
    seen: set[str] | None = None
    interval = TARGET_DURATION / 2
    try:
        while loop.time() < deadline:
            polled = loop.time()
            try:
                status, body = await asyncio.wait_for(connection.get(playlist_path), REQUEST_TIMEOUT)
                load.playlist_requests += 1
                if status != 200:
                    load.errors[f"playlist HTTP {status}"] += 1
                else:
                    text = body.decode("utf-8")
                    interval = target_duration_of(text) / 2
                    names = parse_playlist(text).segments
                    fresh = [n for n in names if seen is None or n not in seen]
                    if seen is None:
                        fresh = fresh[-1:]
                    seen = set(names)
                    for name in fresh:
                        path = urljoin(playlist_path, name)
                        started = time.perf_counter()
                        status, segment = await asyncio.wait_for(connection.get(path), REQUEST_TIMEOUT)
                        load.segment_requests += 1
                        load.segments.add(path)
                        load.body_bytes += len(segment)
                        if status != 200 or not segment:
                            load.errors[f"segment HTTP {status}"] += 1
                        else:
                            load.segment_latencies.append(time.perf_counter() - started)
                            load.segment_sizes[path] = len(segment)
                load.body_bytes += len(body)
            except VIEWER_FAILURES as exc:
                load.errors[type(exc).__name__] += 1
            await asyncio.sleep(max(0.0, polled + interval - loop.time()))
    finally:
        await connection.close()


async def run_viewers(edges: Sequence[str], viewers: int, duration: float) -> list[EdgeLoad]:
    """``viewers`` viewers spread evenly over ``edges`` (base URLs) for ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    loads = [EdgeLoad() for _ in edges]
    start = loop.time()
    deadline = start + duration
    tasks = []
    rng = random.Random(4)
    for i in range(viewers):
        index = i % len(edges)
        host, _, port = edges[index].removeprefix("http://").partition(":")
        # Joins spread over one poll interval, so that polls do not arrive in lock step.
        delay = rng.uniform(0, TARGET_DURATION / 2)
        connection = HttpConnection(host, int(port))
        tasks.append(asyncio.create_task(viewer(connection, loads[index], PLAYLIST_PATH, delay, deadline)))
    await asyncio.gather(*tasks)
    return loads


@dataclasses.dataclass(frozen=True, slots=True)
class FanoutResult:
    """Part 2: one live stream, ``viewers`` viewers over ``edges`` edges."""

    viewers: int
    edges: int
    window_s: float
    origin_segment_fetches: int
    origin_playlist_fetches: int
    edge_segment_fetches: tuple[int, ...]
    edge_playlist_fetches: tuple[int, ...]
    segments_per_edge: tuple[int, ...]
    playlist_requests: int
    segment_requests: int
    body_bytes: int
    errors: dict[str, int]
    segment_p50_ms: float | None
    segment_p99_ms: float | None
    segment_bytes_median: int

    @property
    def fetches_per_segment_per_edge(self) -> float | None:
        """Origin-side: segment fetches the origin served / (segments requested, summed over the edges)."""
        wanted = sum(self.segments_per_edge)
        return self.origin_segment_fetches / wanted if wanted else None

    @property
    def per_edge_fetches_per_segment(self) -> tuple[float | None, ...]:
        """Each edge's own upstream segment fetches per segment its viewers requested."""
        return tuple(
            fetches / segments if segments else None
            for fetches, segments in zip(self.edge_segment_fetches, self.segments_per_edge, strict=True)
        )

    @property
    def origin_playlist_fetches_per_edge_s(self) -> float:
        return self.origin_playlist_fetches / self.edges / self.window_s

    @property
    def polls_per_viewer_s(self) -> float:
        return self.playlist_requests / self.viewers / self.window_s

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def ensure_live_clip(children: Children, work_dir: Path) -> Path:
    """A 30 s 360p clip with a 2 s GOP (so 2 s segments) in ``work_dir``, generated once."""
    clip = work_dir / LIVE_CLIP_NAME
    if clip.exists():
        return clip
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = clip.with_suffix(".partial.flv")
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "30", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-b:v", "400k", "-maxrate", "400k", "-bufsize", "800k",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k", "-ac", "2",
        "-f", "flv", str(partial),
    ]  # fmt: skip
    print(f"generating {clip} (30 s 360p) …", flush=True)
    log = work_dir / "edge-clip.log"
    proc = children.spawn(argv, log)
    if proc.wait() != 0:
        raise BenchError(f"clip generation failed:\n{log_tail(log)}")
    partial.rename(clip)
    return clip


def create_stream(settings: Settings, data_dir: Path) -> str:
    """``streamit streams create`` in the origin's data directory; the stream key."""
    argv = [
        str(settings.streamit_executable), "streams", "create", "edge bench", "--slug", SLUG, "--json",
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=streamit_env("bench-cli"), timeout=60)
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(argv)} failed ({done.returncode}):\n{done.stderr.strip()}")
    try:
        return str(json.loads(done.stdout)["stream_key"])
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"unexpected output from {shlex.join(argv)}:\n{done.stdout[:500]}") from None


def playlist_segments(url: str) -> tuple[str, ...]:
    try:
        response = httpx.get(url, timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return ()
    return parse_playlist(response.text).segments if response.status_code == 200 else ()


def measure_fanout(settings: Settings, cluster: Cluster, run_dir: Path) -> FanoutResult:
    """Part 2: ffmpeg → ``streamit origin`` → 2 edges → simulated viewers; origin fetches counted."""
    with Children() as children:
        clip = ensure_live_clip(children, settings.work_dir)
        data_dir = run_dir / "origin-data"
        http_port, rtmp_port = free_port(), free_port()
        origin = f"http://127.0.0.1:{http_port}"
        argv = [
            str(settings.streamit_executable), "origin", "--data-dir", str(data_dir),
            "--http-port", str(http_port), "--rtmp-port", str(rtmp_port), "--public-url", origin,
            *cluster.flags,
        ]  # fmt: skip
        log = run_dir / "origin.log"
        proc = children.spawn(argv, log, env=streamit_env("bench-origin"))
        try:
            wait_until(lambda: healthy(origin) and port_accepts(rtmp_port), proc, 30, "streamit origin")
        except BenchError as exc:
            raise BenchError(f"{exc}\n{log_tail(log)}") from None
        key = create_stream(settings, data_dir)
        publish = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-stream_loop", "-1", "-i", str(clip),
            "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}",
        ]  # fmt: skip
        publisher = children.spawn(publish, run_dir / "publisher.log")
        edges = [
            start_edge(children, settings, cluster, run_dir, f"bench-edge-{i}")[0]
            for i in range(1, settings.edges + 1)
        ]
        # Only playlists are fetched before the window: no segment is in an edge's cache when it starts.
        try:
            wait_until(lambda: len(playlist_segments(origin + PLAYLIST_PATH)) >= 2, publisher, 30, "stream")
            for edge in edges:
                url = edge + PLAYLIST_PATH
                wait_until(lambda: bool(playlist_segments(url)), proc, 15, "edge")  # noqa: B023
        except BenchError as exc:
            raise BenchError(f"{exc}\n{log_tail(log)}\n{log_tail(run_dir / 'publisher.log')}") from None

        def counters() -> tuple[float, float, list[float], list[float]]:
            return (
                metric(origin, "streamit_hls_requests_total", kind="segment", outcome="served"),
                metric(origin, "streamit_hls_requests_total", kind="playlist", outcome="served"),
                [metric(e, "streamit_edge_upstream_fetches_total", kind="segment") for e in edges],
                [metric(e, "streamit_edge_upstream_fetches_total", kind="playlist") for e in edges],
            )

        before = counters()
        print(f"fan-out: {settings.viewers} viewers, {len(edges)} edges, {settings.fanout_duration:g} s")
        started = time.monotonic()
        loads = run_async(run_viewers(edges, settings.viewers, settings.fanout_duration))
        window = time.monotonic() - started
        after = counters()
        if publisher.poll() is not None:
            raise BenchError(f"the publisher exited early:\n{log_tail(run_dir / 'publisher.log')}")
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    for load in loads:
        errors.update(load.errors)
        latencies.extend(load.segment_latencies)
    latencies.sort()
    sizes = [size for load in loads for size in load.segment_sizes.values()]
    return FanoutResult(
        viewers=settings.viewers,
        edges=len(edges),
        window_s=window,
        origin_segment_fetches=round(after[0] - before[0]),
        origin_playlist_fetches=round(after[1] - before[1]),
        edge_segment_fetches=tuple(round(a - b) for a, b in zip(after[2], before[2], strict=True)),
        edge_playlist_fetches=tuple(round(a - b) for a, b in zip(after[3], before[3], strict=True)),
        segments_per_edge=tuple(len(load.segments) for load in loads),
        playlist_requests=sum(load.playlist_requests for load in loads),
        segment_requests=sum(load.segment_requests for load in loads),
        body_bytes=sum(load.body_bytes for load in loads),
        errors=dict(errors),
        segment_p50_ms=1000 * percentile(latencies, 50) if latencies else None,
        segment_p99_ms=1000 * percentile(latencies, 99) if latencies else None,
        segment_bytes_median=round(statistics.median(sizes)) if sizes else 0,
    )


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of sorted values."""
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def run_async(coroutine: Any) -> Any:
    """Run ``coroutine`` on uvloop when installed (as Streamit does), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# --------------------------------------------------------------------------------------------------------
# Report


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def hits_tables(results: Sequence[HitResult]) -> str:
    rows, ratios = [], []
    for target, _ in HIT_TARGETS:
        summaries = {server: summarize_hits(results, target, server) for server in SERVERS}
        for server, s in summaries.items():
            if s is None:
                continue
            rows.append(
                [
                    target, server, str(s.runs), f"{s.requests_per_s:,.0f}", f"{s.mb_per_s:,.1f}",
                    f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.cpu_percent:.0f}",
                    fmt(s.requests_per_cpu_s, 0), str(s.errors),
                    "—" if s.hit_fraction is None else f"{100 * s.hit_fraction:.2f} %",
                ]
            )  # fmt: skip
        edge, nginx = summaries["edge"], summaries["nginx"]
        if edge is not None and nginx is not None:
            met = "yes" if edge.requests_per_s >= 0.7 * nginx.requests_per_s else "**no**"
            ratios.append(
                [
                    target,
                    ratio(edge.requests_per_s, nginx.requests_per_s),
                    ratio(edge.mb_per_s, nginx.mb_per_s),
                    ratio(edge.requests_per_cpu_s, nginx.requests_per_cpu_s),
                    met,
                ]
            )
    header = [
        "object", "server", "runs", "requests/s", "MB/s", "latency p50 ms", "latency p99 ms",
        "server CPU % of a core", "requests / CPU-s", "errors", "edge cache hits (worst run)",
    ]  # fmt: skip
    parts = [markdown_table(header, rows)]
    if ratios:
        parts.append(
            "Ratio edge / nginx (target: requests/s ≥ 0.70×):\n\n"
            + markdown_table(["object", "requests/s", "MB/s", "requests / CPU-s", "≥ 0.70×"], ratios)
        )
    return "\n\n".join(parts)


def hits_raw_table(results: Sequence[HitResult]) -> str:
    rows = [
        [
            str(r.run), r.target, r.server, f"{r.wrk.duration_s:.1f}", str(r.wrk.requests),
            f"{r.wrk.requests_per_s:,.0f}", f"{r.wrk.mb_per_s:,.1f}", f"{r.wrk.p50_ms:.2f}",
            f"{r.wrk.p99_ms:.2f}", f"{r.server_cpu_s:.2f}", str(r.wrk.socket_errors), str(r.wrk.bad_status),
            "—" if r.hit_fraction is None else f"{100 * r.hit_fraction:.2f} %",
        ]
        for r in results
    ]  # fmt: skip
    return markdown_table(
        [
            "run", "object", "server", "s", "requests", "requests/s", "MB/s", "p50 ms", "p99 ms",
            "server CPU s", "socket errors", "non-2xx", "cache hits",
        ],
        rows,
    )  # fmt: skip


def fanout_table(f: FanoutResult) -> str:
    per_edge = ", ".join(fmt(v, 3) for v in f.per_edge_fetches_per_segment)
    met = f.fetches_per_segment_per_edge is not None and f.fetches_per_segment_per_edge <= 1.05
    errors = ", ".join(f"{name}: {count}" for name, count in sorted(f.errors.items())) or "none"
    rows = [
        ["viewers / edges", f"{f.viewers} / {f.edges} ({f.viewers // f.edges} per edge)"],
        ["window", f"{f.window_s:.1f} s"],
        ["segments requested (per edge)", ", ".join(str(n) for n in f.segments_per_edge)],
        ["median segment size", f"{f.segment_bytes_median / 1000:.0f} kB"],
        ["origin segment fetches (origin /metrics)", str(f.origin_segment_fetches)],
        [
            "**origin fetches per segment per edge** (target ≤ 1.05)",
            f"**{fmt(f.fetches_per_segment_per_edge, 3)}** ({'met' if met else 'not met'})",
        ],
        ["per edge, from each edge's upstream counter", per_edge],
        [
            "origin playlist fetches per edge per second",
            f"{f.origin_playlist_fetches_per_edge_s:.2f} "
            f"(edges counted {', '.join(map(str, f.edge_playlist_fetches))})",
        ],
        ["viewer requests (playlists + segments)", f"{f.playlist_requests:,} + {f.segment_requests:,}"],
        ["playlist polls per viewer-second (planned: 2 / target duration)", f"{f.polls_per_viewer_s:.2f}"],
        ["viewer throughput", f"{f.body_bytes / f.window_s / MB:.1f} MB/s"],
        ["segment fetch latency p50 / p99", f"{fmt(f.segment_p50_ms, 1)} / {fmt(f.segment_p99_ms, 1)} ms"],
        ["**viewer errors**", f"**{f.error_count}** ({errors})"],
    ]
    return markdown_table(["", "result"], rows)


def render_section(
    hits: Sequence[HitResult], fanout: FanoutResult | None, settings: Settings, command: str, redis: str
) -> str:
    facts = [
        *machine_facts(),
        ("wrk", first_line(["wrk", "--version"]).split(" Copyright")[0]),
        ("redis", redis),
    ]
    facts_text = "\n".join(f"- {k}: {v}" for k, v in facts)
    parts = [
        f"<!-- BEGIN {SECTION_NAME} -->",
        "## Edge: cache hits beside nginx, origin fetches under fan-out",
        f"Generated by `{SECTION_NAME}` (see `bench/README.md`); do not edit by hand.",
        f"Command:\n\n```\n{command}\n```",
        "To reproduce: Debian `nginx`, `wrk`, `ffmpeg` and a running `redis-server` (`--redis-url`, default "
        "`$STREAMIT_TEST_REDIS_URL` or `redis://127.0.0.1:6379/0`), then the command above from the "
        "repository root; `--quick` checks the harness in about 40 s.",
        f"Machine:\n\n{facts_text}",
    ]
    if hits:
        parts += [
            "### Cache hits",
            f"""Method: one nginx (Debian, `worker_processes 1`, `sendfile on`, `tcp_nopush on`, access
log off) serves a directory holding a live playlist (`EXT-X-TARGETDURATION:{TARGET_DURATION}`,
{SEGMENT_COUNT} segments, no ENDLIST, {len(live_playlist())} bytes) and its segments
({SEGMENT_BYTES:,} bytes each). The stream is registered in Redis (fresh key prefix, signed with a random
cluster secret) with that nginx as its origin, and one `streamit edge` process serves it. Both objects are
fetched through the edge until it answers `X-Cache: HIT` with the same bytes nginx serves. Then, per run,
object and server (the order of the two servers alternates between runs),
`wrk -t{settings.threads} -c{settings.connections}` runs {settings.warmup:g} s (warm-up, not counted) and
then {settings.duration:g} s, measured (requests, response bytes including headers, latency from wrk's own
summary). Server CPU is utime+stime of the server's process tree over the measured run; requests / CPU-s
(requests divided by that CPU time) is what one request costs the server, less sensitive than requests/s
to other load on the machine; "edge cache hits" is the share of the edge's answers counted as `HIT` in
its `/metrics` during the run (a live playlist stays fresh for half its target duration, so about one
request per second goes to the origin). Medians over
{settings.runs} run(s). wrk and the servers share the machine's {len(os.sched_getaffinity(0))} cores;
nothing is pinned.""",
            hits_tables(hits),
            "Every run:",
            hits_raw_table(hits),
        ]
    if fanout is not None:
        parts += [
            "### Fan-out: origin fetches per segment",
            f"""Method: ffmpeg publishes a 360p clip (H.264 400 kbit/s, a keyframe every 2 s, AAC 64 kbit/s,
`-re -stream_loop -1 -c copy`) to a real `streamit origin` (SQLite, default 2 s segments), which registers
the stream in Redis. {fanout.edges} `streamit edge` processes find it there. {fanout.viewers} simulated
viewers in one asyncio process (uvloop), each with its own keep-alive HTTP/1.1 connection, split evenly
over the edges, join at random moments within the first second, poll the playlist every half target
duration (1 s) and fetch every segment that is new to them (joining at the newest one), for
{settings.fanout_duration:g} s. Before the window only playlists were fetched through the edges, so every
segment the viewers get was first requested during the window. The origin's `/metrics`
(`streamit_hls_requests_total{{kind="segment",outcome="served"}}`) is read before and after; fetches per
segment per edge = the origin's segment fetches / the number of distinct segments requested, summed over the
edges. Each edge's own `streamit_edge_upstream_fetches_total` splits it per edge. A viewer error is any
failed request, timeout ({REQUEST_TIMEOUT:g} s) or non-200 answer.""",
            fanout_table(fanout),
        ]
    parts.append(f"<!-- END {SECTION_NAME} -->")
    return "\n\n".join(parts)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of its previous edge section (appended if there was none)."""
    previous = path.read_text() if path.exists() else "# Benchmarks\n"
    for match in MARKED_SECTION.finditer(previous):
        if match.group("name") == SECTION_NAME:
            text = previous[: match.start()] + section + previous[match.end() :]
            break
    else:
        text = previous.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def results_json(
    hits: Sequence[HitResult], fanout: FanoutResult | None, prefixes: Sequence[str]
) -> dict[str, Any]:
    """Every number, for scripts and the harness's own test."""
    summaries = [
        dataclasses.asdict(s)
        for target, _ in HIT_TARGETS
        for server in SERVERS
        if (s := summarize_hits(hits, target, server)) is not None
    ]
    fan: dict[str, Any] | None = None
    if fanout is not None:
        fan = dataclasses.asdict(fanout)
        fan["fetches_per_segment_per_edge"] = fanout.fetches_per_segment_per_edge
        fan["per_edge_fetches_per_segment"] = list(fanout.per_edge_fetches_per_segment)
        fan["error_count"] = fanout.error_count
    return {
        "hits": [dataclasses.asdict(r) for r in hits],
        "hit_summaries": summaries,
        "fanout": fan,
        "redis_prefixes": list(prefixes),
    }


# --------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str]) -> tuple[Settings, Path | None, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=None, help="wrk runs per object and server (default 3)")
    parser.add_argument("--duration", type=float, default=None, help="measured wrk run, s (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="wrk warm-up per run, s (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--connections", type=int, default=None, help="wrk connections (default 50)")
    parser.add_argument("--viewers", type=int, default=None, help="simulated viewers (default 1000)")
    parser.add_argument("--edges", type=int, default=2, help="edges the viewers are spread over (default 2)")
    parser.add_argument(
        "--fanout-duration", type=float, default=None, help="viewers' run time, s (default 30)"
    )
    parser.add_argument("--parts", default="hits,fanout", help="what to measure: hits,fanout (default both)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the cluster registry (keys under a fresh prefix, removed at the end)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown report (default docs/benchmarks.md, edge section)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    parser.add_argument(
        "--streamit",
        type=Path,
        default=Path(sys.executable).parent / "streamit",
        help="the streamit executable (default: next to this python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep run directories (logs) in the work dir")
    parser.add_argument(
        "--work-dir", type=Path, default=WORK_DIR, help="run directories and the clip (default bench/.work)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="harness check in well under a minute: 1 short run, 40 viewers; no report file unless --output",
    )
    args = parser.parse_args(argv)
    parts = tuple(p for p in args.parts.split(",") if p)
    if not parts or set(parts) - {"hits", "fanout"}:
        parser.error("--parts takes hits, fanout or both")
    quick = args.quick

    def pick(value: float | None, normal: float, fast: float) -> float:
        return value if value is not None else (fast if quick else normal)

    settings = Settings(
        runs=int(pick(args.runs, 3, 1)),
        duration=pick(args.duration, 10.0, 2.0),
        warmup=pick(args.warmup, 2.0, 0.0),
        threads=args.threads,
        connections=int(pick(args.connections, 50, 10)),
        viewers=int(pick(args.viewers, 1000, 40)),
        edges=args.edges,
        fanout_duration=pick(args.fanout_duration, 30.0, 7.0),
        parts=parts,
        redis_url=args.redis_url,
        streamit_executable=args.streamit,
        keep=args.keep,
        work_dir=args.work_dir,
    )
    if settings.runs < 1 or settings.duration <= 0 or settings.connections < 1 or settings.threads < 1:
        parser.error("--runs, --duration, --connections and --threads must be positive")
    if settings.edges < 1 or settings.viewers < settings.edges or settings.fanout_duration <= 0:
        parser.error("need at least one edge, one viewer per edge and a positive --fanout-duration")
    output = args.output if args.output is not None or quick else REPO_DIR / "docs" / "benchmarks.md"
    return settings, output, args.json


@contextlib.contextmanager
def run_directory(settings: Settings, label: str) -> Iterator[Path]:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    path = settings.work_dir / f"{label}-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        if not settings.keep:
            shutil.rmtree(path, ignore_errors=True)


@dataclasses.dataclass
class Outcome:
    """Everything one benchmark run measured."""

    hits: list[HitResult] = dataclasses.field(default_factory=list)
    fanout: FanoutResult | None = None
    redis_version: str = ""
    redis_prefixes: list[str] = dataclasses.field(default_factory=list)


def run_benchmark(settings: Settings) -> Outcome:
    tools = {"nginx", "wrk"} if "hits" in settings.parts else set()
    if "fanout" in settings.parts:
        tools |= {"ffmpeg"}
    for tool in sorted(tools):
        if shutil.which(tool) is None:
            hint = " (Debian: apt-get install -y wrk)" if tool == "wrk" else ""
            raise BenchError(f"{tool} not found on PATH{hint}")
    if not settings.streamit_executable.exists():
        raise BenchError(f"{settings.streamit_executable} not found (give --streamit)")
    outcome = Outcome(redis_version=check_redis(settings.redis_url))
    if "hits" in settings.parts:
        cluster = Cluster.fresh(settings.redis_url)
        outcome.redis_prefixes.append(cluster.prefix)
        try:
            with run_directory(settings, "edge-hits") as run_dir:
                outcome.hits = measure_hits(settings, cluster, run_dir)
        finally:
            cluster.remove_keys()
    if "fanout" in settings.parts:
        cluster = Cluster.fresh(settings.redis_url)
        outcome.redis_prefixes.append(cluster.prefix)
        try:
            with run_directory(settings, "edge-fanout") as run_dir:
                outcome.fanout = measure_fanout(settings, cluster, run_dir)
        finally:
            cluster.remove_keys()
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    settings, output, json_path = parse_args(raw_argv)
    command = shlex.join([".venv/bin/python", "bench/edge.py", *raw_argv])
    try:
        outcome = run_benchmark(settings)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as exc:
        print(f"stopped by signal {exc.signum}; everything started was stopped", file=sys.stderr)
        return 128 + exc.signum
    hits, fanout = outcome.hits, outcome.fanout
    print()
    if hits:
        print(hits_tables(hits))
    if fanout is not None:
        print()
        print(fanout_table(fanout))
    if output is not None:
        write_section(output, render_section(hits, fanout, settings, command, outcome.redis_version))
        print(f"\nwritten to {output}")
    if json_path is not None:
        json_path.write_text(json.dumps(results_json(hits, fanout, outcome.redis_prefixes), indent=2))
    if any(r.wrk.errors for r in hits):
        print("\nwrk saw errors: the cache-hit numbers are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
