"""Tests of bench/edge.py (run with ``.venv/bin/pytest bench``): its parsers, arithmetic and report, its
viewer HTTP client against a real socket server, and a ``--quick`` run of the whole harness (real nginx,
wrk, Redis, ffmpeg and ``streamit`` processes) that must produce sane numbers — no timing thresholds."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from ingest import parse_playlist, with_marked_sections

from edge import (
    HIT_SEGMENT,
    SECTION_NAME,
    SEGMENT_BYTES,
    FanoutResult,
    HitResult,
    HttpConnection,
    WrkResult,
    hits_tables,
    live_playlist,
    metric_value,
    parse_args,
    parse_response_head,
    parse_wrk_output,
    percentile,
    segment_bytes,
    summarize_hits,
    target_duration_of,
    write_section,
)

BENCH_DIR = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

WRK_LINE = (
    'WRK_RESULT {"requests":20000,"bytes":10000000,"duration_us":2000000,"connect":0,"read":1,"write":0,'
    '"status":2,"timeout":3,"p50_us":1500,"p99_us":9000}'
)


def test_parse_wrk_output_reads_the_summary_line() -> None:
    result = parse_wrk_output(f"Running 2s test @ http://x\n  1 threads and 10 connections\n{WRK_LINE}\n")
    assert result.requests == 20000
    assert result.requests_per_s == pytest.approx(10000.0)
    assert result.mb_per_s == pytest.approx(5.0)
    assert (result.socket_errors, result.bad_status, result.errors) == (4, 2, 6)
    assert result.p50_ms == pytest.approx(1.5) and result.p99_ms == pytest.approx(9.0)


@pytest.mark.parametrize(
    "text",
    [
        "Running 2s test\n",
        "WRK_RESULT {not json}\n",
        WRK_LINE.replace('"duration_us":2000000', '"duration_us":0'),
    ],
)
def test_parse_wrk_output_rejects_output_without_a_summary(text: str) -> None:
    with pytest.raises(ValueError):
        parse_wrk_output(text)


def test_the_served_playlist_and_segment_are_what_the_report_says() -> None:
    text = live_playlist()
    state = parse_playlist(text)
    assert state.media_sequence == 100 and len(state.segments) == 6
    assert state.segments[-1] == HIT_SEGMENT
    assert target_duration_of(text) == 2.0
    assert "#EXT-X-ENDLIST" not in text
    segment = segment_bytes(105)
    assert len(segment) == SEGMENT_BYTES >= 1024 * 1024
    packets = [segment[i : i + 188] for i in range(0, len(segment), 188)]
    assert all(p[0] == 0x47 and p[1:3] == b"\x1f\xff" for p in packets)
    assert [p[3] & 0x0F for p in packets[:17]] == [*range(16), 0]
    assert segment_bytes(105) == segment != segment_bytes(104)


def test_target_duration_is_required() -> None:
    with pytest.raises(ValueError):
        target_duration_of("#EXTM3U\n#EXTINF:2,\na.ts\n")


def test_parse_response_head() -> None:
    status, headers = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-Cache: HIT\r\nVia: 1.1 a, 1.1 b\r\n\r\n"
    )
    assert status == 200
    assert headers == {"content-length": "12", "x-cache": "HIT", "via": "1.1 a, 1.1 b"}
    assert parse_response_head(b"HTTP/1.0 404 Not Found\r\n\r\n") == (404, {})


@pytest.mark.parametrize(
    "head",
    [
        b"\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_parse_response_head_rejects_garbage(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_response_head(head)


def test_http_connection_keeps_alive_and_reads_both_body_framings() -> None:
    """Against a real socket server: Content-Length, then chunked, then ``Connection: close`` and a
    reconnect — one connection for the first three requests."""
    responses = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye",
    ]
    paths: list[str] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while len(paths) < len(responses):
                request = await reader.readuntil(b"\r\n\r\n")
                paths.append(request.split(b" ")[1].decode())
                writer.write(responses[len(paths) - 1])
                await writer.drain()
                if b"Connection: close" in responses[len(paths) - 1]:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async def scenario() -> list[tuple[int, bytes]]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HttpConnection("127.0.0.1", port)
        try:
            return [await client.get(f"/{i}") for i in range(4)]
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    got = asyncio.run(scenario())
    assert got == [(200, b"hello"), (200, b"abcde"), (404, b""), (200, b"bye")]
    assert paths == ["/0", "/1", "/2", "/3"]
    assert connections == 2


def test_http_connection_failure_closes_and_raises() -> None:
    async def scenario() -> None:
        async def reply_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(reply_garbage, "127.0.0.1", 0)
        client = HttpConnection("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            with pytest.raises(ValueError):
                await client.get("/")
            assert client._writer is None
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_metric_value_finds_labelled_series() -> None:
    text = (
        "# HELP streamit_hls_requests_total HLS requests\n"
        "# TYPE streamit_hls_requests_total counter\n"
        'streamit_hls_requests_total{kind="playlist",outcome="served"} 12.0\n'
        'streamit_hls_requests_total{kind="segment",outcome="served"} 7.0\n'
        "streamit_edge_cache_bytes 1024.0\n"
    )
    assert metric_value(text, "streamit_hls_requests_total", outcome="served", kind="segment") == 7.0
    assert metric_value(text, "streamit_hls_requests_total", kind="segment", outcome="not_found") == 0.0
    assert metric_value(text, "streamit_edge_cache_bytes") == 1024.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def _wrk(rps: float, p50: float = 1.0) -> WrkResult:
    return WrkResult(
        requests=round(rps * 10), bytes=round(rps * 10 * 500), duration_s=10.0, socket_errors=0,
        bad_status=0, p50_ms=p50, p99_ms=5 * p50,
    )  # fmt: skip


def test_summaries_take_medians_and_ratios_compare_edge_with_nginx() -> None:
    results = [
        HitResult(1, "playlist", "nginx", _wrk(30000), 5.0),
        HitResult(2, "playlist", "nginx", _wrk(10000), 5.0),
        HitResult(3, "playlist", "nginx", _wrk(20000), 6.0),
        HitResult(1, "playlist", "edge", _wrk(10000), 10.0, 0.999),
        HitResult(2, "playlist", "edge", _wrk(14000), 10.0, 0.95),
        HitResult(3, "playlist", "edge", _wrk(12000), 10.0, 1.0),
        HitResult(1, "segment", "nginx", _wrk(1000), 4.0),
        HitResult(1, "segment", "edge", _wrk(900), 3.0, 1.0),
    ]
    nginx = summarize_hits(results, "playlist", "nginx")
    edge = summarize_hits(results, "playlist", "edge")
    assert nginx is not None and edge is not None
    assert nginx.requests_per_s == pytest.approx(20000) and nginx.cpu_percent == pytest.approx(50)
    assert edge.requests_per_s == pytest.approx(12000) and edge.hit_fraction == 0.95
    assert summarize_hits(results, "playlist", "varnish") is None
    tables = hits_tables(results)
    # requests / CPU-s per run: nginx 60000, 20000, 33333 (median 33333); edge 10000, 14000, 12000.
    assert nginx.requests_per_cpu_s == pytest.approx(200000 / 6)
    assert edge.requests_per_cpu_s == pytest.approx(12000)
    assert "| playlist | 0.60× | 0.60× | 0.36× | **no** |" in tables
    assert "| segment | 0.90× | 0.90× | 1.20× | yes |" in tables
    assert "95.00 %" in tables


def test_fanout_result_arithmetic() -> None:
    result = FanoutResult(
        viewers=1000, edges=2, window_s=30.0, origin_segment_fetches=31, origin_playlist_fetches=60,
        edge_segment_fetches=(15, 16), edge_playlist_fetches=(30, 30), segments_per_edge=(15, 15),
        playlist_requests=30000, segment_requests=30000, body_bytes=3 * 10**9, errors={"TimeoutError": 2},
        segment_p50_ms=3.0, segment_p99_ms=30.0, segment_bytes_median=100000,
    )  # fmt: skip
    assert result.fetches_per_segment_per_edge == pytest.approx(31 / 30)
    assert result.per_edge_fetches_per_segment == pytest.approx((1.0, 16 / 15))
    assert result.origin_playlist_fetches_per_edge_s == pytest.approx(1.0)
    assert result.polls_per_viewer_s == pytest.approx(1.0)
    assert result.error_count == 2


def _section(body: str) -> str:
    return f"<!-- BEGIN {SECTION_NAME} -->\n\n## Edge\n\n{body}\n\n<!-- END {SECTION_NAME} -->"


def test_edge_section_and_ingest_report_coexist(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    write_section(doc, _section("first"))
    assert doc.read_text().startswith("# Benchmarks\n\n<!-- BEGIN bench/edge.py -->")
    # bench/ingest.py rewrites the whole file: the edge section must survive, once.
    doc.write_text(with_marked_sections("# Benchmarks\n\n## Ingest\n\ntable\n", doc.read_text()))
    write_section(doc, _section("second"))
    text = doc.read_text()
    assert text.index("## Ingest") < text.index("## Edge")
    assert "first" not in text and text.count("second") == 1
    assert text.count("<!-- BEGIN bench/edge.py -->") == 1
    again = with_marked_sections("# Benchmarks\n\n## Ingest\n\nnew table\n", text)
    assert "new table" in again and again.count("second") == 1 and again.endswith("-->\n")


def test_parse_args_defaults_and_quick() -> None:
    settings, output, json_path = parse_args([])
    assert (settings.runs, settings.duration, settings.connections, settings.threads) == (3, 10.0, 50, 1)
    assert (settings.viewers, settings.edges, settings.fanout_duration) == (1000, 2, 30.0)
    assert settings.parts == ("hits", "fanout")
    assert output is not None and output.name == "benchmarks.md" and json_path is None
    settings, output, _ = parse_args(["--quick", "--viewers", "10"])
    assert (settings.runs, settings.duration, settings.viewers) == (1, 2.0, 10)
    assert output is None


@pytest.mark.parametrize("argv", [["--parts", "hits,latency"], ["--viewers", "1"], ["--runs", "0"]])
def test_parse_args_rejects_nonsense(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def _require(name: str) -> None:
    if shutil.which(name) is None:
        message = f"{name} is not installed (Debian package {name!r}); the edge benchmark needs it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def test_quick_run_produces_sane_numbers(tmp_path: Path) -> None:
    for tool in ("wrk", "nginx", "ffmpeg"):
        _require(tool)
    redis_url = os.environ.get("STREAMIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {redis_url} is needed: {exc}")
        pytest.skip(f"Redis at {redis_url} is needed: {exc}")
    report, numbers = tmp_path / "benchmarks.md", tmp_path / "edge.json"
    argv = [sys.executable, str(BENCH_DIR / "edge.py"), "--quick", "--redis-url", redis_url]
    argv += ["--output", str(report), "--json", str(numbers), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads(numbers.read_text())
    assert {(s["target"], s["server"]) for s in results["hit_summaries"]} == {
        (t, s) for t in ("playlist", "segment") for s in ("nginx", "edge")
    }
    for summary in results["hit_summaries"]:
        assert summary["requests_per_s"] > 0 and summary["errors"] == 0, summary
        assert summary["p50_ms"] <= summary["p99_ms"]
        if summary["server"] == "edge":
            # The warm-up left both objects cached: nearly every answer is a hit.
            assert summary["hit_fraction"] >= 0.9, summary
    segment_runs = [r for r in results["hits"] if r["target"] == "segment"]
    for run in segment_runs:
        assert run["wrk"]["bytes"] >= run["wrk"]["requests"] * SEGMENT_BYTES

    fanout = results["fanout"]
    assert fanout["error_count"] == 0, fanout["errors"]
    assert all(n >= 1 for n in fanout["segments_per_edge"]), fanout
    # Every edge fetched each segment its viewers wanted at least once, from the origin.
    assert fanout["fetches_per_segment_per_edge"] >= 1.0
    assert all(v >= 1.0 for v in fanout["per_edge_fetches_per_segment"])
    assert fanout["segment_requests"] >= sum(fanout["segments_per_edge"])

    text = report.read_text()
    assert text.count(f"<!-- BEGIN {SECTION_NAME} -->") == 1 and f"<!-- END {SECTION_NAME} -->" in text
    assert "Ratio edge / nginx" in text and "origin fetches per segment per edge" in text
    # Nothing left behind: no registry keys, run directories removed (only the clip stays in the work dir).
    client = redis.Redis.from_url(redis_url)
    try:
        for prefix in results["redis_prefixes"]:
            assert prefix.startswith("streamit-bench-edge-")
            assert list(client.scan_iter(match=prefix + "*")) == []
    finally:
        client.close()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["edge-clip.flv", "edge-clip.log"]
