"""Test-only: the FLV fixtures demuxed by the real FLV reader and demuxer into configs and Frames."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from streamit.flv import FlvDemuxer, FlvFileReader, FlvTagType
from streamit.media.frame import AudioConfig, Frame, TrackKind, VideoConfig

FLV_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "flv"
BFRAMES_FLV = FLV_FIXTURES / "high_1280x720_bframes.flv"
MAIN_FLV = FLV_FIXTURES / "main_320x180.flv"
MONO_44K_FLV = FLV_FIXTURES / "baseline_322x182_mono.flv"
OFFSET_FLV = FLV_FIXTURES / "offset_16780.flv"


@dataclass(frozen=True)
class DemuxedFlv:
    video: VideoConfig | None
    audio: AudioConfig | None
    frames: list[Frame]

    def of(self, kind: TrackKind) -> list[Frame]:
        return [frame for frame in self.frames if frame.track is kind]


def demux_flv(data: bytes) -> DemuxedFlv:
    reader = FlvFileReader()
    reader.feed(data)
    demuxer = FlvDemuxer()
    frames: list[Frame] = []
    for tag in reader:
        if tag.tag_type is FlvTagType.VIDEO:
            items: list[object] = list(demuxer.feed_video(tag.timestamp, tag.payload))
        elif tag.tag_type is FlvTagType.AUDIO:
            items = list(demuxer.feed_audio(tag.timestamp, tag.payload))
        else:
            continue
        frames.extend(item for item in items if isinstance(item, Frame))
    return DemuxedFlv(demuxer.video_config, demuxer.audio_config, frames)


def demux_file(path: Path) -> DemuxedFlv:
    return demux_flv(path.read_bytes())


def make_flv(ffmpeg: str, path: Path, *, seconds: int, gop: int = 30, audio: bool = True) -> Path:
    """An FLV made by ffmpeg: 160x90 H.264 (High, 2 B-frames, keyframe every ``gop`` frames at 30 fps)
    and, if ``audio``, AAC-LC 48 kHz mono."""
    command = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac", "-ac", "1"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", str(gop)]
    command += ["-sc_threshold", "0", "-t", str(seconds), "-f", "flv", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path


def make_audio_only_flv(ffmpeg: str, path: Path, *, seconds: int) -> Path:
    """An FLV made by ffmpeg holding only AAC-LC 44.1 kHz stereo."""
    command = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    command += ["-c:a", "aac", "-ac", "2", "-t", str(seconds), "-f", "flv", str(path)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path
