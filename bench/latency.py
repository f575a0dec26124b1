"""LL-HLS latency benchmark: glass-to-glass as hls.js sees it, through an origin and through an edge.

ffmpeg publishes a live 640x360 30 fps H.264/AAC stream with a 1 s GOP (``-tune zerolatency``, ``-re``) to a
real ``streamit origin`` (0.334 s parts, 2 s segments); a real ``streamit edge`` serves it too.  Headless
Chromium (Debian's, through Playwright) plays ``ll.m3u8`` with hls.js (``lowLatencyMode: true``) from the
origin, then from the edge, and every 250 ms while playing samples two numbers:

* ``hls.latency`` — hls.js' own estimate: the live edge of the playlist minus the playhead;
* wall clock minus the EXT-X-PROGRAM-DATE-TIME of the displayed frame (``Date.now() - hls.playingDate``).
  The origin stamps a segment's PROGRAM-DATE-TIME with the wall clock at which its first frame arrived, so
  this is arrival at the origin → on screen (encoder and RTMP transit are not in it; with ``-re`` and
  ``zerolatency`` they are a frame or two).  Browser and origin share this machine's clock.

Medians of each (and the 90th percentile) per path.  Run with the project's venv::

    .venv/bin/python bench/latency.py [--duration 30] [--warmup 8] [--output docs/benchmarks.md] [--quick]

Needs ffmpeg, Chromium (``/usr/bin/chromium`` or ``$STREAMIT_TEST_CHROMIUM``), hls.js in ``node_modules``
(``npm ci``) and Redis (``--redis-url``, default ``$STREAMIT_TEST_REDIS_URL`` or ``redis://127.0.0.1:6379/0``;
keys live under a fresh prefix, removed at the end).  The results replace the ``bench/latency.py`` marked
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import http.server
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from ingest import (
    MARKED_SECTION,
    REPO_DIR,
    BenchError,
    Children,
    Interrupted,
    _raise_on_signal,
    free_port,
    log_tail,
    port_accepts,
    wait_until,
)

from edge import Cluster, check_redis, create_stream, healthy, start_edge, streamit_env
from edge import Settings as EdgeSettings

SECTION_NAME = "bench/latency.py"
SLUG = "edge-bench"  # the slug bench/edge.py's create_stream gives
HLS_JS = REPO_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"
SAMPLE_MS = 250
TARGET_MEDIAN_S = 2.0
PUBLISH = [
    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-b:v", "800k",
    "-c:a", "aac", "-b:a", "96k",
]  # fmt: skip

# The player page: hls.js with lowLatencyMode, sampling latency while the video plays.
PLAYER_PAGE = """<!doctype html>
<meta charset="utf-8"><title>latency</title>
<video id="video" muted autoplay playsinline></video>
<script src="hls.min.js"></script>
<script>
const source = new URLSearchParams(location.search).get("src");
const video = document.getElementById("video");
window.bench = { samples: [], fatal: [], errors: 0 };
const hls = new Hls({ lowLatencyMode: true, backBufferLength: 10 });
hls.on(Hls.Events.ERROR, (_e, data) => {
  window.bench.errors += 1;
  if (data.fatal) { window.bench.fatal.push(data.details); }
});
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
hls.loadSource(source);
hls.attachMedia(video);
setInterval(() => {
  const date = hls.playingDate;
  if (!video.paused && video.readyState >= 3 && date) {
    window.bench.samples.push({
      hls_latency: hls.latency, pdt_latency: (Date.now() - date.getTime()) / 1000, time: video.currentTime,
    });
  }
}, SAMPLE_MS);
</script>
""".replace("SAMPLE_MS", str(SAMPLE_MS))


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One reading while playing: hls.js' latency and wall clock minus the frame's PROGRAM-DATE-TIME."""

    hls_latency: float
    pdt_latency: float
    time: float


@dataclasses.dataclass(frozen=True, slots=True)
class PathResult:
    """The readings of one path (origin or edge)."""

    path: str
    samples: tuple[Sample, ...]
    fatal_errors: tuple[str, ...]
    errors: int

    @property
    def played_s(self) -> float:
        """How far the playhead moved while sampling."""
        if len(self.samples) < 2:
            return 0.0
        return self.samples[-1].time - self.samples[0].time

    def median(self, field: str) -> float | None:
        values = [getattr(s, field) for s in self.samples]
        return statistics.median(values) if values else None

    def p90(self, field: str) -> float | None:
        values = sorted(getattr(s, field) for s in self.samples)
        if not values:
            return None
        return values[min(len(values) - 1, int(0.9 * len(values)))]


def parse_samples(raw: Sequence[dict[str, Any]]) -> tuple[Sample, ...]:
    """The page's samples; readings hls.js has not computed yet (null, NaN) are left out."""
    samples: list[Sample] = []
    for item in raw:
        values = [item.get("hls_latency"), item.get("pdt_latency"), item.get("time")]
        if all(isinstance(v, int | float) and v == v for v in values):
            samples.append(Sample(*(float(v) for v in values)))  # type: ignore[arg-type]
    return tuple(samples)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the player page and hls.js; no request log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def page_server(directory: Path) -> Iterator[str]:
    """The player page and hls.js over HTTP on a free port (its own origin: media is fetched with CORS)."""
    (directory / "player.html").write_text(PLAYER_PAGE)
    shutil.copyfile(HLS_JS, directory / "hls.min.js")
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/player.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium_path() -> Path:
    path = Path(os.environ.get("STREAMIT_TEST_CHROMIUM", "/usr/bin/chromium"))
    if not os.access(path, os.X_OK):
        raise BenchError(f"Chromium not found at {path} (set STREAMIT_TEST_CHROMIUM)")
    return path


def measure_path(page_url: str, playlist: str, path: str, *, warmup: float, duration: float) -> PathResult:
    """Play ``playlist`` in headless Chromium for ``warmup + duration`` s; the samples after the warm-up."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path()),
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        try:
            page = browser.new_page()
            page.goto(f"{page_url}?src={playlist}")
            page.wait_for_timeout(warmup * 1000)
            skip = page.evaluate("window.bench.samples.length")
            page.wait_for_timeout(duration * 1000)
            state = page.evaluate("window.bench")
        finally:
            browser.close()
    return PathResult(
        path=path,
        samples=parse_samples(state["samples"][skip:]),
        fatal_errors=tuple(str(f) for f in state["fatal"]),
        errors=int(state["errors"]),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    duration: float
    warmup: float
    redis_url: str
    streamit_executable: Path
    work_dir: Path


def has_parts(url: str) -> bool:
    try:
        response = httpx.get(url, timeout=2.0, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.count("#EXTINF") >= 2


def run_benchmark(settings: Settings) -> list[PathResult]:
    """Start Redis-registered origin + edge, publish, measure through each; everything is stopped after."""
    if not HLS_JS.exists():
        raise BenchError(f"{HLS_JS} is missing (run `npm ci`)")
    chromium_path()
    check_redis(settings.redis_url)
    cluster = Cluster.fresh(settings.redis_url)
    run_dir = settings.work_dir / f"latency-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True, exist_ok=True)
    # bench/edge.py's helpers read only the executable from its settings.
    edge_settings = EdgeSettings(
        runs=1, duration=0, warmup=0, threads=1, connections=1, viewers=1, edges=1, fanout_duration=0,
        parts=(), redis_url=settings.redis_url, streamit_executable=settings.streamit_executable, keep=False,
    )  # fmt: skip
    try:
        with Children() as children, page_server(run_dir) as page_url:
            data_dir = run_dir / "origin-data"
            http_port, rtmp_port = free_port(), free_port()
            origin = f"http://127.0.0.1:{http_port}"
            argv = [
                str(settings.streamit_executable), "origin", "--data-dir", str(data_dir),
                "--http-port", str(http_port), "--rtmp-port", str(rtmp_port), "--public-url", origin,
                *cluster.flags,
            ]  # fmt: skip
            env = {**streamit_env("bench-origin"), "STREAMIT_HLS_PART_DURATION": "0.334"}
            log = run_dir / "origin.log"
            proc = children.spawn(argv, log, env=env)
            try:
                wait_until(lambda: healthy(origin) and port_accepts(rtmp_port), proc, 30, "streamit origin")
            except BenchError as exc:
                raise BenchError(f"{exc}\n{log_tail(log)}") from None
            key = create_stream(edge_settings, data_dir)
            seconds = settings.warmup * 2 + settings.duration * 2 + 60
            publish = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *PUBLISH]
            publish += ["-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{rtmp_port}/live/{key}"]
            publisher = children.spawn(publish, run_dir / "publisher.log")
            edge, _ = start_edge(children, edge_settings, cluster, run_dir, "bench-edge")
            playlist_path = f"/hls/{SLUG}/ll.m3u8"
            try:
                wait_until(lambda: has_parts(origin + playlist_path), publisher, 30, "LL-HLS stream")
                wait_until(lambda: has_parts(edge + playlist_path), proc, 15, "edge")
            except BenchError as exc:
                raise BenchError(f"{exc}\n{log_tail(log)}\n{log_tail(run_dir / 'publisher.log')}") from None
            results = []
            for name, base in (("origin", origin), ("edge", edge)):
                print(f"measuring through the {name} for {settings.warmup:g} + {settings.duration:g} s …")
                results.append(
                    measure_path(
                        page_url,
                        base + playlist_path,
                        name,
                        warmup=settings.warmup,
                        duration=settings.duration,
                    )
                )
            if publisher.poll() is not None:
                raise BenchError(f"the publisher exited early:\n{log_tail(run_dir / 'publisher.log')}")
            return results
    finally:
        cluster.remove_keys()


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def results_table(results: Sequence[PathResult]) -> str:
    rows = [
        "| path | samples | played (s) | hls.latency median (s) | p90 (s) "
        "| wall clock − PDT median (s) | p90 (s) | fatal errors | non-fatal errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.path} | {len(r.samples)} | {r.played_s:.1f} | {fmt(r.median('hls_latency'))} "
            f"| {fmt(r.p90('hls_latency'))} | {fmt(r.median('pdt_latency'))} | {fmt(r.p90('pdt_latency'))} "
            f"| {len(r.fatal_errors)} | {r.errors - len(r.fatal_errors)} |"
        )
    return "\n".join(rows)


def section(results: Sequence[PathResult], command: str, when: datetime.datetime) -> str:
    verdicts = []
    for r in results:
        median = r.median("pdt_latency")
        if median is not None:
            verdict = "meets" if median <= TARGET_MEDIAN_S else "misses"
            verdicts.append(f"{r.path}: {median:.2f} s ({verdict} the {TARGET_MEDIAN_S:g} s target)")
    return "\n".join(
        [
            f"<!-- BEGIN {SECTION_NAME} -->",
            "",
            "## LL-HLS latency",
            "",
            f"Measured {when:%Y-%m-%d %H:%M} UTC with `{command}` on this machine "
            f"({os.cpu_count()} CPUs, shared with other work).  ffmpeg publishes 640x360 30 fps H.264/AAC, "
            "1 s GOP, `-tune zerolatency`, to `streamit origin` (2 s segments, 0.334 s parts); headless "
            "Debian Chromium plays `ll.m3u8` with hls.js (`lowLatencyMode: true`) from the origin, then from "
            "a `streamit edge`.  Samples every 250 ms after the warm-up.  *hls.latency* is hls.js' estimate "
            "(live edge − playhead); *wall clock − PDT* is `Date.now()` minus the EXT-X-PROGRAM-DATE-TIME of "
            "the displayed frame (`hls.playingDate`): arrival at the origin → on screen.",
            "",
            results_table(results),
            "",
            "Median wall clock − PDT: " + "; ".join(verdicts) + ".  Anchors: MediaMTX states 0.5–3 s for "
            "LL-HLS, OvenMediaEngine 2–5 s, classic HLS in nginx-rtmp ≈ 6–10 s.",
            "",
            f"<!-- END {SECTION_NAME} -->",
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Put ``text`` in place of the previous ``bench/latency.py`` section (appended if there was none)."""
    previous = path.read_text() if path.exists() else "# Benchmarks\n"
    for match in MARKED_SECTION.finditer(previous):
        if match.group("name") == SECTION_NAME:
            updated = previous[: match.start()] + text + previous[match.end() :]
            break
    else:
        updated = previous.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(updated)


def parse_args(argv: Sequence[str]) -> tuple[Settings, Path | None, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds sampled per path")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds played before sampling")
    parser.add_argument(
        "--redis-url", default=os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--streamit", type=Path, default=Path(sys.executable).parent / "streamit")
    parser.add_argument(
        "--output", type=Path, help="markdown file whose bench/latency.py section is replaced"
    )
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument(
        "--work-dir", type=Path, default=REPO_DIR / "bench" / ".work", help="logs and scratch"
    )
    parser.add_argument("--quick", action="store_true", help="5 s warm-up, 5 s per path: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 5.0, 5.0
    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        redis_url=args.redis_url,
        streamit_executable=args.streamit,
        work_dir=args.work_dir,
    )
    return settings, args.output, args.json


def results_json(results: Sequence[PathResult]) -> dict[str, Any]:
    return {
        r.path: {
            "samples": len(r.samples),
            "played_s": r.played_s,
            "hls_latency_median": r.median("hls_latency"),
            "hls_latency_p90": r.p90("hls_latency"),
            "pdt_latency_median": r.median("pdt_latency"),
            "pdt_latency_p90": r.p90("pdt_latency"),
            "fatal_errors": list(r.fatal_errors),
            "errors": r.errors,
        }
        for r in results
    }


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    settings, output, json_path = parse_args(raw_argv)
    if not settings.streamit_executable.exists():
        print(f"error: {settings.streamit_executable} not found (give --streamit)", file=sys.stderr)
        return 1
    command = shlex.join([".venv/bin/python", "bench/latency.py", *raw_argv])
    try:
        results = run_benchmark(settings)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as exc:
        print(f"stopped by signal {exc.signum}; everything started was stopped", file=sys.stderr)
        return 128 + exc.signum
    print(results_table(results))
    if json_path is not None:
        json_path.write_text(json.dumps(results_json(results), indent=2))
    if output is not None:
        write_section(output, section(results, command, datetime.datetime.now(datetime.UTC)))
        print(f"wrote the {SECTION_NAME} section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
