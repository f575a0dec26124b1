"""Test-only: the FLV fixtures demuxed by the real FLV reader and demuxer into configs and Frames."""

from __future__ import annotations

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
