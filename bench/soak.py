"""Soak test: N publishers and M HLS viewers against one ``streamit serve`` for T minutes.

* **Publishers.** N × ``ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv rtmp://…/live/<key>`` of a
  generated 360p25 H.264/AAC clip with a 2 s GOP (bench/edge.py's live clip, ~0.46 Mbit/s), each to its own
  stream made with ``streamit streams create``.
* **Viewers.** M asyncio viewers (httpx, one keep-alive connection each), spread evenly over the streams,
  that poll their playlist every half target duration and fetch every segment not seen before, as a
  player does after joining at the live edge.
* **Samples.** Every ``--sample-interval`` seconds: the server's RSS (sum of VmRSS over its process tree),
  its open file descriptors (``/proc/<pid>/fd`` over the tree), its CPU time, and the publishers alive.

Reported: RSS growth after the warm-up (last sample vs the first after warm-up, and a least-squares slope),
fd growth, every viewer error (a failed request, a timeout, a non-200 answer, an empty segment), segment
lateness (for each stream, when a segment first appeared in its playlist compared with when it should have
by the media time of the segments before it; 0 = on schedule), and segment fetch times.

Run with the project's venv::

    .venv/bin/python bench/soak.py [--publishers 20] [--viewers 200] [--minutes 10] [--warmup 60] \
        [--output docs/benchmarks.md] [--json soak.json] [--quick]

``--quick`` (1 publisher, 5 viewers, 20 s, no report file unless ``--output``) checks the harness.  The
report goes into its own marked section of ``docs/benchmarks.md``; ``bench/ingest.py`` keeps it.
Every process started leads its own process group and is stopped on exit, error, Ctrl-C or SIGTERM.
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
import secrets
import shlex
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from ingest import (
    MARKED_SECTION,
    MIB,
    REPO_DIR,
    WORK_DIR,
    BenchError,
    Children,
    Interrupted,
    StreamitServer,
    _raise_on_signal,
    all_proc_stats,
    fmt,
    log_tail,
    machine_facts,
    markdown_table,
    process_tree,
    tree_cpu_seconds,
    wait_until,
)

from edge import ensure_live_clip, percentile, run_async

SECTION_NAME = "bench/soak.py"
REQUEST_TIMEOUT = 10.0
FIRST_SEGMENT_TIMEOUT = 60.0
CLIP_DESCRIPTION = "bench/edge.py's live clip: 360p25 H.264 400 kbit/s + AAC 64 kbit/s, 2 s GOP"
VIEWER_FAILURES = (httpx.HTTPError, OSError, TimeoutError, ValueError)


# --------------------------------------------------------------------------------------------------------
# Playlists


@dataclasses.dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """The parts of a live media playlist a viewer acts on (RFC 8216 §4.3.2.1, §4.3.3.2)."""

    target_duration: float
    media_sequence: int
    segments: tuple[tuple[str, float], ...]
    """(URI, EXTINF duration in seconds) in playlist order."""


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Parse a media playlist; raises ValueError if it is not one."""
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError("not an M3U8 playlist")
    target: float | None = None
    sequence = 0
    segments: list[tuple[str, float]] = []
    duration: float | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.partition(":")[2])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.partition(":")[2])
        elif line.startswith("#EXTINF:"):
            duration = float(line.partition(":")[2].partition(",")[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise ValueError(f"segment {line!r} without #EXTINF")
            segments.append((line, duration))
            duration = None
    if target is None:
        raise ValueError("playlist without #EXT-X-TARGETDURATION")
    return MediaPlaylist(target, sequence, tuple(segments))


class SegmentSchedule:
    """When each segment of one stream first appeared, against when its media time says it should have.

    Segment ``s`` should appear ``sum(durations of the segments before it)`` after the first segment seen.
    Its offset is (appearance − that); lateness is the offset minus the smallest offset of the stream, so
    the earliest segment relative to the schedule defines "on time" and polling delay cancels out.
    """

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}
        self.durations: dict[int, float] = {}

    def observe(self, playlist: MediaPlaylist, now: float) -> None:
        for index, (_, duration) in enumerate(playlist.segments):
            sequence = playlist.media_sequence + index
            self.first_seen.setdefault(sequence, now)
            self.durations[sequence] = duration

    def lateness(self, after: float | None = None) -> list[float]:
        """Seconds late for each segment seen (only those first seen at or after ``after``, if given)."""
        if not self.first_seen:
            return []
        sequences = sorted(self.first_seen)
        offsets: dict[int, float] = {}
        media_time = 0.0
        for previous, sequence in zip([None, *sequences], sequences, strict=False):
            if previous is not None:
                # A gap (segments never seen) counts at the target pace of the neighbours' durations.
                media_time += self.durations[previous] * (sequence - previous)
            offsets[sequence] = self.first_seen[sequence] - media_time
        base = min(offsets.values())
        return [
            offset - base
            for sequence, offset in offsets.items()
            if after is None or self.first_seen[sequence] >= after
        ]


# --------------------------------------------------------------------------------------------------------
# Viewers


@dataclasses.dataclass
class ViewerLoad:
    """What all viewers did (one event loop, so plain counters are safe)."""

    playlist_requests: int = 0
    segment_requests: int = 0
    body_bytes: int = 0
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    error_times: list[float] = dataclasses.field(default_factory=list)
    segment_fetch_seconds: list[float] = dataclasses.field(default_factory=list)

    def error(self, kind: str, now: float) -> None:
        self.errors[kind] += 1
        self.error_times.append(now)


async def viewer(
    playlist_url: str, schedule: SegmentSchedule, load: ViewerLoad, start_delay: float, deadline: float
) -> None:
    """Poll ``playlist_url`` every half target duration and fetch each new segment, until ``deadline``.

    Each viewer has its own client and one keep-alive connection, as a player has: one pool shared by
    hundreds of viewers makes httpx itself the bottleneck (its pool scans every connection per request).
    """
    await asyncio.sleep(start_delay)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits, trust_env=False) as client:
        await _watch(client, playlist_url, schedule, load, deadline)


async def _watch(
    client: httpx.AsyncClient, playlist_url: str, schedule: SegmentSchedule, load: ViewerLoad, deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    seen: set[str] | None = None
    interval = 1.0
    while loop.time() < deadline:
        polled = loop.time()
        try:
            response = await client.get(playlist_url)
            load.playlist_requests += 1
            load.body_bytes += len(response.content)
            if response.status_code != 200:
                load.error(f"playlist HTTP {response.status_code}", loop.time())
            else:
                playlist = parse_media_playlist(response.text)
                schedule.observe(playlist, loop.time())
                interval = playlist.target_duration / 2
                names = [uri for uri, _ in playlist.segments]
                fresh = [n for n in names if seen is None or n not in seen]
                if seen is None:
                    fresh = fresh[-1:]  # join at the live edge
                seen = set(names)
                for name in fresh:
                    started = loop.time()
                    segment = await client.get(urljoin(playlist_url, name))
                    load.segment_requests += 1
                    load.body_bytes += len(segment.content)
                    if segment.status_code != 200 or not segment.content:
                        load.error(f"segment HTTP {segment.status_code}", loop.time())
                    else:
                        load.segment_fetch_seconds.append(loop.time() - started)
        except VIEWER_FAILURES as exc:
            load.error(type(exc).__name__, loop.time())
        await asyncio.sleep(max(0.0, polled + interval - loop.time()))


# --------------------------------------------------------------------------------------------------------
# Samples


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One look at the server, ``t`` seconds after the viewers started."""

    t: float
    rss_bytes: int
    open_fds: int
    cpu_seconds: float
    publishers_alive: int
    viewer_errors: int
    client_cpu_seconds: float
    """CPU time of this load generator (the viewers), to tell a client-bound run from a slow server."""


def tree_open_fds(root: int) -> int:
    """Open file descriptors over a process tree (entries of ``/proc/<pid>/fd``)."""
    total = 0
    for stat in process_tree(root, all_proc_stats()):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            total += len(os.listdir(f"/proc/{stat.pid}/fd"))
    return total


def tree_rss(root: int) -> int:
    """Sum of VmRSS over a process tree, in bytes."""
    return sum(stat.rss_pages for stat in process_tree(root, all_proc_stats())) * os.sysconf("SC_PAGE_SIZE")


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None with fewer than 2 points."""
    if len(points) < 2:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


# --------------------------------------------------------------------------------------------------------
# One soak run


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """One soak run: N, M, the viewers' run time and warm-up (s), and where things are."""

    publishers: int
    viewers: int
    seconds: float
    warmup: float
    sample_interval: float
    streamit_executable: Path
    work_dir: Path
    keep: bool


@dataclasses.dataclass
class SoakResult:
    """Everything one soak run measured."""

    settings: dict[str, Any]
    samples: list[Sample]
    playlist_requests: int
    segment_requests: int
    body_bytes: int
    errors: dict[str, int]
    errors_after_warmup: int
    lateness_p50_s: float | None
    lateness_p99_s: float | None
    lateness_max_s: float | None
    fetch_p50_ms: float | None
    fetch_p99_ms: float | None
    segments_per_stream: list[int]
    clip: str
    window_s: float

    def after_warmup(self) -> list[Sample]:
        warmup = float(self.settings["warmup"])
        return [s for s in self.samples if s.t >= warmup]

    @property
    def rss_growth(self) -> float | None:
        """Relative RSS growth from the first sample after warm-up to the last."""
        samples = self.after_warmup()
        if len(samples) < 2 or not samples[0].rss_bytes:
            return None
        return samples[-1].rss_bytes / samples[0].rss_bytes - 1

    @property
    def rss_slope_mib_per_min(self) -> float | None:
        return slope_per_minute([(s.t, s.rss_bytes / MIB) for s in self.after_warmup()])

    @property
    def fd_growth(self) -> int | None:
        samples = self.after_warmup()
        return samples[-1].open_fds - samples[0].open_fds if len(samples) >= 2 else None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclasses.dataclass(frozen=True, slots=True)
class LoadOutcome:
    """What the viewers and the sampler saw; lateness and errors counted after the warm-up."""

    load: ViewerLoad
    segments_per_stream: list[int]
    lateness: list[float]
    errors_after_warmup: int
    samples: list[Sample]
    window: float


async def run_load(
    settings: Settings, playlist_urls: Sequence[str], server_pid: int, publishers: Sequence[Any]
) -> LoadOutcome:
    """Viewers and the sampler for ``settings.seconds``."""
    loop = asyncio.get_running_loop()
    load = ViewerLoad()
    schedules = [SegmentSchedule() for _ in playlist_urls]
    samples: list[Sample] = []
    start = loop.time()
    deadline = start + settings.seconds
    rng = random.Random(7)

    async def sampler() -> None:
        while True:
            now = loop.time()
            samples.append(
                Sample(
                    t=round(now - start, 2),
                    rss_bytes=tree_rss(server_pid),
                    open_fds=tree_open_fds(server_pid),
                    cpu_seconds=tree_cpu_seconds(server_pid),
                    publishers_alive=sum(p.poll() is None for p in publishers),
                    viewer_errors=sum(load.errors.values()),
                    client_cpu_seconds=time.process_time(),
                )
            )
            if now >= deadline - 0.05:
                return
            await asyncio.sleep(min(settings.sample_interval, max(0.0, deadline - loop.time())))

    tasks = [asyncio.create_task(sampler())]
    for i in range(settings.viewers):
        index = i % len(playlist_urls)
        # Joins spread over one poll interval, so that polls do not arrive in lock step.
        delay = rng.uniform(0, 1.0)
        watching = viewer(playlist_urls[index], schedules[index], load, delay, deadline)
        tasks.append(asyncio.create_task(watching))
    await asyncio.gather(*tasks)
    window = loop.time() - start
    warm = start + settings.warmup
    return LoadOutcome(
        load=load,
        segments_per_stream=[len(schedule.first_seen) for schedule in schedules],
        lateness=sorted(x for schedule in schedules for x in schedule.lateness(after=warm)),
        errors_after_warmup=sum(1 for t in load.error_times if t >= warm),
        samples=samples,
        window=window,
    )


def soak(settings: Settings, run_dir: Path) -> SoakResult:
    """Start the server and publishers, wait for every stream, then viewers and samples for the window."""
    with Children() as children:
        clip = ensure_live_clip(children, settings.work_dir)
        server = StreamitServer(run_dir, settings.streamit_executable)
        server_pid = server.start(children, settings.publishers)
        publishers = []
        for i in range(1, settings.publishers + 1):
            argv = [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                "-re", "-stream_loop", "-1", "-i", str(clip),
                "-c", "copy", "-f", "flv", server.publish_url(i),
            ]  # fmt: skip
            publishers.append(children.spawn(argv, run_dir / f"publisher-{i}.log"))
        urls = [server.playlist_url(i) for i in range(1, settings.publishers + 1)]

        def all_listed() -> bool:
            for url in urls:
                try:
                    response = httpx.get(url, timeout=2.0, trust_env=False)
                    if response.status_code != 200 or not parse_media_playlist(response.text).segments:
                        return False
                except (httpx.HTTPError, ValueError):
                    return False
            return True

        try:
            # Fails early if the first publisher gives up (a refused key, a server that went away).
            wait_until(all_listed, publishers[0], FIRST_SEGMENT_TIMEOUT, "every stream's first segment")
        except BenchError as exc:
            tail = log_tail(run_dir / "publisher-1.log")
            raise BenchError(f"{exc}\n{log_tail(run_dir / 'serve.log')}\n{tail}") from None
        print(
            f"soak: {settings.publishers} publishers, {settings.viewers} viewers, "
            f"{settings.seconds:g} s (warm-up {settings.warmup:g} s)",
            flush=True,
        )
        outcome: LoadOutcome = run_async(run_load(settings, urls, server_pid, publishers))
        dead = [i + 1 for i, p in enumerate(publishers) if p.poll() is not None]
        if dead:
            tail = log_tail(run_dir / f"publisher-{dead[0]}.log")
            raise BenchError(f"publishers {dead} exited early:\n{tail}")
        if not outcome.samples or outcome.samples[-1].rss_bytes == 0:
            raise BenchError(f"the server went away:\n{log_tail(run_dir / 'serve.log')}")
    load, late = outcome.load, outcome.lateness
    fetches = sorted(load.segment_fetch_seconds)
    return SoakResult(
        settings={
            "publishers": settings.publishers,
            "viewers": settings.viewers,
            "seconds": settings.seconds,
            "warmup": settings.warmup,
            "sample_interval": settings.sample_interval,
        },
        samples=outcome.samples,
        playlist_requests=load.playlist_requests,
        segment_requests=load.segment_requests,
        body_bytes=load.body_bytes,
        errors=dict(load.errors),
        errors_after_warmup=outcome.errors_after_warmup,
        lateness_p50_s=percentile(late, 50) if late else None,
        lateness_p99_s=percentile(late, 99) if late else None,
        lateness_max_s=late[-1] if late else None,
        fetch_p50_ms=1000 * percentile(fetches, 50) if fetches else None,
        fetch_p99_ms=1000 * percentile(fetches, 99) if fetches else None,
        segments_per_stream=outcome.segments_per_stream,
        clip=f"{clip.name} ({CLIP_DESCRIPTION})",
        window_s=round(outcome.window, 1),
    )


# --------------------------------------------------------------------------------------------------------
# Report


def samples_table(result: SoakResult, rows: int = 12) -> str:
    """RSS, fds and CPU over time (about ``rows`` evenly spaced samples, the last one always)."""
    samples = result.samples
    step = max(1, len(samples) // rows)
    chosen = samples[::step]
    if chosen[-1] is not samples[-1]:
        chosen.append(samples[-1])
    previous: Sample | None = None
    body = []
    for s in chosen:
        cpu = client = ""
        if previous is not None and s.t > previous.t:
            cpu = f"{100 * (s.cpu_seconds - previous.cpu_seconds) / (s.t - previous.t):.0f}"
            client = f"{100 * (s.client_cpu_seconds - previous.client_cpu_seconds) / (s.t - previous.t):.0f}"
        body.append([f"{s.t:.0f}", f"{s.rss_bytes / MIB:.1f}", str(s.open_fds), cpu, client,
                     str(s.publishers_alive), str(s.viewer_errors)])  # fmt: skip
        previous = s
    header = ["t s", "RSS MiB", "open fds", "server CPU %", "viewers' CPU %", "publishers alive",
              "viewer errors so far"]  # fmt: skip
    return markdown_table(header, body)


def render_section(result: SoakResult, command: str) -> str:
    s = result.settings
    growth = result.rss_growth
    slope = result.rss_slope_mib_per_min
    after = result.after_warmup()
    mbps = 8 * result.body_bytes / result.window_s / 1e6 if result.window_s else 0.0
    run = f"{s['publishers']} × {s['viewers']} × {result.window_s / 60:.1f} min"
    rss = f"{after[0].rss_bytes / MIB:.1f} → {after[-1].rss_bytes / MIB:.1f} MiB" if after else "–"
    fds = f"{after[0].open_fds} → {after[-1].open_fds} ({max(x.open_fds for x in after)})" if after else "–"
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(result.errors.items())) or "none"
    per_stream = f"{min(result.segments_per_stream)}–{max(result.segments_per_stream)}"
    lateness = (result.lateness_p50_s, result.lateness_p99_s, result.lateness_max_s)
    fetch = f"{fmt(result.fetch_p50_ms, 1, ' ms')} / {fmt(result.fetch_p99_ms, 1, ' ms')}"
    summary = [
        ["publishers × viewers × time", run],
        ["RSS after warm-up → end", rss],
        ["RSS growth after warm-up", f"{100 * growth:+.1f} %" if growth is not None else "–"],
        ["RSS trend after warm-up (least squares)", fmt(slope, 2, " MiB/min")],
        ["open fds after warm-up → end (max)", fds],
        ["viewer errors (all / after warm-up)", f"{result.error_count} / {result.errors_after_warmup}"],
        ["error kinds", kinds],
        ["playlist / segment requests", f"{result.playlist_requests:,} / {result.segment_requests:,}"],
        ["delivered to viewers", f"{result.body_bytes / 1e6:,.0f} MB ({mbps:.1f} Mbit/s)"],
        ["segments seen per stream (min–max)", per_stream],
        ["segment lateness p50 / p99 / max", " / ".join(fmt(x, 2, " s") for x in lateness)],
        ["segment fetch p50 / p99", fetch],
    ]
    facts = "\n".join(f"- {name}: {value}" for name, value in machine_facts())
    parts = [
        f"<!-- BEGIN {SECTION_NAME} -->",
        "## Soak: publishers and viewers for minutes",
        f"Generated by `bench/soak.py`; do not edit by hand.\n\nCommand:\n\n```\n{command}\n```",
        f"Machine:\n\n{facts}",
        f"""Method: one `streamit serve` (default settings, SQLite, 127.0.0.1); {s["publishers"]} publishers
(`ffmpeg -re -stream_loop -1 -i clip -c copy -f flv rtmp://…`, clip: {result.clip}), each to its own
stream; once every playlist lists a segment, {s["viewers"]} viewers (asyncio + httpx, one keep-alive
connection each, spread evenly over the streams) poll their playlist every half target duration and fetch
every new segment, for {s["seconds"]:g} s, from the same machine. Every {s["sample_interval"]:g} s the
server's RSS (VmRSS summed over its process tree), open fds (`/proc/<pid>/fd`) and CPU time are sampled.
Growth is measured from the first sample after a {s["warmup"]:g} s warm-up (stream buffers, segment
rings and caches fill up first) to the last. A viewer error is a failed request, a timeout
({REQUEST_TIMEOUT:g} s), a non-200 answer or an empty segment. Lateness: per stream, when a segment first
appeared in a viewer's playlist minus when it should have by the EXTINF durations of the segments before
it, relative to the stream's earliest segment (0 = on schedule; includes up to ~1 s of polling delay),
over the segments that appeared after the warm-up.""",
        markdown_table(["measure", "value"], summary),
        'Over time (CPU in % of one core since the previous row; "viewers" is this load generator):',
        samples_table(result),
        f"<!-- END {SECTION_NAME} -->",
    ]
    return "\n\n".join(parts)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path`` in place of its previous soak section (appended if there was none)."""
    previous = path.read_text() if path.exists() else "# Benchmarks\n"
    for match in MARKED_SECTION.finditer(previous):
        if match.group("name") == SECTION_NAME:
            text = previous[: match.start()] + section + previous[match.end() :]
            break
    else:
        text = previous.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str]) -> tuple[Settings, Path | None, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--publishers", type=int, default=None, help="N publishers (default 20)")
    parser.add_argument("--viewers", type=int, default=None, help="M viewers (default 200)")
    parser.add_argument("--minutes", type=float, default=None, help="T, the viewers' run time (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="s before growth is measured (default 60)")
    parser.add_argument("--sample-interval", type=float, default=None, help="s between samples (default 5)")
    parser.add_argument("--output", type=Path, default=None, help="report (default docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    parser.add_argument(
        "--streamit", type=Path, default=Path(sys.executable).parent / "streamit", help="streamit executable"
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="run directory and clip location")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    parser.add_argument("--quick", action="store_true", help="1 publisher, 5 viewers, 20 s; no report file")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: float | None, normal: float, fast: float) -> float:
        return value if value is not None else (fast if quick else normal)

    settings = Settings(
        publishers=int(pick(args.publishers, 20, 1)),
        viewers=int(pick(args.viewers, 200, 5)),
        seconds=60 * pick(args.minutes, 10.0, 20 / 60),
        warmup=pick(args.warmup, 60.0, 6.0),
        sample_interval=pick(args.sample_interval, 5.0, 1.0),
        streamit_executable=args.streamit,
        work_dir=args.work_dir,
        keep=args.keep,
    )
    if settings.publishers < 1 or settings.viewers < 1 or settings.seconds <= 0:
        parser.error("--publishers, --viewers and --minutes must be positive")
    if not 0 <= settings.warmup < settings.seconds or settings.sample_interval <= 0:
        parser.error("--warmup must be shorter than the run and --sample-interval positive")
    output = args.output if args.output is not None or quick else REPO_DIR / "docs" / "benchmarks.md"
    return settings, output, args.json


@contextlib.contextmanager
def run_directory(settings: Settings) -> Iterator[Path]:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    path = settings.work_dir / f"soak-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        if not settings.keep:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    settings, output, json_path = parse_args(raw_argv)
    command = shlex.join([".venv/bin/python", "bench/soak.py", *raw_argv])
    for tool in ("ffmpeg",):
        if shutil.which(tool) is None:
            print(f"soak: {tool} not found on PATH", file=sys.stderr)
            return 2
    try:
        with run_directory(settings) as run_dir:
            result = soak(settings, run_dir)
    except BenchError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("soak: interrupted", file=sys.stderr)
        return 130
    section = render_section(result, command)
    print(section)
    if output is not None:
        write_section(output, section)
    if json_path is not None:
        data = dataclasses.asdict(result)
        data.update(
            rss_growth=result.rss_growth,
            rss_slope_mib_per_min=result.rss_slope_mib_per_min,
            fd_growth=result.fd_growth,
            generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            command=command,
        )
        json_path.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
