"""LiveLlHls without HTTP: where parts are kept once their segment is complete, and when the playlist is
rendered."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from streamit.errors import NotFound
from streamit.fmp4 import fragments
from streamit.hls import parts as packaging
from streamit.hls.llhls import LlHlsPlaylist, render_llhls_playlist
from streamit.hls.parts import LlHlsPackager, PartReady, PlaylistUpdated
from streamit.origin import parts as origin_parts
from streamit.origin.parts import PART_SEGMENTS, LiveLlHls, read_range
from tests.hls.test_parts import AUDIO_CONFIG, VIDEO_CONFIG, stream
from tests.origin.test_ll_routes import START, parts_listed

TARGET = Fraction(1)


def new_live(directory: Path | None, playlist_length: int = 4) -> LiveLlHls:
    packager = LlHlsPackager(
        target_duration=TARGET, part_target=Fraction(334, 1000), playlist_length=playlist_length
    )
    return LiveLlHls(packager, target_duration=TARGET, max_waiters=100, directory=directory)


def feed(live: LiveLlHls, seconds: float) -> dict[str, bytes]:
    """Feed a generated stream; every part's bytes as the packager produced them, by name."""
    produced: dict[str, bytes] = {}
    apply = live.apply

    def keep(events: list[packaging.LlHlsEvent]) -> None:
        events = list(events)
        produced.update((e.part.name, e.part.data) for e in events if isinstance(e, PartReady))
        apply(events)

    vars(live)["apply"] = keep  # on this instance only
    live.on_config(VIDEO_CONFIG)
    live.on_config(AUDIO_CONFIG)
    for frame in stream(seconds):
        live.on_frame(frame, START + timedelta(milliseconds=frame.dts))
    return produced


def test_parts_of_complete_segments_are_ranges_of_the_segment_on_disk(tmp_path: Path) -> None:
    live = new_live(tmp_path)
    produced = feed(live, 12)
    hint = live.packager.next_part
    assert hint is not None
    open_msn = hint[0]
    listed = parts_listed(live.playlist())
    assert any(not name.startswith(f"part-{open_msn:06d}-") for name in listed)  # complete segments' parts
    for name in listed:
        assert live.object(name) == produced[name]
    for msn in range(open_msn - PART_SEGMENTS, open_msn):
        segment = (tmp_path / packaging.segment_name(msn)).read_bytes()
        names = sorted((n for n in produced if n.startswith(f"part-{msn:06d}-")), key=lambda n: int(n[12:-4]))
        assert [live.object(name) for name in names] == fragments(segment)
    # Memory holds the init segment and the open segment's parts only.
    open_parts = [data for name, data in produced.items() if name.startswith(f"part-{open_msn:06d}-")]
    assert live.memory_bytes == len(live.object("init.mp4")) + sum(map(len, open_parts))
    with pytest.raises(NotFound):
        live.object(packaging.part_name(open_msn - PART_SEGMENTS - 1, 0))  # older parts are gone


def test_parts_of_a_segment_the_disk_refused_are_served_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, chunks: Sequence[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(origin_parts, "write_chunks_atomically", full)
    live = new_live(tmp_path)
    produced = feed(live, 8)
    assert not list(tmp_path.glob("seg-*.m4s"))
    for name in parts_listed(live.playlist()):
        assert live.object(name) == produced[name]
    hint = live.packager.next_part
    assert hint is not None
    newest = hint[0] - 1
    segment = live.object(packaging.segment_name(newest))
    assert fragments(segment) == [
        live.object(packaging.part_name(newest, index)) for index in range(len(fragments(segment)))
    ]
    assert live.memory_bytes > 4 * len(segment)  # the window


def test_a_segment_file_gone_or_short_is_not_found(tmp_path: Path) -> None:
    live = new_live(tmp_path)
    feed(live, 6)
    name = "part-000003-0.m4s"
    live.object(name)
    (tmp_path / "seg-000003.m4s").write_bytes(b"short")
    with pytest.raises(NotFound):
        live.object(name)
    (tmp_path / "seg-000003.m4s").unlink()
    with pytest.raises(NotFound):
        live.object(name)
    with pytest.raises(NotFound):
        read_range(tmp_path, 0, 1)  # a directory


def test_without_a_directory_parts_are_slices_of_the_segments_in_memory() -> None:
    live = new_live(None)
    produced = feed(live, 8)
    for name in parts_listed(live.playlist()):
        assert live.object(name) == produced[name]


def test_the_playlist_is_rendered_on_request_once_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[bool] = []

    def counting(playlist: LlHlsPlaylist, *, skip: bool = False) -> str:
        rendered.append(skip)
        return render_llhls_playlist(playlist, skip=skip)

    monkeypatch.setattr("streamit.hls.parts.render_llhls_playlist", counting)
    live = new_live(None, playlist_length=10)
    feed(live, 16)
    assert rendered == []  # nobody asked
    text = live.playlist()
    assert live.playlist() is text and rendered == [False]
    delta = live.playlist(skip=True)
    assert live.playlist(skip=True) is delta and rendered == [False, True]
    assert text == live.packager.playlist() and delta == live.packager.playlist(skip=True)
    assert "#EXT-X-SKIP" in delta
    live.apply([PlaylistUpdated(live.packager.playlist_state())])
    assert live.playlist() == text and rendered[-1] is False and len(rendered) == 5
