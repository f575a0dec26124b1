"""Ingest benchmark: Streamit side by side with nginx-rtmp.

For each N publishers (each ``ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv rtmp://…`` of a
pre-encoded 3 Mbit/s 720p30 H.264/AAC clip with a 2 s GOP) this measures, over a steady-state window:

* the server's CPU time per stream-second (utime+stime of the server's whole process tree, from
  ``/proc/<pid>/stat``; nginx = master + workers, Streamit = the ``streamit serve`` process),
* the server's resident memory (sum of VmRSS over its processes), total and per extra stream,
* the publishers' own CPU time per stream-second,
* the time from starting a publisher to the first time its playlist lists a segment, next to a reference:
  ffmpeg's own HLS muxer cutting the same clip (``-c copy -f hls -hls_time 2``).

Run with the project's venv::

    .venv/bin/python bench/ingest.py [--n 1,10,30] [--runs 3] [--duration 20] \
        [--servers nginx,streamit,streamit-ts] [--output docs/benchmarks.md] [--smoke]

Only the standard library and httpx are used. Every process started is put in its own process group and
the whole group is killed on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
CLIP_PATH = WORK_DIR / "clip.flv"
NGINX_RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024

SEGMENT_POLL_INTERVAL = 0.05
RSS_SAMPLE_INTERVAL = 1.0
STOP_GRACE_SECONDS = 10.0


MARKED_SECTION = re.compile(r"^<!-- BEGIN (?P<name>\S+) -->\n.*?^<!-- END (?P=name) -->$", re.S | re.M)
"""A section of docs/benchmarks.md written by another script (named after BEGIN); the report keeps it."""


def with_marked_sections(report: str, previous: str) -> str:
    """``report`` followed by the marked sections of the file it replaces (e.g. bench/edge.py's)."""
    kept = [match.group(0) for match in MARKED_SECTION.finditer(previous)]
    return "\n\n".join([report.rstrip("\n"), *kept]) + "\n"


class BenchError(Exception):
    """A benchmark step failed (a server did not start, a tool is missing, …)."""


# --------------------------------------------------------------------------------------------------------
# Processes


class Children:
    """Every process the benchmark starts, each the leader of its own process group.

    ``close`` (also run on context exit) terminates each group, waits, and kills what is left.
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(
        self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session (so a terminal Ctrl-C reaches only us), output to ``log_path``."""
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        self._procs.append(proc)
        return proc

    def stop(self, procs: Sequence[subprocess.Popen[bytes]]) -> None:
        """Terminate the process groups of ``procs`` (all at once), then reap them."""
        # Signals arriving mid-cleanup must not leave orphans behind: defer them until we are done.
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for proc in procs:
                _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                # Stragglers that outlived their group leader (e.g. an nginx worker).
                _signal_group(proc.pid, signal.SIGKILL)
            for proc in procs:
                with contextlib.suppress(ValueError):
                    self._procs.remove(proc)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def close(self) -> None:
        """Stop everything still registered."""
        self.stop(list(self._procs))


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived; unwinds like KeyboardInterrupt so every ``Children`` is closed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def log_tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------------------------
# /proc accounting


@dataclasses.dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the benchmark uses (proc(5)); times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    rss_pages: int

    @property
    def own_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def ticks_with_reaped_children(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_proc_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line.

    The command name (field 2) is parenthesised and may itself contain spaces and parentheses, so the
    remaining fields are split after the *last* ``)`` (proc(5)).
    """
    pid_part, _, rest = text.partition(" (")
    fields = rest[rest.rindex(")") + 2 :].split()
    # ``fields[0]`` is field 3 (state): field k of proc(5) is fields[k - 3].
    return ProcStat(
        pid=int(pid_part),
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
        rss_pages=int(fields[21]),
    )


def read_proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_proc_stat(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def all_proc_stats() -> dict[int, ProcStat]:
    """Stats of every visible process."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_proc_stat(int(entry))
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def process_tree(root: int, stats: dict[int, ProcStat]) -> list[ProcStat]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            tree.append(stats[pid])
            todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used by a process tree so far.

    Live processes count their own utime+stime; a child that already exited and was reaped is in its
    parent's cutime+cstime, so nothing is counted twice and nothing vanishes when a worker dies.
    """
    tree = process_tree(root, all_proc_stats())
    return sum(stat.ticks_with_reaped_children for stat in tree) / CLOCK_TICKS


def tree_rss_bytes(root: int) -> int:
    """Sum of resident set sizes over a process tree (shared pages counted once per process)."""
    tree = process_tree(root, all_proc_stats())
    return sum(stat.rss_pages for stat in tree) * PAGE_SIZE


def processes_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds used by separate processes (exited but unreaped ones still report their times)."""
    stats = (read_proc_stat(pid) for pid in pids)
    return sum(stat.own_ticks for stat in stats if stat is not None) / CLOCK_TICKS


# --------------------------------------------------------------------------------------------------------
# Network and playlists


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class PlaylistState:
    """What identifies the progress of a live media playlist."""

    media_sequence: int
    segments: tuple[str, ...]


def parse_playlist(text: str) -> PlaylistState:
    """Media sequence number and segment URIs of an HLS media playlist (RFC 8216 §4.3.2.2, §4.3.3.2)."""
    media_sequence = 0
    segments = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_sequence = int(line.partition(":")[2])
        elif line and not line.startswith("#"):
            segments.append(line)
    return PlaylistState(media_sequence, tuple(segments))


def fetch_playlist(client: httpx.Client, url: str) -> PlaylistState | None:
    """The playlist at ``url``, or None while it is not served (yet)."""
    try:
        response = client.get(url)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return parse_playlist(response.text)
    except ValueError:
        return None


def wait_first_segments(
    client: httpx.Client, urls: Sequence[str], started: Sequence[float], deadline: float
) -> list[float | None]:
    """Seconds from each ``started[i]`` until ``urls[i]`` first lists a segment (None: not before deadline).

    The resolution is one polling round (every stream is fetched, then ``SEGMENT_POLL_INTERVAL``).
    """
    result: list[float | None] = [None] * len(urls)
    pending = list(range(len(urls)))
    while pending and time.monotonic() < deadline:
        still = []
        for i in pending:
            state = fetch_playlist(client, urls[i])
            if state is not None and state.segments:
                result[i] = time.monotonic() - started[i]
            else:
                still.append(i)
        pending = still
        if pending:
            time.sleep(SEGMENT_POLL_INTERVAL)
    return result


LATE_LIMIT = 1.0
"""A segment published more than this many seconds behind the stream's media time is late (not real time)."""

FULL_COUNTS = (1, 10, 30, 60, 100)
"""Publisher counts of ``--full``."""

SERVERS = ("nginx", "streamit", "streamit-ts")
"""The servers compared by default: nginx-rtmp, Streamit as it comes (TS + LL-HLS), Streamit with TS only."""

STREAMIT_API = "/api/v1"
"""Where ``streamit serve`` serves its API (streams are created there, with one token made by the CLI)."""

WATCH_INTERVAL = 0.1
"""How often the playlist files are checked for a change (s): the resolution of lateness and lag."""


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentSeen:
    """A segment as it appeared in a playlist file."""

    uri: str
    duration: float  # EXTINF, s
    program_date_time: datetime.datetime | None
    appeared: float  # time.time() when the watcher first saw it listed


def parse_segments(text: str) -> list[tuple[str, float, datetime.datetime | None]]:
    """(URI, EXTINF s, EXT-X-PROGRAM-DATE-TIME or None) of each segment (RFC 8216 §4.3.2.1, §4.3.2.6)."""
    out = []
    duration = 0.0
    pdt: datetime.datetime | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].partition(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = datetime.datetime.fromisoformat(line.partition(":")[2].replace("Z", "+00:00"))
        elif line and not line.startswith("#"):
            out.append((line, duration, pdt))
            pdt = None
    return out


class PlaylistWatcher:
    """Watches playlist files on disk (no HTTP load on the server) and notes when each segment appears.

    Both servers write their playlists to disk by rename, so a changed ``st_mtime_ns`` means a new playlist.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.seen: list[dict[str, SegmentSeen]] = [{} for _ in self.paths]
        self._mtimes: list[int] = [0] * len(self.paths)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playlist-watcher", daemon=True)

    def __enter__(self) -> PlaylistWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            self.poll()

    def poll(self) -> None:
        """Check every file once."""
        for i, path in enumerate(self.paths):
            try:
                mtime = path.stat().st_mtime_ns
                if mtime == self._mtimes[i]:
                    continue
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            now = time.time()
            self._mtimes[i] = mtime
            try:
                segments = parse_segments(text)
            except ValueError:
                continue
            seen = self.seen[i]
            for uri, duration, pdt in segments:
                if uri not in seen:
                    seen[uri] = SegmentSeen(uri, duration, pdt, now)


@dataclasses.dataclass(frozen=True, slots=True)
class Timeliness:
    """How one stream's segments kept up with its media during the window."""

    max_lateness_s: float | None  # worst drift behind media time; None: fewer than two segments seen
    late_segments: int  # segments more than LATE_LIMIT behind
    # Wall clock when the segment appeared − its EXT-X-PROGRAM-DATE-TIME (the wall clock of its first frame at
    # the server): the segment's duration plus the packaging and publishing delay.
    lags_s: tuple[float, ...]


def timeliness(segments: Sequence[SegmentSeen], start: float, end: float) -> Timeliness:
    """Lateness of the segments that appeared in [start, end] (wall clock, time.time()).

    The first segment seen anchors the stream: segment k should appear (sum of the durations of the
    segments between) after it.  Lateness is how much later it did; a server that keeps up stays near 0
    (jitter of a polling interval and of the keyframe-aligned cut), one that falls behind grows without
    bound.
    """
    ordered = sorted(segments, key=lambda s: s.appeared)
    window = [s for s in ordered if start <= s.appeared <= end]
    lags = tuple(
        s.appeared - s.program_date_time.timestamp() for s in window if s.program_date_time is not None
    )
    if len(ordered) < 2:
        return Timeliness(None, 0, lags)
    anchor = ordered[0]
    media = 0.0
    worst: float | None = None
    late = 0
    for previous, segment in itertools.pairwise(ordered):
        media += previous.duration
        lateness = (segment.appeared - anchor.appeared) - media
        if start <= segment.appeared <= end:
            worst = lateness if worst is None else max(worst, lateness)
            late += lateness > LATE_LIMIT
    return Timeliness(worst, late, lags)


# --------------------------------------------------------------------------------------------------------
# The clip


def ensure_clip(children: Children) -> Path:
    """Generate the test clip into bench/.work/ unless it is already there."""
    if CLIP_PATH.exists():
        return CLIP_PATH
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    partial = CLIP_PATH.with_suffix(".partial.flv")
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "60", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M",
        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-f", "flv", str(partial),
    ]  # fmt: skip
    print(f"generating {CLIP_PATH} (60 s 720p30, about a minute) …", flush=True)
    log = WORK_DIR / "clip.log"
    proc = children.spawn(argv, log)
    if proc.wait() != 0:
        raise BenchError(f"clip generation failed:\n{log_tail(log)}")
    partial.rename(CLIP_PATH)
    return CLIP_PATH


@dataclasses.dataclass(frozen=True, slots=True)
class ClipFacts:
    """What ffprobe says about the clip."""

    description: str
    keyframe_times: tuple[float, ...]


def probe_clip(clip: Path) -> ClipFacts:
    """Codecs, size, bitrate and the first keyframe times of ``clip``."""
    streams = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(clip)],
            check=True,
            capture_output=True,
        ).stdout
    )
    keyframes = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
         "-read_intervals", "%+7", "-show_entries", "frame=pts_time", "-of", "csv=p=0", str(clip)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    parts = []
    for stream in streams["streams"]:
        if stream["codec_type"] == "video":
            parts.append(
                f"{stream['codec_name']} {stream.get('profile', '')} {stream['width']}x{stream['height']} "
                f"{stream['avg_frame_rate']} fps"
            )
        elif stream["codec_type"] == "audio":
            parts.append(f"{stream['codec_name']} {stream['sample_rate']} Hz {stream['channels']} ch")
    fmt = streams["format"]
    parts.append(f"{float(fmt['duration']):.0f} s, {int(fmt['bit_rate']) / 1e6:.2f} Mbit/s overall")
    times = tuple(float(t.strip(",")) for t in keyframes if t.strip(","))
    return ClipFacts(", ".join(parts), times)


def measure_reference(children: Children, clip: Path, run_dir: Path, timeout: float) -> float | None:
    """Seconds until ffmpeg's own HLS muxer, fed the clip in real time, lists its first segment.

    This is the floor for a keyframe-aligned 2 s segmenter on this machine: ffmpeg start-up plus one GOP.
    """
    out = run_dir / "reference"
    out.mkdir()
    playlist = out / "index.m3u8"
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip),
        "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_list_size", "6", str(playlist),
    ]  # fmt: skip
    started = time.monotonic()
    proc = children.spawn(argv, run_dir / "reference.log")
    try:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError, ValueError):
                if parse_playlist(playlist.read_text()).segments:
                    return time.monotonic() - started
            time.sleep(SEGMENT_POLL_INTERVAL)
        return None
    finally:
        children.stop([proc])


# --------------------------------------------------------------------------------------------------------
# Servers


class Server(Protocol):
    """A server under test, started inside ``run_dir``."""

    name: str

    def start(self, children: Children, n: int) -> int:
        """Start the server, wait until it serves, prepare ``n`` streams; return the root pid."""
        ...

    def publish_url(self, i: int) -> str:
        """Where publisher ``i`` (1-based) sends RTMP."""
        ...

    def playlist_url(self, i: int) -> str:
        """Where the playlist of stream ``i`` is served over HTTP."""
        ...

    def playlist_path(self, i: int) -> Path:
        """Where the server writes the playlist of stream ``i`` on disk."""
        ...


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.1)


NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log;

events {{
    worker_connections 1024;
}}

rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        application live {{
            live on;
            hls on;
            hls_path {dir}/hls;
            hls_fragment 2s;
            hls_playlist_length 12s;
        }}
    }}
}}

http {{
    access_log off;
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
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {dir}/hls/;
            add_header Cache-Control no-cache;
        }}
    }}
}}
"""


class NginxServer:
    """Debian nginx with libnginx-mod-rtmp, one worker, HLS on disk served by nginx's http module."""

    name = "nginx"

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.rtmp_port = free_port()
        self.http_port = free_port()

    def start(self, children: Children, n: int) -> int:
        (self.dir / "tmp").mkdir(parents=True)
        (self.dir / "hls").mkdir()
        conf = self.dir / "nginx.conf"
        user = "root" if os.geteuid() == 0 else "nobody"  # workers must be able to write hls_path
        conf.write_text(
            NGINX_CONF.format(
                module=NGINX_RTMP_MODULE,
                dir=self.dir,
                user=user,
                rtmp_port=self.rtmp_port,
                http_port=self.http_port,
            )
        )
        proc = children.spawn(["nginx", "-c", str(conf), "-p", f"{self.dir}/"], self.dir / "stderr.log")
        try:
            wait_until(
                lambda: port_accepts(self.rtmp_port) and port_accepts(self.http_port), proc, 15, "nginx"
            )
        except BenchError as exc:
            raise BenchError(f"{exc}\n{log_tail(self.dir / 'error.log')}") from None
        return proc.pid

    def publish_url(self, i: int) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/bench-{i}"

    def playlist_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/bench-{i}.m3u8"

    def playlist_path(self, i: int) -> Path:
        return self.dir / "hls" / f"bench-{i}.m3u8"


class StreamitServer:
    """``streamit serve`` on 127.0.0.1 with a fresh data directory; streams made through its API."""

    name = "streamit"

    def __init__(self, run_dir: Path, executable: Path) -> None:
        self.dir = run_dir
        self.executable = executable
        self.data_dir = run_dir / "data"
        self.rtmp_port = free_port()
        self.http_port = free_port()
        self.stream_keys: dict[int, str] = {}
        self.slugs: dict[int, str] = {}
        self.env = dict(os.environ)
        self.env.update(
            STREAMIT_RTMP_HOST="127.0.0.1",
            STREAMIT_HTTP_HOST="127.0.0.1",
            STREAMIT_LOG_LEVEL="WARNING",
            # Every publisher connects from 127.0.0.1: the per-address cap (50) would refuse N > 50.
            STREAMIT_RTMP_MAX_CONNECTIONS_PER_IP="1000",
        )

    def start(self, children: Children, n: int) -> int:
        if not self.executable.exists():
            raise BenchError(f"{self.executable} not found")
        self.data_dir.mkdir(parents=True)
        argv = [
            str(self.executable), "serve",
            "--rtmp-port", str(self.rtmp_port), "--http-port", str(self.http_port),
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        log = self.dir / "serve.log"
        proc = children.spawn(argv, log, env=self.env)
        try:
            wait_until(lambda: self._healthy() and port_accepts(self.rtmp_port), proc, 30, "streamit serve")
        except BenchError as exc:
            raise BenchError(f"{exc}\n{log_tail(log)}") from None
        token = self._create_token()
        for i in range(1, n + 1):
            created = self._create_stream(i, token)
            self.stream_keys[i] = created["stream_key"]
            self.slugs[i] = created["slug"]
        return proc.pid

    def _healthy(self) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _create_token(self) -> str:
        """An API token, made with ``streamit tokens create`` (one CLI start, not one per stream)."""
        argv = [
            str(self.executable), "tokens", "create", "--name", "bench", "--json",
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        if done.returncode != 0:
            raise BenchError(f"{shlex.join(argv)} failed ({done.returncode}):\n{done.stderr.strip()}")
        try:
            return str(json.loads(done.stdout)["token"])
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"unexpected output from {shlex.join(argv)}:\n{done.stdout[:500]}") from None

    def _create_stream(self, i: int, token: str) -> dict[str, str]:
        """Stream ``i`` (slug ``bench-i``) through the API: ``POST /api/v1/streams``."""
        url = f"http://127.0.0.1:{self.http_port}{STREAMIT_API}/streams"
        try:
            response = httpx.post(
                url,
                json={"title": f"bench {i}", "slug": f"bench-{i}"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30.0,
                trust_env=False,
            )
        except httpx.HTTPError as exc:
            raise BenchError(f"POST {url} failed: {exc}") from None
        if response.status_code != 201:
            raise BenchError(f"POST {url}: HTTP {response.status_code}: {response.text[:500]}")
        created = response.json()
        return {"stream_key": str(created["stream_key"]), "slug": str(created["slug"])}

    def publish_url(self, i: int) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{self.stream_keys[i]}"

    def playlist_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.http_port}/hls/{self.slugs[i]}/index.m3u8"

    def playlist_path(self, i: int) -> Path:
        return self.data_dir / "hls" / self.slugs[i] / "index.m3u8"


class StreamitTsServer(StreamitServer):
    """``streamit serve`` packaging what nginx-rtmp's ``hls on`` packages: MPEG-TS HLS only, LL-HLS off.

    Streamit's default also packages every stream as LL-HLS (fMP4 parts and segments written beside the TS
    ones); this variant compares like for like.
    """

    name = "streamit-ts"

    def __init__(self, run_dir: Path, executable: Path) -> None:
        super().__init__(run_dir, executable)
        self.env["STREAMIT_HLS_LOW_LATENCY"] = "false"


# --------------------------------------------------------------------------------------------------------
# One measurement


@dataclasses.dataclass(frozen=True, slots=True)
class CellResult:
    """One server, one N, one run."""

    server: str
    n: int
    run: int
    error: str | None = None
    streams_live: int = 0
    window_s: float = 0.0
    server_cpu_s: float = 0.0
    publisher_cpu_s: float = 0.0
    rss_idle_bytes: int = 0
    rss_bytes: int = 0
    first_segments: tuple[float | None, ...] = ()
    max_lateness_s: float | None = None
    late_segments: int = 0
    live_lag_s: float | None = None  # median of appearance − PROGRAM-DATE-TIME (Streamit writes PDT)

    @property
    def real_time(self) -> bool:
        """Valid, and no segment of any stream fell more than LATE_LIMIT behind."""
        return self.valid and self.late_segments == 0 and self.max_lateness_s is not None

    @property
    def valid(self) -> bool:
        """The window was measured and every stream was live through it."""
        return self.window_s > 0 and self.streams_live == self.n

    @property
    def cpu_ms_per_stream_s(self) -> float:
        return 1000 * self.server_cpu_s / (self.n * self.window_s)

    @property
    def cpu_percent(self) -> float:
        return 100 * self.server_cpu_s / self.window_s

    @property
    def publisher_ms_per_stream_s(self) -> float:
        return 1000 * self.publisher_cpu_s / (self.n * self.window_s)

    @property
    def rss_per_stream_bytes(self) -> float:
        return (self.rss_bytes - self.rss_idle_bytes) / self.n

    @property
    def first_segment_median(self) -> float | None:
        seen = [t for t in self.first_segments if t is not None]
        return statistics.median(seen) if seen else None

    @property
    def first_segment_max(self) -> float | None:
        """The slowest stream; None if any stream never produced a segment."""
        if not self.first_segments or any(t is None for t in self.first_segments):
            return None
        return max(t for t in self.first_segments if t is not None)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Parameters of the whole benchmark."""

    counts: tuple[int, ...]
    runs: int
    duration: float
    warmup: float
    servers: tuple[str, ...]
    first_segment_timeout: float
    streamit_executable: Path
    keep: bool


def make_server(name: str, run_dir: Path, settings: Settings) -> Server:
    if name == "nginx":
        return NginxServer(run_dir)
    if name == "streamit":
        return StreamitServer(run_dir, settings.streamit_executable)
    if name == "streamit-ts":
        return StreamitTsServer(run_dir, settings.streamit_executable)
    raise BenchError(f"unknown server {name!r}")


def measure_cell(
    server: Server, n: int, run: int, clip: Path, run_dir: Path, settings: Settings
) -> CellResult:
    """Start ``server``, publish ``n`` streams, measure the steady-state window, stop everything."""
    with Children() as children, httpx.Client(timeout=2.0, trust_env=False) as client:
        root = server.start(children, n)
        time.sleep(1.0)
        rss_idle = tree_rss_bytes(root)

        publishers, started = [], []
        for i in range(1, n + 1):
            argv = [
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                "-re", "-stream_loop", "-1", "-i", str(clip),
                "-c", "copy", "-f", "flv", server.publish_url(i),
            ]  # fmt: skip
            started.append(time.monotonic())
            publishers.append(children.spawn(argv, run_dir / f"publisher-{i}.log"))
        launched = started[0]
        urls = [server.playlist_url(i) for i in range(1, n + 1)]
        with PlaylistWatcher([server.playlist_path(i) for i in range(1, n + 1)]) as watcher:
            first = wait_first_segments(client, urls, started, launched + settings.first_segment_timeout)
            return _measure_window(
                server, n, run, run_dir, settings, client, root, publishers, urls, first, rss_idle, launched,
                watcher,
            )  # fmt: skip


def _measure_window(
    server: Server,
    n: int,
    run: int,
    run_dir: Path,
    settings: Settings,
    client: httpx.Client,
    root: int,
    publishers: Sequence[subprocess.Popen[bytes]],
    urls: Sequence[str],
    first: Sequence[float | None],
    rss_idle: int,
    launched: float,
    watcher: PlaylistWatcher,
) -> CellResult:
    """The steady-state window of :func:`measure_cell`, with the publishers running."""
    remaining_warmup = launched + settings.warmup - time.monotonic()
    if remaining_warmup > 0:
        time.sleep(remaining_warmup)

    before = [fetch_playlist(client, url) for url in urls]
    wall_start = time.time()
    window_start = time.monotonic()
    cpu_start = tree_cpu_seconds(root)
    pub_start = processes_cpu_seconds([p.pid for p in publishers])
    rss_samples = []
    while time.monotonic() - window_start < settings.duration:
        time.sleep(min(RSS_SAMPLE_INTERVAL, max(0.0, settings.duration - (time.monotonic() - window_start))))
        rss_samples.append(tree_rss_bytes(root))
    cpu_end = tree_cpu_seconds(root)
    pub_end = processes_cpu_seconds([p.pid for p in publishers])
    window = time.monotonic() - window_start
    wall_end = time.time()
    after = [fetch_playlist(client, url) for url in urls]
    watcher.poll()
    timely = [timeliness(list(seen.values()), wall_start, wall_end) for seen in watcher.seen]
    worst = [t.max_lateness_s for t in timely]
    lags = [lag for t in timely for lag in t.lags_s]

    live = sum(
        1
        for proc, b, a in zip(publishers, before, after, strict=True)
        if proc.poll() is None and a is not None and a.segments and a != b
    )
    errors = []
    dead = [i for i, proc in enumerate(publishers, 1) if proc.poll() is not None]
    if dead:
        tail = log_tail(run_dir / f"publisher-{dead[0]}.log", 3)
        errors.append(f"{len(dead)} publisher(s) exited early (publisher {dead[0]}: {tail or 'no output'})")
    return CellResult(
        server=server.name,
        n=n,
        run=run,
        error="; ".join(errors) or None,
        streams_live=live,
        window_s=window,
        server_cpu_s=cpu_end - cpu_start,
        publisher_cpu_s=pub_end - pub_start,
        rss_idle_bytes=rss_idle,
        rss_bytes=int(statistics.median(rss_samples)),
        first_segments=tuple(first),
        max_lateness_s=None if any(w is None for w in worst) else max(w for w in worst if w is not None),
        late_segments=sum(t.late_segments for t in timely),
        live_lag_s=statistics.median(lags) if lags else None,
    )


# --------------------------------------------------------------------------------------------------------
# Reporting


def median_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """Medians over the successful runs of one server at one N."""

    server: str
    n: int
    runs: int
    failures: int
    streams_live: str
    cpu_ms_per_stream_s: float | None
    cpu_percent: float | None
    rss_mib: float | None
    rss_per_stream_mib: float | None
    publisher_ms_per_stream_s: float | None
    first_segment_median: float | None
    first_segment_max: float | None
    max_lateness_s: float | None
    live_lag_s: float | None
    real_time: bool


def summarize(results: Sequence[CellResult], server: str, n: int) -> Summary:
    cells = [r for r in results if r.server == server and r.n == n]
    # A run where a stream died or stalled measured a lighter load than asked for: it is not averaged in.
    ok = [r for r in cells if r.valid]
    return Summary(
        server=server,
        n=n,
        runs=len(cells),
        failures=len(cells) - len(ok),
        streams_live="/".join(str(r.streams_live) for r in cells) + f" of {n}",
        cpu_ms_per_stream_s=median_or_none([r.cpu_ms_per_stream_s for r in ok]),
        cpu_percent=median_or_none([r.cpu_percent for r in ok]),
        rss_mib=median_or_none([r.rss_bytes / MIB for r in ok]),
        rss_per_stream_mib=median_or_none([r.rss_per_stream_bytes / MIB for r in ok]),
        publisher_ms_per_stream_s=median_or_none([r.publisher_ms_per_stream_s for r in ok]),
        first_segment_median=median_or_none([r.first_segment_median for r in ok]),
        first_segment_max=median_or_none([r.first_segment_max for r in ok]),
        max_lateness_s=max((r.max_lateness_s for r in ok if r.max_lateness_s is not None), default=None),
        live_lag_s=median_or_none([r.live_lag_s for r in ok]),
        real_time=bool(cells) and all(r.real_time for r in cells),
    )


def largest_real_time(summaries: Sequence[Summary], server: str) -> int | None:
    """The largest N at which every run of ``server`` kept every stream live and in real time."""
    kept = [s.n for s in summaries if s.server == server and s.real_time]
    return max(kept) if kept else None


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def results_tables(
    results: Sequence[CellResult], settings: Settings, references: Sequence[float | None]
) -> str:
    summaries = [summarize(results, s, n) for n in settings.counts for s in settings.servers]
    main = markdown_table(
        [
            "server", "N", "streams live (per run)", "server CPU ms / stream-s", "server CPU % of a core",
            "RSS total MiB", "RSS MiB / extra stream", "publisher CPU ms / stream-s",
            "first segment s (median)", "first segment s (slowest)", "worst segment lateness s",
            "real time", "live lag s (PDT)",
        ],
        [
            [
                s.server, str(s.n), s.streams_live + (f" ({s.failures} invalid)" if s.failures else ""),
                fmt(s.cpu_ms_per_stream_s, 2), fmt(s.cpu_percent, 1), fmt(s.rss_mib, 1),
                fmt(s.rss_per_stream_mib, 2), fmt(s.publisher_ms_per_stream_s, 2),
                fmt(s.first_segment_median, 2), fmt(s.first_segment_max, 2), fmt(s.max_lateness_s, 2),
                "yes" if s.real_time else "no", fmt(s.live_lag_s, 2),
            ]
            for s in summaries
        ],
    )  # fmt: skip
    parts = [main]
    parts.append(
        "Largest N kept in real time (every stream live, no segment more than "
        f"{LATE_LIMIT:g} s behind its media time, in every run): "
        + ", ".join(f"{name} **{fmt(largest_real_time(summaries, name), 0)}**" for name in settings.servers)
        + f" (of N = {', '.join(map(str, settings.counts))})"
    )
    if not {"nginx", "streamit"} <= set(settings.servers):
        parts.append("No ratio table: it needs `--servers nginx,streamit`.")
    else:
        by_key = {(s.server, s.n): s for s in summaries}
        like_for_like = "streamit-ts" in settings.servers
        rows = []
        for n in settings.counts:
            st, ng = by_key[("streamit", n)], by_key[("nginx", n)]
            row = [str(n), ratio(st.cpu_ms_per_stream_s, ng.cpu_ms_per_stream_s)]
            if like_for_like:
                ts = by_key[("streamit-ts", n)]
                row.append(ratio(ts.cpu_ms_per_stream_s, ng.cpu_ms_per_stream_s))
            row += [
                ratio(st.rss_mib, ng.rss_mib),
                ratio(st.rss_per_stream_mib, ng.rss_per_stream_mib),
                ratio(st.first_segment_median, ng.first_segment_median),
            ]
            rows.append(row)
        header = ["N", "server CPU per stream-s"]
        if like_for_like:
            header.append("server CPU per stream-s, TS only (streamit-ts)")
        header += ["RSS total", "RSS per extra stream", "first segment"]
        parts.append(
            "Ratio streamit / nginx (below 1.00× means Streamit uses less / is faster):\n\n"
            + markdown_table(header, rows)
        )
    reference = fmt(median_or_none(references), 2)
    parts.append(
        "Reference, ffmpeg's own HLS muxer on the same clip (`ffmpeg -re -i clip.flv -c copy -f hls "
        f"-hls_time 2`), time to first listed segment, median of runs: **{reference} s**"
    )
    return "\n\n".join(parts)


def raw_table(results: Sequence[CellResult]) -> str:
    rows = []
    for r in results:
        if r.window_s > 0:
            rows.append(
                [
                    str(r.run), r.server, str(r.n), f"{r.streams_live}/{r.n}", f"{r.window_s:.1f}",
                    f"{r.server_cpu_s:.2f}", f"{r.cpu_ms_per_stream_s:.2f}", f"{r.rss_idle_bytes / MIB:.1f}",
                    f"{r.rss_bytes / MIB:.1f}", f"{r.publisher_cpu_s:.2f}",
                    fmt(r.first_segment_median, 2), fmt(r.first_segment_max, 2), fmt(r.max_lateness_s, 2),
                    str(r.late_segments), fmt(r.live_lag_s, 2), r.error or "",
                ]
            )  # fmt: skip
        else:
            rows.append([str(r.run), r.server, str(r.n), *[""] * 12, r.error or ""])
    return markdown_table(
        [
            "run", "server", "N", "live", "window s", "server CPU s", "ms / stream-s", "RSS idle MiB",
            "RSS MiB", "publisher CPU s", "first seg median s", "first seg slowest s", "worst lateness s",
            "late segments", "live lag s", "notes",
        ],
        [[cell.replace("\n", " ").replace("|", "\\|") for cell in row] for row in rows],
    )  # fmt: skip


def first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return ((done.stdout or done.stderr).strip().splitlines() or ["unavailable"])[0]


def machine_facts() -> list[tuple[str, str]]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("CPU", model),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("python", platform.python_version()),
        ("CPU time resolution", f"{1000 / CLOCK_TICKS:g} ms (CLK_TCK {CLOCK_TICKS})"),
        # Other work on the machine skews absolute figures; ratios from the same run stay comparable.
        ("load average at the end (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("ffmpeg", first_line(["ffmpeg", "-version"]).split(" Copyright")[0]),
        ("nginx", first_line(["nginx", "-v"])),
        ("streamit commit", first_line(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"])),
    ]


def render_report(
    results: Sequence[CellResult],
    settings: Settings,
    references: Sequence[float | None],
    clip: ClipFacts,
    command: str,
) -> str:
    keyframes = ", ".join(f"{t:.2f}" for t in clip.keyframe_times[:4])
    facts = "\n".join(f"- {k}: {v}" for k, v in machine_facts())
    return f"""# Benchmarks

Generated by `bench/ingest.py` (see `bench/README.md`); do not edit by hand.

## Ingest: CPU and memory per published stream

Command:

```
{command}
```

Machine:

{facts}

Clip: {clip.description}; first keyframes at {keyframes} s. Each publisher is
`ffmpeg -re -stream_loop -1 -i clip.flv -c copy -f flv rtmp://127.0.0.1:…`, everything on 127.0.0.1.

Method: per run, for each N and each server in turn ({", ".join(settings.servers)}), a fresh server is
started, N publishers are started together, and each playlist is polled over HTTP every
{SEGMENT_POLL_INTERVAL * 1000:.0f} ms until it lists a segment (time counted from that publisher's start).
After a {settings.warmup:g} s warm-up (counted from the first publisher's start) the server's CPU time
(utime+stime of its process tree from `/proc/<pid>/stat`: nginx master + worker, `streamit serve` and any
children) is taken over a {settings.duration:g} s window. RSS is the sum of VmRSS over those processes
(median of 1 s samples in the window); "per extra stream" is (RSS − RSS of the idle server) / N. A stream
counts as live if its publisher is still running and its playlist changed during the window. Values are
medians over {settings.runs} run(s). nginx-rtmp: `worker_processes 1`, `live on; hls on; hls_fragment 2s;
hls_playlist_length 12s`, playlists served by nginx's http module. Streamit: `streamit serve` with default
settings (2 s segments, 6 in the playlist), which package every stream twice: MPEG-TS HLS and LL-HLS (fMP4
parts and segments, also written to disk). streamit-ts: the same with `STREAMIT_HLS_LOW_LATENCY=false`, so
MPEG-TS HLS only, as nginx-rtmp's `hls on`.

{results_tables(results, settings, references)}

### Every run

{raw_table(results)}
"""


# --------------------------------------------------------------------------------------------------------
# HTTP delivery: the origin beside nginx on the same files (wrk runner and files from bench/edge.py)

HTTP_SECTION = "bench/ingest.py--http"
HTTP_THREADS = 2
HTTP_CONNECTIONS = 50


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResult:
    """One wrk run of one server on one target."""

    run: int
    target: str  # "playlist" or "segment"
    server: str
    requests_per_s: float
    mb_per_s: float
    p99_ms: float
    errors: int
    server_cpu_s: float
    duration_s: float


def measure_http(settings: Settings, duration: float) -> list[HttpResult]:
    """wrk against a live playlist and a 1 MiB segment: ``streamit serve`` (from its data directory) and
    nginx (``sendfile on``, one worker) serving byte-identical files, alternating which goes first."""
    # Imported here: bench/edge.py imports this module.
    from edge import HIT_TARGETS, WRK_SCRIPT, run_wrk, start_nginx, write_hls_files

    results: list[HttpResult] = []
    with run_directory(settings, "http") as run_dir, Children() as children:
        script = run_dir / "summary.lua"
        script.write_text(WRK_SCRIPT)
        nginx_dir = run_dir / "nginx"
        objects = write_hls_files(nginx_dir / "www")
        nginx_port, nginx_pid = start_nginx(children, nginx_dir)
        streamit = StreamitServer(run_dir / "streamit", settings.streamit_executable)
        streamit_pid = streamit.start(children, 0)
        # Written after start-up, so that the stale-playlist sweep leaves the live playlist as it is.
        if write_hls_files(streamit.data_dir) != objects:
            raise BenchError("the two servers were given different files")
        bases = {
            "nginx": (f"http://127.0.0.1:{nginx_port}", nginx_pid),
            "streamit": (f"http://127.0.0.1:{streamit.http_port}", streamit_pid),
        }
        for name, (base, _) in bases.items():
            for _, path in HIT_TARGETS:
                response = httpx.get(base + path, timeout=5.0, trust_env=False)
                if response.status_code != 200 or response.content != objects[path]:
                    raise BenchError(f"{name} does not serve {path} as written ({response.status_code})")
        for run in range(1, settings.runs + 1):
            for target, path in HIT_TARGETS:
                order = ("nginx", "streamit") if run % 2 else ("streamit", "nginx")
                for name in order:
                    base, pid = bases[name]
                    run_wrk(
                        script, base + path, threads=HTTP_THREADS, connections=HTTP_CONNECTIONS, duration=1
                    )
                    cpu_before = tree_cpu_seconds(pid)
                    wrk = run_wrk(
                        script,
                        base + path,
                        threads=HTTP_THREADS,
                        connections=HTTP_CONNECTIONS,
                        duration=duration,
                    )
                    result = HttpResult(
                        run, target, name, wrk.requests_per_s, wrk.mb_per_s, wrk.p99_ms, wrk.errors,
                        tree_cpu_seconds(pid) - cpu_before, wrk.duration_s,
                    )  # fmt: skip
                    results.append(result)
                    print(
                        f"  {target:8} {name:8} {result.requests_per_s:9.0f} req/s "
                        f"{result.mb_per_s:8.1f} MB/s  p99 {result.p99_ms:6.2f} ms  server cpu "
                        f"{100 * result.server_cpu_s / result.duration_s:5.1f} %  errors {result.errors}",
                        flush=True,
                    )
    return results


def http_section(results: Sequence[HttpResult], settings: Settings, duration: float, command: str) -> str:
    """The marked section of docs/benchmarks.md with the HTTP delivery results."""
    rows = []
    medians: dict[tuple[str, str], tuple[float, float]] = {}
    for target in ("playlist", "segment"):
        for name in ("nginx", "streamit"):
            mine = [r for r in results if r.target == target and r.server == name]
            if not mine:
                continue
            rps = statistics.median(r.requests_per_s for r in mine)
            mbs = statistics.median(r.mb_per_s for r in mine)
            medians[(target, name)] = (rps, mbs)
            rows.append(
                [
                    target, name, f"{rps:,.0f}", f"{mbs:,.1f}",
                    f"{statistics.median(r.p99_ms for r in mine):.2f}",
                    f"{statistics.median(100 * r.server_cpu_s / r.duration_s for r in mine):.0f}",
                    str(sum(r.errors for r in mine)),
                ]
            )  # fmt: skip
    ratios = []
    for target in ("playlist", "segment"):
        if (target, "nginx") in medians and (target, "streamit") in medians:
            st, ng = medians[(target, "streamit")], medians[(target, "nginx")]
            ratios.append([target, ratio(st[0], ng[0]), ratio(st[1], ng[1])])
    facts = "\n".join(f"- {k}: {v}" for k, v in machine_facts())
    return f"""<!-- BEGIN {HTTP_SECTION} -->
## Origin HTTP delivery beside nginx

Command: `{command}`

{facts}

`wrk -t{HTTP_THREADS} -c{HTTP_CONNECTIONS} -d{duration:g}s` (after a 1 s warm-up run) on a live playlist and
a 1 MiB segment (bench/edge.py's files), served by nginx (`sendfile on`, one worker) and by `streamit serve`
from its data directory (a stream this process does not package: every request reads the file), alternating
which server goes first; medians of {settings.runs} run(s). wrk runs on the same 2 cores as the server.

{markdown_table(["target", "server", "requests/s", "MB/s", "p99 ms", "server CPU %", "errors"], rows)}

Ratio streamit / nginx (above 1.00× means Streamit serves more):

{markdown_table(["target", "requests/s", "MB/s"], ratios)}
<!-- END {HTTP_SECTION} -->"""


def replace_marked_section(previous: str, section: str) -> str:
    """``previous`` with its marked section of the same name replaced by ``section`` (or it appended)."""
    name = section.split(" ", 3)[2]
    for match in MARKED_SECTION.finditer(previous):
        if match.group("name") == name:
            return previous[: match.start()] + section + previous[match.end() :]
    return previous.rstrip("\n") + "\n\n" + section + "\n"


# --------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str]) -> tuple[Settings, Path | None, bool]:
    """Settings, the report file (None: none) and whether this is a smoke run; see :func:`parse_http`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", default=None, help="publisher counts, comma separated (default 1,10,30)")
    parser.add_argument(
        "--full", action="store_true", help=f"N = {','.join(map(str, FULL_COUNTS))} (the issue's whole range)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per configuration (default 3)")
    parser.add_argument("--duration", type=float, default=None, help="measurement window, s (default 20)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up after publishing, s (default 5)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"servers to compare (default {','.join(SERVERS)}; streamit-ts is Streamit without LL-HLS)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="markdown report (default docs/benchmarks.md)"
    )
    parser.add_argument("--first-segment-timeout", type=float, default=30.0, help="s to wait for a segment")
    parser.add_argument(
        "--streamit",
        type=Path,
        default=Path(sys.executable).with_name("streamit"),
        help="the streamit executable (default: next to this python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the per-run directories in bench/.work/")
    parser.add_argument(
        "--http",
        action="store_true",
        help="instead of ingest: wrk on a playlist and a 1 MiB segment, streamit vs nginx",
    )
    parser.add_argument("--http-duration", type=float, default=10.0, help="s per wrk run (default 10)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="quick check: N=1, one 5 s run, no report file unless --output; fails if a stream is not live",
    )
    args = parser.parse_args(argv)
    smoke = bool(args.smoke)
    default_counts = "1" if smoke else ",".join(map(str, FULL_COUNTS)) if args.full else "1,10,30"
    counts = tuple(int(x) for x in (args.n or default_counts).split(","))
    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
    if not counts or min(counts) < 1:
        parser.error("--n needs positive counts")
    settings = Settings(
        counts=counts,
        runs=args.runs or (1 if smoke else 3),
        duration=args.duration or (5.0 if smoke else 20.0),
        warmup=args.warmup if args.warmup is not None else (3.0 if smoke else 5.0),
        servers=servers,
        first_segment_timeout=args.first_segment_timeout,
        streamit_executable=args.streamit,
        keep=args.keep,
    )
    output = args.output if args.output is not None or smoke else REPO_DIR / "docs" / "benchmarks.md"
    HTTP_MODE.update(enabled=bool(args.http), duration=float(args.http_duration))
    JSON_OUTPUT["path"] = args.json
    return settings, output, smoke


JSON_OUTPUT: dict[str, Path | None] = {"path": None}
"""Where ``--json`` asked every number to be written (set by :func:`parse_args`)."""


def ingest_json(
    results: Sequence[CellResult], settings: Settings, references: Sequence[float | None], clip: ClipFacts
) -> dict[str, Any]:
    """Every number of an ingest run, for scripts (bench/suite.py) and the harness's own test."""
    summaries = [summarize(results, server, n) for n in settings.counts for server in settings.servers]
    return {
        "counts": list(settings.counts),
        "runs": settings.runs,
        "duration_s": settings.duration,
        "summaries": [dataclasses.asdict(s) for s in summaries],
        "largest_real_time": {server: largest_real_time(summaries, server) for server in settings.servers},
        "cells": [dataclasses.asdict(r) for r in results],
        "ffmpeg_hls_first_segment_s": median_or_none(references),
        "clip": dataclasses.asdict(clip),
    }


def http_json(results: Sequence[HttpResult]) -> dict[str, Any]:
    """Every number of an ``--http`` run, with the medians per target and server."""
    medians: dict[str, dict[str, dict[str, float | None]]] = {}
    for target, server in sorted({(r.target, r.server) for r in results}):
        runs = [r for r in results if (r.target, r.server) == (target, server)]
        medians.setdefault(target, {})[server] = {
            "requests_per_s": median_or_none([r.requests_per_s for r in runs]),
            "mb_per_s": median_or_none([r.mb_per_s for r in runs]),
        }
    return {"results": [dataclasses.asdict(r) for r in results], "medians": medians}


HTTP_MODE: dict[str, float | bool] = {"enabled": False, "duration": 10.0}
"""What ``--http`` and ``--http-duration`` asked for (set by :func:`parse_args`)."""


def run_http(settings: Settings, output: Path | None, command: str) -> int:
    """``--http``: measure HTTP delivery and write its section of the report."""
    duration = float(HTTP_MODE["duration"])
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH", file=sys.stderr)
            return 1
    try:
        results = measure_http(settings, duration)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    section = http_section(results, settings, duration, command)
    print(section)
    json_path = JSON_OUTPUT["path"]
    if json_path is not None:
        json_path.write_text(json.dumps(http_json(results), indent=2))
    if output is not None:
        previous = output.read_text() if output.exists() else ""
        output.write_text(replace_marked_section(previous, section))
        print(f"\nwritten to {output}")
    return 0


def print_cell(result: CellResult) -> None:
    if result.window_s > 0:
        print(
            f"  {result.server:8} N={result.n:<3} live {result.streams_live}/{result.n}  "
            f"cpu {result.cpu_ms_per_stream_s:6.2f} ms/stream-s ({result.cpu_percent:5.1f} %)  "
            f"rss {result.rss_bytes / MIB:7.1f} MiB (+{result.rss_per_stream_bytes / MIB:.2f}/stream)  "
            f"publishers {result.publisher_ms_per_stream_s:5.2f} ms/stream-s  "
            f"first segment {fmt(result.first_segment_median, 2)} s "
            f"(slowest {fmt(result.first_segment_max, 2)})" + (f"  [{result.error}]" if result.error else ""),
            flush=True,
        )
    else:
        print(f"  {result.server:8} N={result.n:<3} FAILED: {result.error}", flush=True)


@contextlib.contextmanager
def run_directory(settings: Settings, label: str) -> Iterator[Path]:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=WORK_DIR))
    try:
        yield path
    finally:
        if not settings.keep:
            shutil.rmtree(path, ignore_errors=True)


def run_benchmark(settings: Settings) -> tuple[list[CellResult], list[float | None], ClipFacts]:
    for tool in ("ffmpeg", "ffprobe", *(["nginx"] if "nginx" in settings.servers else [])):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found on PATH")
    with Children() as children:
        clip = ensure_clip(children)
    facts = probe_clip(clip)
    print(f"clip: {facts.description}", flush=True)
    results: list[CellResult] = []
    references: list[float | None] = []
    for run in range(1, settings.runs + 1):
        print(f"run {run}/{settings.runs}", flush=True)
        with run_directory(settings, f"run{run}-reference") as run_dir, Children() as children:
            reference = measure_reference(children, clip, run_dir, settings.first_segment_timeout)
        references.append(reference)
        print(f"  ffmpeg HLS reference: first segment after {fmt(reference, 2)} s", flush=True)
        for n in settings.counts:
            for name in settings.servers:
                with run_directory(settings, f"run{run}-{name}-n{n}") as run_dir:
                    try:
                        result = measure_cell(
                            make_server(name, run_dir, settings), n, run, clip, run_dir, settings
                        )
                    except BenchError as exc:
                        result = CellResult(server=name, n=n, run=run, error=str(exc))
                results.append(result)
                print_cell(result)
    return results, references, facts


def main(argv: Sequence[str] | None = None) -> int:
    # Installed explicitly: a shell starting us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    settings, output, smoke = parse_args(raw_argv)
    command = shlex.join([".venv/bin/python", "bench/ingest.py", *raw_argv])
    # bench/edge.py (used by --http) imports "ingest": let it find this module, not a second copy of it.
    sys.modules.setdefault("ingest", sys.modules[__name__])
    if HTTP_MODE["enabled"]:
        try:
            return run_http(settings, output, command)
        except KeyboardInterrupt:
            return 128 + signal.SIGINT
        except Interrupted as exc:
            return 128 + exc.signum
    try:
        results, references, clip = run_benchmark(settings)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as exc:
        print(f"stopped by signal {exc.signum}; everything started was stopped", file=sys.stderr)
        return 128 + exc.signum
    print()
    print(results_tables(results, settings, references))
    json_path = JSON_OUTPUT["path"]
    if json_path is not None:
        json_path.write_text(json.dumps(ingest_json(results, settings, references, clip), indent=2))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        previous = output.read_text() if output.exists() else ""
        report = render_report(results, settings, references, clip, command)
        output.write_text(with_marked_sections(report, previous))
        print(f"\nwritten to {output}")
    failed = [r for r in results if not r.valid]
    if failed:
        print(f"\n{len(failed)} configuration(s) failed or had streams that were not live", file=sys.stderr)
        return 1
    if smoke:
        print("smoke check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
