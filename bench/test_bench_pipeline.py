"""Tests of bench/pipeline.py's workload and stages (no timing): run with ``.venv/bin/pytest bench``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline import (
    build_workload,
    run_demux,
    run_hls,
    run_ll_origin,
    run_ll_packager,
    run_rtmp,
    run_stream,
    run_total,
)

from streamit.flv.file import FlvFileReader, FlvTagType
from streamit.fmp4 import fragments
from streamit.media import Frame
from streamit.rtmp import AudioReceived, MetaDataReceived, VideoReceived

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "flv"
CLIPS = ["high_1280x720_bframes.flv", "offset_16780.flv"]


def tags(clip: Path) -> list[tuple[int, int, bytes]]:
    reader = FlvFileReader()
    reader.feed(clip.read_bytes())
    return [(int(tag.tag_type), tag.timestamp, tag.payload) for tag in reader]


@pytest.mark.parametrize("name", CLIPS)
def test_rtmp_stage_delivers_every_tag_of_the_clip(name: str) -> None:
    clip = FIXTURES / name
    workload = build_workload(clip, None)
    assert workload.reads[0][:1] == b"\x03" and len(workload.reads[0]) == 1537
    media = [(tag_type, ts, body) for tag_type, ts, body in tags(clip) if tag_type != FlvTagType.SCRIPT_DATA]
    events = run_rtmp(workload.reads)
    assert isinstance(events[0], MetaDataReceived)
    received = [
        (
            int(FlvTagType.VIDEO if isinstance(event, VideoReceived) else FlvTagType.AUDIO),
            event.timestamp,
            event.payload,
        )
        for event in events
        if isinstance(event, VideoReceived | AudioReceived)
    ]
    assert received == media
    assert workload.media_seconds == max(ts for _, ts, _ in media) / 1000


@pytest.mark.parametrize("name", CLIPS)
def test_stages_and_whole_path_package_the_same_segments(name: str) -> None:
    workload = build_workload(FIXTURES / name, None)
    items = run_demux(run_rtmp(workload.reads))
    assert sum(isinstance(item, Frame) for item in items) > 20
    run_stream(items)
    staged = run_hls(items)
    whole = run_total(workload.reads)
    assert whole.segments == staged.segments >= 1
    assert whole.last_segment is not None and staged.last_segment is not None
    data = whole.last_segment.data
    assert data == staged.last_segment.data
    assert len(data) % 188 == 0 and data[::188] == b"\x47" * (len(data) // 188)
    assert whole.playlist.endswith(b"#EXT-X-ENDLIST\n")


def test_seconds_limits_the_workload() -> None:
    full = build_workload(FIXTURES / CLIPS[0], None)
    half = build_workload(FIXTURES / CLIPS[0], 0.5)
    assert half.media_seconds <= 0.5 < full.media_seconds
    assert len(half.reads) < len(full.reads)


@pytest.mark.parametrize("name", CLIPS)
def test_ll_stages_package_the_same_segments_as_the_whole_path(name: str, tmp_path: Path) -> None:
    workload = build_workload(FIXTURES / name, None)
    items = run_demux(run_rtmp(workload.reads))
    alone = run_ll_packager(items)
    assert alone.segments >= 1 and alone.last_segment is not None
    assert fragments(alone.last_segment.data)  # moof + mdat pairs
    live = run_ll_origin(items, tmp_path / "origin")
    assert live.playlist().startswith("#EXTM3U")
    live.release()
    whole = run_total(workload.reads, tmp_path / "total")
    assert whole.playlist.endswith(b"#EXT-X-ENDLIST\n")
    assert not list((tmp_path / "total").glob("seg-*.m4s"))  # the ended stream was released
