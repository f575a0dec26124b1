"""Tests of bench/latency.py (run with ``.venv/bin/pytest bench``): its sample parsing, statistics and report
section, and a ``--quick`` run of the whole harness (real origin, edge, ffmpeg, Chromium, hls.js, Redis) that
must produce sane numbers — no latency thresholds."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from latency import HLS_JS, SECTION_NAME, PathResult, Sample, parse_samples, section, write_section

BENCH_DIR = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message + "; under CI=true it must be present")
    pytest.skip(message)


def test_samples_hls_js_has_not_computed_are_left_out() -> None:
    raw = [
        {"hls_latency": 1.5, "pdt_latency": 1.25, "time": 3.0},
        {"hls_latency": None, "pdt_latency": 1.0, "time": 3.25},
        {"hls_latency": float("nan"), "pdt_latency": 1.0, "time": 3.5},
        {"hls_latency": 1.0, "pdt_latency": 1.75, "time": 6.0},
    ]
    assert parse_samples(raw) == (Sample(1.5, 1.25, 3.0), Sample(1.0, 1.75, 6.0))


def test_medians_percentiles_and_the_section() -> None:
    samples = tuple(Sample(1.0 + i / 10, 2.0 + i / 10, float(i)) for i in range(10))
    result = PathResult("edge", samples, (), 2)
    assert result.median("hls_latency") == pytest.approx(1.45)
    assert result.p90("pdt_latency") == pytest.approx(2.9)
    assert result.played_s == 9.0
    empty = PathResult("origin", (), ("manifestLoadError",), 1)
    assert empty.median("hls_latency") is None and empty.played_s == 0.0
    text = section([empty, result], "cmd", datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    assert text.startswith(f"<!-- BEGIN {SECTION_NAME} -->") and text.endswith(f"<!-- END {SECTION_NAME} -->")
    assert "edge: 2.45 s (misses the 2 s target)" in text
    assert "| origin | 0 | 0.0 | – |" in text


def test_the_section_replaces_only_its_own(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    other = "<!-- BEGIN bench/edge.py -->\nedge\n<!-- END bench/edge.py -->"
    report.write_text(f"# Benchmarks\n\n{other}\n")
    write_section(report, f"<!-- BEGIN {SECTION_NAME} -->\none\n<!-- END {SECTION_NAME} -->")
    write_section(report, f"<!-- BEGIN {SECTION_NAME} -->\ntwo\n<!-- END {SECTION_NAME} -->")
    text = report.read_text()
    assert other in text and "two" in text and "one" not in text


def test_quick_run_produces_sane_numbers(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        _missing("ffmpeg is needed")
    chromium = os.environ.get("STREAMIT_TEST_CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        _missing(f"Chromium is needed at {chromium}")
    if not HLS_JS.exists():
        _missing("hls.js is needed in node_modules (npm ci)")
    redis_url = os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _missing(f"Redis at {redis_url} is needed: {exc}")
    report, numbers = tmp_path / "benchmarks.md", tmp_path / "latency.json"
    argv = [sys.executable, str(BENCH_DIR / "latency.py"), "--quick", "--redis-url", redis_url]
    argv += ["--output", str(report), "--json", str(numbers), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, cwd=BENCH_DIR)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(numbers.read_text())
    assert set(results) == {"origin", "edge"}
    for path, numbers_of in results.items():
        assert numbers_of["fatal_errors"] == [], (path, numbers_of)
        assert numbers_of["samples"] > 0 and numbers_of["played_s"] > 0, (path, numbers_of)
        # Latency is positive and below the playlist window (6 segments of 2 s): the player is live.
        for key in ("hls_latency_median", "pdt_latency_median"):
            assert 0 < numbers_of[key] < 12, (path, key, numbers_of)
    text = report.read_text()
    assert text.count(f"<!-- BEGIN {SECTION_NAME} -->") == 1 and "## LL-HLS latency" in text
