"""Access to the real ffmpeg FLV fixtures and the facts ffprobe reports about them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

from streamit.flv import FlvFileReader, FlvTag

FLV_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "flv"
MEDIA_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "media"


@dataclass(frozen=True)
class ProbedFile:
    """Values from ``ffprobe -show_streams -show_packets`` for one committed fixture."""

    name: str
    width: int
    height: int
    profile: int  # profile_idc (ffprobe: High = 100, Constrained Baseline = 66)
    level: int
    fps: Fraction
    sample_rate: int
    channels: int
    video_packets: int
    audio_packets: int
    first_video_pts_dts: tuple[int, int]
    first_audio_pts: int


PROBED = (
    ProbedFile("main_320x180.flv", 320, 180, 100, 13, Fraction(30), 48000, 1, 30, 48, (67, 0), 46),
    ProbedFile("high_1280x720_bframes.flv", 1280, 720, 100, 31, Fraction(25), 48000, 2, 25, 48, (80, 0), 59),
    ProbedFile("baseline_322x182_mono.flv", 322, 182, 66, 13, Fraction(30), 44100, 1, 30, 45, (23, 23), 0),
    ProbedFile(
        "offset_16780.flv", 320, 180, 100, 13, Fraction(30), 48000, 1, 30, 48, (16780000, 16779933), 16779979
    ),
)


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of ``tests/fixtures/flv/<name>``."""
    return (FLV_DIR / name).read_bytes()


@cache
def fixture_tags(name: str) -> tuple[FlvTag, ...]:
    """All tags of an FLV fixture, parsed in one go."""
    reader = FlvFileReader()
    reader.feed(fixture_bytes(name))
    tags = tuple(reader)
    reader.close()
    return tags
