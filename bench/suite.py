"""The whole benchmark suite in one command, and how it stands against issue 6's targets.

Runs, one after the other (never two at once: each measures CPU on a 2-core machine):

1. ``bench/ingest.py`` — CPU and RSS per stream, Streamit beside nginx-rtmp (``--full``: N up to 100);
2. ``bench/ingest.py --http`` — the origin's playlist and segment delivery beside nginx (wrk);
3. ``bench/edge.py`` — edge cache hits beside nginx, and origin fetches under viewer fan-out (needs Redis);
4. ``bench/latency.py`` — LL-HLS glass-to-glass latency in Chromium with hls.js (needs Redis, Chromium),

each writing its own section of ``docs/benchmarks.md``; then a "Targets" section comparing the measured
ratios with the issue's targets, printed and written to the same file::

    .venv/bin/python bench/suite.py                  # N = 1,10,30, 3 runs each (about 25 minutes)
    .venv/bin/python bench/suite.py --full           # N = 1,10,30,60,100 (about an hour)
    .venv/bin/python bench/suite.py --quick --output /tmp/b.md   # does it run (about 3 minutes)

This is a benchmark, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from ingest import replace_marked_section  # noqa: E402

SECTION_NAME = "bench/suite.py"
STEPS = ("ingest", "http", "edge", "latency")


@dataclass(frozen=True, slots=True)
class Step:
    """One script of the suite: its arguments and the JSON file it leaves."""

    name: str
    argv: tuple[str, ...]
    json_path: Path


def plan(args: argparse.Namespace, work: Path) -> list[Step]:
    """The commands the suite runs, in order, for the options given."""
    output = ("--output", str(args.output))
    steps: list[Step] = []
    for name in STEPS:
        if name in args.skip:
            continue
        json_path = work / f"{name}.json"
        tail = ("--json", str(json_path), *output)
        if name == "ingest":
            counts = ("--n", "1", "--runs", "1", "--duration", "5", "--warmup", "3") if args.quick else ()
            full = ("--full",) if args.full and not args.quick and not args.n else ()
            if args.n and not args.quick:
                counts = ("--n", args.n)
            runs = ("--runs", str(args.runs)) if args.runs and not args.quick else ()
            steps.append(Step(name, ("bench/ingest.py", *full, *counts, *runs, *tail), json_path))
        elif name == "http":
            quick = ("--runs", "1", "--http-duration", "2") if args.quick else ()
            runs = ("--runs", str(args.runs)) if args.runs and not args.quick else ()
            steps.append(Step(name, ("bench/ingest.py", "--http", *quick, *runs, *tail), json_path))
        elif name == "edge":
            quick = ("--quick",) if args.quick else ()
            runs = ("--runs", str(args.runs)) if args.runs and not args.quick else ()
            steps.append(Step(name, ("bench/edge.py", *quick, *runs, *tail), json_path))
        else:
            quick = ("--quick",) if args.quick else ()
            steps.append(Step(name, ("bench/latency.py", *quick, *tail), json_path))
    return steps


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def _verdict(value: float | None, target: float, *, at_most: bool) -> str:
    if value is None:
        return "not measured"
    met = value <= target if at_most else value >= target
    return "met" if met else "not met"


def target_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(target, measured, nginx / reference, verdict) rows from the steps' JSON results."""
    rows: list[tuple[str, str, str, str]] = []
    ingest = results.get("ingest")
    if ingest is not None:
        summaries = {(s["server"], s["n"]): s for s in ingest["summaries"]}
        for server, what in (
            ("streamit", "TS + LL-HLS, Streamit's default"),
            ("streamit-ts", "TS only, like for like with nginx-rtmp's `hls on`"),
        ):
            for n in (10, 30):
                ours, theirs = summaries.get((server, n)), summaries.get(("nginx", n))
                if ours is None or theirs is None:
                    continue
                ratio = _ratio(ours["cpu_ms_per_stream_s"], theirs["cpu_ms_per_stream_s"])
                rows.append(
                    (
                        f"CPU per stream at N = {n} ≤ 1.0× nginx-rtmp (goal 0.5×); {what}",
                        f"{_fmt(ours['cpu_ms_per_stream_s'])} ms/stream-s = {_fmt(ratio)}×",
                        f"{_fmt(theirs['cpu_ms_per_stream_s'])} ms/stream-s",
                        _verdict(ratio, 1.0, at_most=True),
                    )
                )
        streamit = [s for s in ingest["summaries"] if s["server"] == "streamit"]
        for s in sorted(streamit, key=lambda s: s["n"]):
            if s["n"] == 1:
                continue
            rows.append(
                (
                    f"RSS per additional stream at N = {s['n']} ≤ 2 MB",
                    f"{_fmt(s['rss_per_stream_mib'])} MiB",
                    _fmt(summaries.get(("nginx", s["n"]), {}).get("rss_per_stream_mib"), 2, " MiB"),
                    _verdict(
                        None if s["rss_per_stream_mib"] is None else s["rss_per_stream_mib"] * 1.048576,
                        2.0,
                        at_most=True,
                    ),
                )
            )
        largest = ingest["largest_real_time"]
        counts = ingest["counts"]
        ours_largest = largest.get("streamit")
        rows.append(
            (
                "100 streams ingested and packaged in real time",
                f"largest N in real time: {ours_largest if ours_largest is not None else 'none'} "
                f"(of {', '.join(map(str, counts))})",
                f"nginx: {largest.get('nginx')}",
                "not measured" if 100 not in counts else ("met" if ours_largest == 100 else "not met"),
            )
        )
        keyframes = ingest["clip"]["keyframe_times"]
        first_keyframe = keyframes[0] if keyframes else 0.0
        segment = (keyframes[1] - keyframes[0]) if len(keyframes) > 1 else 2.0
        one = summaries.get(("streamit", 1))
        if one is not None and one["first_segment_median"] is not None:
            after = one["first_segment_median"] - first_keyframe
            rows.append(
                (
                    f"First playable segment ≤ {segment:.1f} s + 0.3 s after the first keyframe (N = 1)",
                    f"{after:.2f} s (from the publisher's start, so ffmpeg's start-up included)",
                    f"ffmpeg's own HLS muxer: {_fmt(ingest['ffmpeg_hls_first_segment_s'])} s",
                    _verdict(after, segment + 0.3, at_most=True),
                )
            )
    http = results.get("http")
    if http is not None:
        for target, field, goal in (("playlist", "requests_per_s", 0.7), ("segment", "mb_per_s", 0.8)):
            medians = http["medians"].get(target, {})
            ours = medians.get("streamit", {}).get(field)
            theirs = medians.get("nginx", {}).get(field)
            ratio = _ratio(ours, theirs)
            unit = "req/s" if field == "requests_per_s" else "MB/s"
            rows.append(
                (
                    f"Origin {target} {unit} ≥ {goal}× nginx",
                    f"{_fmt(ours, 0)} {unit} = {_fmt(ratio)}×",
                    f"{_fmt(theirs, 0)} {unit}",
                    _verdict(ratio, goal, at_most=False),
                )
            )
    edge = results.get("edge")
    if edge is not None:
        hits = {(s["target"], s["server"]): s for s in edge.get("hit_summaries", [])}
        for target in sorted({t for t, _ in hits}):
            ours, theirs = hits.get((target, "edge")), hits.get((target, "nginx"))
            if ours is None or theirs is None:
                continue
            ratio = _ratio(ours.get("requests_per_s"), theirs.get("requests_per_s"))
            rows.append(
                (
                    f"Edge {target} cache hits (req/s beside nginx)",
                    f"{_fmt(ours.get('requests_per_s'), 0)} req/s = {_fmt(ratio)}×",
                    f"{_fmt(theirs.get('requests_per_s'), 0)} req/s",
                    "measured",
                )
            )
        fanout = edge.get("fanout")
        if fanout is not None:
            rows.append(
                (
                    "Origin load does not grow with viewers (fetches per segment per edge)",
                    _fmt(fanout.get("fetches_per_segment_per_edge")),
                    "1.00 = one fetch per segment per edge (target ≤ 1.05)",
                    _verdict(fanout.get("fetches_per_segment_per_edge"), 1.05, at_most=True),
                )
            )
    latency = results.get("latency")
    if latency is not None:
        for path, numbers in latency.items():
            rows.append(
                (
                    f"LL-HLS latency through the {path} (hls.js in Chromium, median)",
                    f"{_fmt(numbers.get('hls_latency_median'))} s",
                    "—",
                    "measured",
                )
            )
    return rows


def section(rows: Sequence[tuple[str, str, str, str]], command: str) -> str:
    """The suite's marked section of docs/benchmarks.md."""
    lines = [
        f"<!-- BEGIN {SECTION_NAME} -->",
        "",
        "## Targets of issue 6",
        "",
        "Generated by `bench/suite.py` from the sections above (same run); do not edit by hand.",
        "",
        "```",
        command,
        "```",
        "",
        "| target | measured | nginx / reference | verdict |",
        "|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        f"<!-- END {SECTION_NAME} -->",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="ingest at N = 1,10,30,60,100")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of every step (numbers meaningless)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per configuration (default: each script's)"
    )
    parser.add_argument(
        "--n", default=None, help="publisher counts of the ingest step, comma separated (instead of --full)"
    )
    parser.add_argument("--skip", default="", help=f"steps to leave out, comma separated ({','.join(STEPS)})")
    parser.add_argument(
        "--output", type=Path, default=REPO_DIR / "docs" / "benchmarks.md", help="markdown report"
    )
    args = parser.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(STEPS)
    if unknown:
        parser.error(f"unknown step(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(raw_argv)
    command = " ".join([".venv/bin/python", "bench/suite.py", *raw_argv])
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="streamit-suite-") as work_dir:
        for step in plan(args, Path(work_dir)):
            print(f"== {step.name}: {' '.join(step.argv)}", flush=True)
            try:
                done = subprocess.run([sys.executable, *step.argv], cwd=REPO_DIR, check=False)
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                return 130
            if done.returncode != 0:
                failed.append(step.name)
            if step.json_path.exists():
                results[step.name] = json.loads(step.json_path.read_text())
    rows = target_rows(results)
    text = section(rows, command)
    print()
    print(text)
    previous = args.output.read_text() if args.output.exists() else ""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(replace_marked_section(previous, text))
    print(f"\nwritten to {args.output}")
    if failed:
        print(f"step(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
