"""Tests of bench/suite.py (run with ``.venv/bin/pytest bench``): the commands it plans and the targets table
it derives from the steps' JSON — no benchmark is run here (bench/test_bench_ingest.py, test_edge.py and
test_latency.py smoke-run the steps themselves)."""

from __future__ import annotations

from pathlib import Path

from suite import SECTION_NAME, parse_args, plan, section, target_rows


def test_plan_runs_every_step_in_order_with_json_and_one_report(tmp_path: Path) -> None:
    args = parse_args(["--full", "--runs", "2", "--output", str(tmp_path / "b.md")])
    steps = plan(args, tmp_path)
    assert [s.name for s in steps] == ["ingest", "http", "edge", "latency"]
    ingest, http, edge, latency = steps
    assert ingest.argv[:2] == ("bench/ingest.py", "--full") and "--runs" in ingest.argv
    assert http.argv[:2] == ("bench/ingest.py", "--http")
    assert edge.argv[0] == "bench/edge.py" and latency.argv[0] == "bench/latency.py"
    for step in steps:
        assert step.argv[step.argv.index("--json") + 1] == str(step.json_path)
        assert step.argv[step.argv.index("--output") + 1] == str(tmp_path / "b.md")


def test_publisher_counts_go_to_the_ingest_step(tmp_path: Path) -> None:
    ingest = plan(parse_args(["--n", "1,10,30,100", "--runs", "3"]), tmp_path)[0]
    assert ingest.argv[ingest.argv.index("--n") + 1] == "1,10,30,100" and "--full" not in ingest.argv


def test_quick_plan_and_skip(tmp_path: Path) -> None:
    steps = plan(parse_args(["--quick", "--skip", "edge,latency"]), tmp_path)
    assert [s.name for s in steps] == ["ingest", "http"]
    assert "--full" not in steps[0].argv and steps[0].argv[steps[0].argv.index("--n") + 1] == "1"


def summary(server: str, n: int, cpu: float, rss: float, first: float | None = None) -> dict[str, object]:
    return {
        "server": server,
        "n": n,
        "cpu_ms_per_stream_s": cpu,
        "rss_per_stream_mib": rss,
        "first_segment_median": first,
    }


def test_target_rows_compare_with_nginx_and_the_targets() -> None:
    results = {
        "ingest": {
            "counts": [1, 10, 30],
            "summaries": [
                summary("nginx", 1, 8.0, 2.0, 2.2),
                summary("streamit", 1, 12.0, 3.0, 2.3),
                summary("nginx", 10, 6.0, 0.3),
                summary("streamit", 10, 5.4, 1.5),
                summary("nginx", 30, 5.0, 0.1),
                summary("streamit", 30, 6.0, 2.5),
                summary("streamit-ts", 10, 4.2, 1.0),
            ],
            "largest_real_time": {"nginx": 30, "streamit": 30},
            "ffmpeg_hls_first_segment_s": 2.06,
            "clip": {"description": "clip", "keyframe_times": [0.07, 2.07]},
        },
        "http": {
            "medians": {
                "playlist": {"nginx": {"requests_per_s": 30000.0}, "streamit": {"requests_per_s": 15000.0}},
                "segment": {"nginx": {"mb_per_s": 2000.0}, "streamit": {"mb_per_s": 1800.0}},
            }
        },
    }
    rows = {row[0]: row for row in target_rows(results)}
    default = "TS + LL-HLS, Streamit's default"
    cpu10 = rows[f"CPU per stream at N = 10 ≤ 1.0× nginx-rtmp (goal 0.5×); {default}"]
    assert "0.90×" in cpu10[1] and cpu10[3] == "met"
    assert rows[f"CPU per stream at N = 30 ≤ 1.0× nginx-rtmp (goal 0.5×); {default}"][3] == "not met"
    like_for_like = "TS only, like for like with nginx-rtmp's `hls on`"
    ts10 = rows[f"CPU per stream at N = 10 ≤ 1.0× nginx-rtmp (goal 0.5×); {like_for_like}"]
    assert "0.70×" in ts10[1] and ts10[3] == "met"
    assert f"CPU per stream at N = 30 ≤ 1.0× nginx-rtmp (goal 0.5×); {like_for_like}" not in rows
    assert rows["RSS per additional stream at N = 10 ≤ 2 MB"][3] == "met"
    assert rows["RSS per additional stream at N = 30 ≤ 2 MB"][3] == "not met"
    assert rows["100 streams ingested and packaged in real time"][3] == "not measured"
    first = next(row for name, row in rows.items() if name.startswith("First playable segment"))
    assert first[1].startswith("2.23 s") and first[3] == "met"
    assert rows["Origin playlist req/s ≥ 0.7× nginx"][3] == "not met"
    assert rows["Origin segment MB/s ≥ 0.8× nginx"][3] == "met"


def test_section_is_marked_for_replacement() -> None:
    text = section([("a", "b", "c", "met")], "cmd")
    assert text.startswith(f"<!-- BEGIN {SECTION_NAME} -->") and text.endswith(f"<!-- END {SECTION_NAME} -->")
    assert "| a | b | c | met |" in text
