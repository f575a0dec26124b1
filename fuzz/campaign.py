"""Run every fuzz target in turn under atheris, one process at a time, and tabulate what libFuzzer reports.

    .venv/bin/python -m fuzz.campaign --seconds 45 --deep-seconds 90 [--targets chunk,amf0] [--json out.json]

"Deep" targets (the stateful ones: RTMP connection and chunk layer, AMF, FLV files) get ``--deep-seconds``.
For each target the table has the inputs executed, executions per second, coverage (libFuzzer's ``cov``
edges and ``ft`` features), corpus growth and the crash artifacts written (``fuzz/.artifacts/<target>/``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fuzz.run import ARTIFACTS_DIR, FUZZ_DIR

DEEP_TARGETS = ("connection", "chunk", "amf0", "amf3", "flv_file")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_PROGRESS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)", re.M)


@dataclass
class TargetRun:
    """What one libFuzzer run of one target reported."""

    target: str
    seconds: float
    executions: int
    executions_per_second: int
    coverage: int
    features: int
    corpus: int
    new_units: int
    peak_rss_mb: int
    exit_code: int
    crashes: list[str]


def parse_output(target: str, seconds: float, exit_code: int, output: str, crashes: list[str]) -> TargetRun:
    """Pull libFuzzer's final statistics and last progress line out of its output."""
    stats = {key: int(value) for key, value in _STAT.findall(output)}
    progress = _PROGRESS.findall(output)
    _, cov, ft, corp = progress[-1] if progress else ("0", "0", "0", "0")
    return TargetRun(
        target=target,
        seconds=round(seconds, 1),
        executions=stats.get("number_of_executed_units", 0),
        executions_per_second=stats.get("average_exec_per_sec", 0),
        coverage=int(cov),
        features=int(ft),
        corpus=int(corp),
        new_units=stats.get("new_units_added", 0),
        peak_rss_mb=stats.get("peak_rss_mb", 0),
        exit_code=exit_code,
        crashes=crashes,
    )


def run_one(target: str, seconds: int, log_dir: Path) -> TargetRun:
    """Fuzz ``target`` for ``seconds`` in a child process; its output is kept in ``log_dir``."""
    artifacts = ARTIFACTS_DIR / target
    before = set(artifacts.glob("*")) if artifacts.exists() else set()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fuzz.run", target, f"-max_total_time={seconds}"],
        cwd=FUZZ_DIR.parent,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    (log_dir / f"{target}.log").write_text(output)
    crashes = sorted(str(p.relative_to(FUZZ_DIR.parent)) for p in set(artifacts.glob("*")) - before)
    return parse_output(target, elapsed, done.returncode, output, crashes)


def markdown(runs: list[TargetRun]) -> str:
    """The campaign as a markdown table (docs/fuzzing.md)."""
    lines = [
        "| target | seconds | inputs executed | exec/s | cov | ft | corpus | crashes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        crashes = ", ".join(Path(c).name for c in run.crashes) or ("0" if run.exit_code == 0 else "exit")
        lines.append(
            f"| {run.target} | {run.seconds:.0f} | {run.executions:,} | {run.executions_per_second:,} | "
            f"{run.coverage} | {run.features} | {run.corpus} | {crashes} |"
        )
    total = sum(run.executions for run in runs)
    lines.append(f"| **all** | {sum(run.seconds for run in runs):.0f} | {total:,} | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=45)
    parser.add_argument("--deep-seconds", type=int, default=90)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log-dir", type=Path, default=FUZZ_DIR / ".artifacts" / "logs")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for target in args.targets.split(","):
        seconds = args.deep_seconds if target in DEEP_TARGETS else args.seconds
        run = run_one(target, seconds, args.log_dir)
        print(json.dumps(asdict(run)), flush=True)
        runs.append(run)
    if args.json:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=2))
    print(markdown(runs))
    return 1 if any(run.exit_code for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
