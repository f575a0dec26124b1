from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.discovery.playlist_summary import MAX_PLAYLIST_SIZE, PlaylistSummary, summarize_playlist
from streamit.errors import MessageTooLarge, RemoteProtocolError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "discovery"
EXPECTED = {
    "nginx_rtmp_nested_live.m3u8": PlaylistSummary(1, False, False, 1, 0),
    "nginx_rtmp_nested_after_unpublish.m3u8": PlaylistSummary(1, False, False, 4, 2),
    "nginx_rtmp_flat_after_unpublish.m3u8": PlaylistSummary(1, False, False, 4, 2),
    "ffmpeg_hls_ended.m3u8": PlaylistSummary(2, True, False, 3, 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_playlists(name: str) -> None:
    assert summarize_playlist((FIXTURES / name).read_bytes()) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_truncation_parses_or_raises(name: str) -> None:
    # A non-atomic writer can leave any prefix on disk; each one must parse or raise, never crash.
    data = (FIXTURES / name).read_bytes()
    summaries = []
    for end in range(len(data) + 1):
        try:
            summaries.append(summarize_playlist(data[:end]))
        except RemoteProtocolError:
            # Only a cut inside a line (the first one, or a tag value) may make it unreadable.
            assert not data[:end].endswith(b"\n")
    assert summaries[-1] == EXPECTED[name]
    assert all(summary.segments <= EXPECTED[name].segments for summary in summaries)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trailing_bytes(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert summarize_playlist(data + b"#EXT-X-ENDLIST\n").ended
    assert summarize_playlist(data + b"\n\n# comment\n") == EXPECTED[name]
    with pytest.raises(RemoteProtocolError):
        summarize_playlist(data + b"\xff\xfe")
    with pytest.raises(RemoteProtocolError):
        summarize_playlist(data + b"#EXT-X-TARGETDURATION:3\n")


def test_crlf_and_master_playlists() -> None:
    crlf = b"#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXTINF:4.0,\r\na.ts\r\n#EXT-X-ENDLIST\r\n"
    assert summarize_playlist(crlf) == PlaylistSummary(4, True, False, 1, 0)
    master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n"
    assert summarize_playlist(master).master


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"#EXTM3",
        b"#EXTM3U8\n",
        b"\xef\xbb\xbf#EXTM3U\n",
        b"hello\n#EXTM3U\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:two\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION\n",
        b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1.5\n",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:" + b"9" * 19 + b"\n",
        b"#EXTM3U\n\xc3\n",
    ],
)
def test_malformed_playlists_are_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        summarize_playlist(data)


def test_oversized_playlist_is_refused() -> None:
    with pytest.raises(MessageTooLarge):
        summarize_playlist(b"#EXTM3U\n" + b"#" * MAX_PLAYLIST_SIZE)


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        summarize_playlist(data)


@settings(deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"#EXT-X-TARGETDURATION:",
                b"#EXT-X-ENDLIST",
                b"#EXT-X-MEDIA-SEQUENCE:",
                b"#EXTINF:1.0,",
                b"#EXT-X-STREAM-INF:",
                b"seg.ts",
                b"\r",
                b"\n",
                b"7",
                b"\xff",
            ]
        ),
        max_size=30,
    )
)
def test_tag_soup_parses_or_raises(pieces: list[bytes]) -> None:
    try:
        summary = summarize_playlist(b"#EXTM3U\n" + b"".join(pieces))
    except RemoteProtocolError:
        return
    assert summary.segments >= 0
