"""Tests of the benchmark harness's pure parts: run with ``.venv/bin/pytest bench``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest import (
    CellResult,
    Children,
    ClipFacts,
    HttpResult,
    PlaylistWatcher,
    SegmentSeen,
    Settings,
    StreamitTsServer,
    all_proc_stats,
    http_json,
    ingest_json,
    make_server,
    parse_args,
    parse_playlist,
    parse_proc_stat,
    parse_segments,
    process_tree,
    read_proc_stat,
    render_report,
    summarize,
    timeliness,
    tree_cpu_seconds,
)

# A real /proc/<pid>/stat line (from `cat /proc/self/stat`) with the command name swapped for a hostile
# one: spaces and both parentheses inside it.
STAT_LINE = (
    "4242 (a b) (c)) S 4200 4242 4200 0 -1 4194560 103 0 0 0 17 5 3 2 20 0 1 0 123456 "
    "8556544 245 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
)


def test_parse_proc_stat_splits_after_the_last_parenthesis() -> None:
    stat = parse_proc_stat(STAT_LINE)
    assert (stat.pid, stat.ppid) == (4242, 4200)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (17, 5, 3, 2)
    assert stat.rss_pages == 245
    assert stat.own_ticks == 22
    assert stat.ticks_with_reaped_children == 27


def test_read_proc_stat_of_this_process() -> None:
    stat = read_proc_stat(os.getpid())
    assert stat is not None
    assert stat.pid == os.getpid()
    assert stat.ppid == os.getppid()
    assert stat.rss_pages > 0


def test_process_tree_collects_descendants_only() -> None:
    stats = {
        pid: parse_proc_stat(STAT_LINE.replace("4242 (", f"{pid} (", 1).replace(" S 4200 ", f" S {ppid} ", 1))
        for pid, ppid in [(10, 1), (11, 10), (12, 11), (13, 1), (14, 13)]
    }
    assert sorted(s.pid for s in process_tree(10, stats)) == [10, 11, 12]
    assert process_tree(99, stats) == []


def test_tree_cpu_seconds_counts_a_busy_child() -> None:
    with Children() as children:
        log = Path(os.devnull)
        busy = children.spawn([sys.executable, "-c", "while True: pass"], log)
        parent_only = tree_cpu_seconds(os.getpid())
        # However loaded the machine, the child gets 0.2 s of CPU eventually: wait for it, not for a time.
        deadline = time.monotonic() + 30
        while tree_cpu_seconds(busy.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        with_child = tree_cpu_seconds(os.getpid())
        child_alone = tree_cpu_seconds(busy.pid)
    assert child_alone >= 0.2
    assert with_child - parent_only >= 0.2
    assert busy.poll() is not None


def test_children_stop_kills_the_whole_process_group() -> None:
    with Children() as children:
        shell = children.spawn(["sh", "-c", "sleep 60 & echo $!; wait"], Path(os.devnull))
        time.sleep(0.3)
        group = [s.pid for s in process_tree(shell.pid, all_proc_stats())]
        assert len(group) == 2
        children.stop([shell])
    assert shell.returncode is not None
    for pid in group:
        stat = read_proc_stat(pid)
        assert stat is None or _state(pid) == "Z"


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def test_parse_playlist_nginx_style() -> None:
    text = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:2\n"
        "#EXTINF:2.000,\nbench-1-7.ts\n#EXTINF:2.000,\nbench-1-8.ts\n"
    )
    state = parse_playlist(text)
    assert state.media_sequence == 7
    assert state.segments == ("bench-1-7.ts", "bench-1-8.ts")


def test_parse_playlist_without_segments_and_with_crlf() -> None:
    assert parse_playlist("#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n").segments == ()
    assert parse_playlist("#EXTM3U\r\n#EXTINF:2.0,\r\na.ts\r\n").segments == ("a.ts",)


def test_parse_playlist_rejects_a_broken_media_sequence() -> None:
    with pytest.raises(ValueError):
        parse_playlist("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n")


def _cell(server: str, run: int, cpu_s: float, rss_mib: int, first: tuple[float | None, ...]) -> CellResult:
    return CellResult(
        server=server,
        n=2,
        run=run,
        streams_live=2,
        window_s=10.0,
        server_cpu_s=cpu_s,
        publisher_cpu_s=0.2,
        rss_idle_bytes=10 * 1024 * 1024,
        rss_bytes=rss_mib * 1024 * 1024,
        first_segments=first,
    )


def test_cell_metrics() -> None:
    cell = _cell("nginx", 1, 0.4, 14, (2.0, 3.0))
    assert cell.cpu_ms_per_stream_s == pytest.approx(20.0)
    assert cell.cpu_percent == pytest.approx(4.0)
    assert cell.publisher_ms_per_stream_s == pytest.approx(10.0)
    assert cell.rss_per_stream_bytes == 2 * 1024 * 1024
    assert cell.first_segment_median == 2.5
    assert cell.first_segment_max == 3.0
    assert _cell("nginx", 1, 0.4, 14, (2.0, None)).first_segment_max is None


def test_summarize_takes_medians_and_skips_failed_runs() -> None:
    results = [
        _cell("nginx", 1, 0.2, 12, (2.0, 2.0)),
        _cell("nginx", 2, 0.6, 20, (4.0, 4.0)),
        _cell("nginx", 3, 0.4, 14, (3.0, 3.0)),
        CellResult(server="nginx", n=2, run=4, error="did not start"),
        dataclasses.replace(_cell("nginx", 5, 0.0, 11, (None, None)), streams_live=1),
        _cell("streamit", 1, 9.0, 99, (9.0, 9.0)),
    ]
    summary = summarize(results, "nginx", 2)
    assert summary.runs == 5
    assert summary.failures == 2
    assert summary.cpu_ms_per_stream_s == pytest.approx(20.0)
    assert summary.rss_mib == pytest.approx(14.0)
    assert summary.first_segment_median == pytest.approx(3.0)
    assert summary.streams_live == "2/2/2/0/1 of 2"


def _report_settings(servers: tuple[str, ...]) -> Settings:
    """Settings of one 10 s run at N = 2 of ``servers``, for the report tests."""
    return Settings(
        counts=(2,),
        runs=1,
        duration=10.0,
        warmup=5.0,
        servers=servers,
        first_segment_timeout=30.0,
        streamit_executable=Path("streamit"),
        keep=False,
    )


def test_report_has_ratios_and_the_command() -> None:
    settings = _report_settings(("nginx", "streamit"))
    results = [_cell("nginx", 1, 0.4, 14, (2.0, 2.0)), _cell("streamit", 1, 0.2, 28, (3.0, 3.0))]
    clip = ClipFacts("h264 1280x720", (0.0, 2.0))
    report = render_report(results, settings, [2.1], clip, "bench/ingest.py --n 2")
    assert "bench/ingest.py --n 2" in report
    assert "| 2 | 0.50× | 2.00× | 4.50× | 1.50× |" in report
    assert "**2.10 s**" in report
    assert "nproc" in report
    numbers = json.loads(json.dumps(ingest_json(results, settings, [2.1], clip)))
    by_server = {s["server"]: s for s in numbers["summaries"]}
    assert by_server["streamit"]["cpu_ms_per_stream_s"] == pytest.approx(10.0)
    assert numbers["largest_real_time"] == {"nginx": None, "streamit": None}  # no lateness measured
    assert numbers["clip"]["keyframe_times"] == [0.0, 2.0] and numbers["ffmpeg_hls_first_segment_s"] == 2.1


def test_report_compares_streamit_with_ts_only_like_for_like() -> None:
    settings = _report_settings(("nginx", "streamit", "streamit-ts"))
    results = [
        _cell("nginx", 1, 0.4, 14, (2.0, 2.0)),
        _cell("streamit", 1, 0.6, 28, (3.0, 3.0)),
        _cell("streamit-ts", 1, 0.3, 28, (3.0, 3.0)),
    ]
    report = render_report(results, settings, [2.1], ClipFacts("h264 1280x720", (0.0, 2.0)), "bench")
    assert "TS only (streamit-ts)" in report and "STREAMIT_HLS_LOW_LATENCY=false" in report
    assert "| 2 | 1.50× | 0.75× | 2.00× | 4.50× | 1.50× |" in report
    assert isinstance(make_server("streamit-ts", Path("/nonexistent"), settings), StreamitTsServer)
    env = make_server("streamit-ts", Path("/nonexistent"), settings).env  # type: ignore[attr-defined]
    assert env["STREAMIT_HLS_LOW_LATENCY"] == "false"


def test_http_json_takes_medians_per_target_and_server() -> None:
    results = [
        HttpResult(run, "playlist", server, rps, rps / 1000, 1.0, 0, 1.0, 10.0)
        for run, (server, rps) in enumerate(
            [("nginx", 30000.0), ("streamit", 10000.0), ("nginx", 34000.0), ("streamit", 12000.0)]
        )
    ]
    medians = http_json(results)["medians"]["playlist"]
    assert medians["nginx"]["requests_per_s"] == pytest.approx(32000.0)
    assert medians["streamit"]["mb_per_s"] == pytest.approx(11.0)


def test_parse_args_defaults_and_smoke() -> None:
    settings, output, smoke = parse_args([])
    assert settings.counts == (1, 10, 30)
    assert (settings.runs, settings.duration, settings.warmup) == (3, 20.0, 5.0)
    assert settings.servers == ("nginx", "streamit", "streamit-ts")
    assert output is not None and output.name == "benchmarks.md"
    assert not smoke
    settings, output, smoke = parse_args(["--smoke", "--servers", "nginx"])
    assert (settings.counts, settings.runs, settings.servers) == ((1,), 1, ("nginx",))
    assert output is None and smoke


def test_parse_args_rejects_unknown_server() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--servers", "wowza"])


def test_children_close_on_exception_leaves_nothing_running() -> None:
    spawned: list[subprocess.Popen[bytes]] = []
    with pytest.raises(RuntimeError), Children() as children:
        spawned.append(children.spawn(["sleep", "60"], Path(os.devnull)))
        raise RuntimeError("boom")
    assert spawned[0].returncode is not None


PLAYLIST_WITH_PDT = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T01:00:00.500Z
#EXTINF:2.000,
seg-000007.ts
#EXTINF:1.967,
seg-000008.ts
"""


def test_parse_segments_reads_durations_and_program_date_time() -> None:
    segments = parse_segments(PLAYLIST_WITH_PDT)
    assert [(uri, duration) for uri, duration, _ in segments] == [
        ("seg-000007.ts", 2.0),
        ("seg-000008.ts", 1.967),
    ]
    first_pdt, second_pdt = segments[0][2], segments[1][2]
    assert first_pdt is not None and first_pdt.isoformat() == "2026-11-24T01:00:00.500000+00:00"
    assert second_pdt is None


def test_timeliness_anchors_on_the_first_segment_and_counts_late_ones() -> None:
    # Six 2 s segments; the fourth and later appear 0.4 s and then 1.5 s later than media time allows.
    appeared = [100.0, 102.0, 104.05, 106.4, 109.5, 111.5]
    segments = [SegmentSeen(f"s{i}.ts", 2.0, None, t) for i, t in enumerate(appeared)]
    whole = timeliness(segments, 0.0, 200.0)
    assert whole.max_lateness_s == pytest.approx(1.5)
    assert whole.late_segments == 2
    assert whole.lags_s == ()
    # Only segments inside the window count; the anchor is still the first segment ever seen.
    early = timeliness(segments, 101.0, 105.0)
    assert early.max_lateness_s == pytest.approx(0.05) and early.late_segments == 0
    assert timeliness(segments[:1], 0.0, 200.0).max_lateness_s is None


def test_timeliness_live_lag_from_program_date_time() -> None:
    pdt = dt.datetime(2026, 11, 24, 1, 0, 0, tzinfo=dt.UTC)
    segment = SegmentSeen("s.ts", 2.0, pdt, pdt.timestamp() + 2.3)
    assert timeliness([segment], 0.0, pdt.timestamp() + 10).lags_s == (pytest.approx(2.3),)


def test_playlist_watcher_sees_segments_as_files_are_renamed_into_place(tmp_path: Path) -> None:
    path = tmp_path / "index.m3u8"
    watcher = PlaylistWatcher([path, tmp_path / "missing.m3u8"])
    watcher.poll()
    assert watcher.seen == [{}, {}]
    tmp = tmp_path / ".index.tmp"
    tmp.write_text(PLAYLIST_WITH_PDT)
    os.replace(tmp, path)
    before = time.time()
    watcher.poll()
    assert set(watcher.seen[0]) == {"seg-000007.ts", "seg-000008.ts"}
    first = watcher.seen[0]["seg-000007.ts"]
    assert first.appeared >= before - 1 and first.program_date_time is not None
    # Unchanged file: nothing is re-read; a new playlist adds only the new segment.
    watcher.poll()
    tmp.write_text(PLAYLIST_WITH_PDT.replace("seg-000008.ts", "seg-000008.ts\n#EXTINF:2.0,\nseg-000009.ts"))
    os.utime(tmp, ns=(path.stat().st_mtime_ns + 1_000_000, path.stat().st_mtime_ns + 1_000_000))
    os.replace(tmp, path)
    with watcher:
        deadline = time.monotonic() + 10
        while "seg-000009.ts" not in watcher.seen[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "seg-000009.ts" in watcher.seen[0]
    assert watcher.seen[0]["seg-000007.ts"] is first


def test_http_section_replaces_only_its_own_marked_section() -> None:
    from ingest import HttpResult, http_section, replace_marked_section

    settings = parse_args(["--runs", "1"])[0]
    results = [
        HttpResult(1, "playlist", "nginx", 20000.0, 10.0, 2.0, 0, 5.0, 10.0),
        HttpResult(1, "playlist", "streamit", 5000.0, 2.5, 9.0, 0, 10.0, 10.0),
        HttpResult(1, "segment", "nginx", 1500.0, 1570.0, 60.0, 0, 4.0, 10.0),
        HttpResult(1, "segment", "streamit", 600.0, 630.0, 150.0, 0, 10.0, 10.0),
    ]
    section = http_section(results, settings, 10.0, "cmd")
    assert "| playlist | 0.25× | 0.25× |" in section and "| segment | 0.40× | 0.40× |" in section
    other = "<!-- BEGIN bench/edge.py -->\nedge\n<!-- END bench/edge.py -->"
    first = replace_marked_section(f"# Benchmarks\n\n{other}\n", section)
    assert first.startswith("# Benchmarks") and other in first and section in first
    again = replace_marked_section(first, section.replace("20,000", "21,000"))
    assert again.count("BEGIN bench/ingest.py--http") == 1 and "21,000" in again and other in again
