from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streamit.discovery.location import StreamLocation, is_valid_slug, normalize_origin_url
from streamit.errors import InvalidInput


@pytest.mark.parametrize("slug", ["cam", "cam-one", "Cam_2", "a" * 128, "x.y", "~a"])
def test_valid_slugs(slug: str) -> None:
    assert is_valid_slug(slug)


@pytest.mark.parametrize("slug", ["", ".hidden", "..", "a/b", "a b", "a*", "a" * 129, "é", "a?b", "a\n"])
def test_invalid_slugs(slug: str) -> None:
    assert not is_valid_slug(slug)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://127.0.0.1:8081/", "http://127.0.0.1:8081"),
        ("https://origin-a.example/base/", "https://origin-a.example/base"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origin_urls_are_normalised(url: str, expected: str) -> None:
    assert normalize_origin_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host",
        "host:8080",
        "/relative",
        "http://",
        "http://user:pw@host",
        "http://host/?q=1",
        "http://host/#frag",
        "http://host:99999",
        "http://host:0",
        "http://ho st",
        "http://host/\n",
    ],
)
def test_bad_origin_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_origin_url(url)


def test_location_normalises_and_freezes() -> None:
    metadata = {"video_codec": "h264"}
    location = StreamLocation("cam", "http://o:1/", "node-a", datetime(2024, 5, 1, 12), metadata)
    metadata["video_codec"] = "changed"
    assert location.origin_url == "http://o:1"
    assert location.started_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert location.metadata == {"video_codec": "h264"}
    with pytest.raises(TypeError):
        location.metadata["x"] = "y"  # type: ignore[index]
    same = StreamLocation("cam", "http://o:1", "node-a", location.started_at, {"video_codec": "h264"})
    assert location == same


def test_aware_started_at_is_kept() -> None:
    moment = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert StreamLocation("cam", "http://o:1", "n", moment).started_at is moment


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slug": "a/b"},
        {"origin_url": "gopher://x"},
        {"node": ""},
        {"node": "has space"},
        {"metadata": {"k": 1}},
        {"metadata": {"": "v"}},
        {"metadata": {"k": "v" * 1025}},
        {"metadata": {str(i): "v" for i in range(65)}},
        {"started_at": "2024-01-01"},
    ],
)
def test_invalid_locations_are_refused(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"slug": "cam", "origin_url": "http://o:1", "node": "n"} | kwargs
    with pytest.raises(InvalidInput):
        StreamLocation(**values)  # type: ignore[arg-type]
