"""FLV/RTMP tag bodies → codec configs and :class:`~streamit.media.frame.Frame` objects.

RTMP video (type 9) and audio (type 8) messages carry exactly the body of an FLV tag (FLV spec v10.1
§E.4.2.1 AUDIODATA, §E.4.3.1 VIDEODATA), so one demuxer serves both live ingest and FLV files.
Enhanced RTMP (v1/v2) ex-headers are recognised: H.264 (``avc1``) and AAC (``mp4a``) are accepted,
every other FourCC raises :class:`~streamit.errors.UnsupportedCodec`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from fractions import Fraction

from streamit.errors import RemoteProtocolError, UnsupportedCodec
from streamit.flv.timestamps import FAST_LIMIT, unwrap_timestamp
from streamit.media.aac import parse_audio_specific_config
from streamit.media.frame import MILLISECONDS, AudioConfig, Frame, TrackKind, VideoConfig
from streamit.media.h264 import parse_avc_decoder_config, parse_sps, to_four_byte_lengths

_unpack_u32 = struct.Struct(">I").unpack_from
_VIDEO = TrackKind.VIDEO
_AUDIO = TrackKind.AUDIO

VIDEO_CODEC_AVC = 7
SOUND_FORMAT_AAC = 10
SOUND_FORMAT_EX_HEADER = 9  # Enhanced RTMP v2: the audio FourCC follows the first byte

FRAME_TYPE_KEYFRAME = 1
FRAME_TYPE_INFO = 5  # video info/command frame: carries no picture

AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2

# Enhanced RTMP PacketType values (shared by video and audio ex-headers).
_EX_SEQUENCE_START = 0
_EX_CODED_FRAMES = 1
_EX_SEQUENCE_END = 2
_EX_CODED_FRAMES_X = 3  # video only: no composition time offset
_EX_METADATA = 4  # video only: AMF-encoded colour info, nothing a packager needs

_VIDEO_CODEC_NAMES = {
    1: "JPEG",
    2: "Sorenson H.263",
    3: "Screen video",
    4: "On2 VP6",
    5: "On2 VP6 with alpha",
    6: "Screen video v2",
    12: "HEVC (non-standard FLV codec id 12)",
}
_SOUND_FORMAT_NAMES = {
    0: "Linear PCM (platform endian)",
    1: "ADPCM",
    2: "MP3",
    3: "Linear PCM (little endian)",
    4: "Nellymoser 16 kHz mono",
    5: "Nellymoser 8 kHz mono",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    11: "Speex",
    14: "MP3 8 kHz",
    15: "device-specific sound",
}
_FOURCC_NAMES = {
    b"hvc1": "HEVC",
    b"av01": "AV1",
    b"vp09": "VP9",
    b"vp08": "VP8",
    b"Opus": "Opus",
    b"fLaC": "FLAC",
    b"ac-3": "AC-3",
    b"ec-3": "E-AC-3",
    b".mp3": "MP3",
}


def _unsupported_fourcc(kind: str, fourcc: bytes) -> UnsupportedCodec:
    name = _FOURCC_NAMES.get(fourcc, repr(fourcc))
    supported = "H.264" if kind == "video" else "AAC"
    return UnsupportedCodec(f"Enhanced RTMP {kind} codec {name} is not supported (only {supported})")


def _fps_from_metadata(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 < value <= 1000:
        return None
    # NTSC rates arrive as rounded floats (29.97, 59.94): map them back to n*1000/1001.
    ntsc = round(value * 1.001)
    if abs(value - ntsc * 1000 / 1001) < 0.005 and abs(value - ntsc) > 0.01:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(value).limit_denominator(1000)


class FlvDemuxer:
    """Demuxes the video and audio tag bodies of one published stream.

    Timestamps (32-bit milliseconds) are unwrapped per track. Frames that arrive before their track's
    configuration are dropped and counted in :attr:`dropped_before_config`. Malformed bodies raise
    :class:`~streamit.errors.RemoteProtocolError`; codecs other than H.264/AAC raise
    :class:`~streamit.errors.UnsupportedCodec` (a subclass).
    """

    def __init__(self) -> None:
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.dropped_before_config = 0
        self._nal_length_size = 4
        self._metadata: dict[str, object] = {}
        # The last unwrapped timestamp of each track (see streamit.flv.timestamps), None before the first.
        self._video_dts: int | None = None
        self._audio_dts: int | None = None

    @property
    def metadata(self) -> dict[str, object]:
        """A copy of the last ``onMetaData`` values."""
        return dict(self._metadata)

    def feed_metadata(self, values: Mapping[str, object]) -> None:
        """Keep the stream's ``onMetaData`` values (width, height, framerate, encoder …)."""
        self._metadata = dict(values)

    def feed_video(self, timestamp: int, payload: bytes) -> list[VideoConfig | Frame]:
        """Demux one video tag body with its 32-bit millisecond ``timestamp``."""
        if not payload:
            return []
        first = payload[0]
        # The common tag first: an AVC NALU of a keyframe (0x17) or an inter frame (0x27).
        if (first == 0x27 or first == 0x17) and len(payload) > 4 and payload[1] == AVC_NALU:
            # CompositionTime: a signed 24-bit value, taken with the packet type byte and sign-extended.
            offset = ((_unpack_u32(payload, 1)[0] & 0xFFFFFF) ^ 0x800000) - 0x800000
            return self._video_frame(timestamp, offset, first == 0x17, payload[5:])
        if first & 0x80:
            return self._feed_ex_video(timestamp, payload)
        frame_type = first >> 4
        codec_id = first & 0x0F
        if frame_type == FRAME_TYPE_INFO:
            return []
        if not 1 <= frame_type <= 4:
            raise RemoteProtocolError(f"FLV video tag has invalid frame type {frame_type}")
        if codec_id != VIDEO_CODEC_AVC:
            name = _VIDEO_CODEC_NAMES.get(codec_id, f"codec id {codec_id}")
            raise UnsupportedCodec(f"FLV video codec {name} is not supported (only H.264)")
        if len(payload) < 5:
            raise RemoteProtocolError(f"FLV AVC video tag is truncated ({len(payload)} bytes)")
        packet_type = payload[1]
        if packet_type == AVC_NALU:
            # CompositionTime: a signed 24-bit value, taken with the packet type byte and sign-extended.
            offset = ((_unpack_u32(payload, 1)[0] & 0xFFFFFF) ^ 0x800000) - 0x800000
            return self._video_frame(timestamp, offset, frame_type == FRAME_TYPE_KEYFRAME, payload[5:])
        if packet_type == AVC_SEQUENCE_HEADER:
            return [self._video_sequence_start(payload[5:])]
        if packet_type == AVC_END_OF_SEQUENCE:
            return []
        raise RemoteProtocolError(f"FLV AVC video tag has invalid AVCPacketType {packet_type}")

    def _feed_ex_video(self, timestamp: int, payload: bytes) -> list[VideoConfig | Frame]:
        # Enhanced RTMP: [IsExHeader:1 FrameType:3 PacketType:4] FourCC, then a per-type body.
        if len(payload) < 5:
            raise RemoteProtocolError(f"Enhanced RTMP video tag is truncated ({len(payload)} bytes)")
        frame_type = (payload[0] >> 4) & 0x07
        packet_type = payload[0] & 0x0F
        fourcc = bytes(payload[1:5])
        if frame_type == FRAME_TYPE_INFO or packet_type == _EX_METADATA:
            return []
        if fourcc != b"avc1":
            raise _unsupported_fourcc("video", fourcc)
        if not 1 <= frame_type <= 4:
            raise RemoteProtocolError(f"Enhanced RTMP video tag has invalid frame type {frame_type}")
        if packet_type == _EX_SEQUENCE_START:
            return [self._video_sequence_start(payload[5:])]
        if packet_type == _EX_CODED_FRAMES:
            if len(payload) < 8:
                raise RemoteProtocolError("Enhanced RTMP CodedFrames tag lacks its composition time")
            offset = int.from_bytes(payload[5:8], "big", signed=True)
            return self._video_frame(timestamp, offset, frame_type == FRAME_TYPE_KEYFRAME, payload[8:])
        if packet_type == _EX_CODED_FRAMES_X:
            return self._video_frame(timestamp, 0, frame_type == FRAME_TYPE_KEYFRAME, payload[5:])
        if packet_type == _EX_SEQUENCE_END:
            return []
        raise UnsupportedCodec(f"Enhanced RTMP video packet type {packet_type} is not supported")

    def _video_sequence_start(self, record: bytes) -> VideoConfig:
        avc = parse_avc_decoder_config(record)
        if not avc.sps:
            raise RemoteProtocolError("AVCDecoderConfigurationRecord has no SPS")
        sps = parse_sps(avc.sps[0])
        fps = sps.fps
        if fps is None:
            fps = _fps_from_metadata(self._metadata.get("framerate", self._metadata.get("fps")))
        config = VideoConfig(
            codec="h264",
            record=bytes(record),
            sps=avc.sps,
            pps=avc.pps,
            width=sps.width,
            height=sps.height,
            profile=sps.profile_idc,
            level=sps.level_idc,
            fps=fps,
        )
        self.video_config = config
        self._nal_length_size = avc.nal_length_size
        return config

    def _video_frame(
        self, timestamp: int, offset: int, keyframe: bool, data: bytes
    ) -> list[VideoConfig | Frame]:
        last = self._video_dts
        if last is not None and 0 <= last <= timestamp < FAST_LIMIT:
            dts = self._video_dts = timestamp
        else:
            dts = self._video_dts = unwrap_timestamp(timestamp, last)
        if self.video_config is None:
            self.dropped_before_config += 1
            return []
        if not data:
            return []
        if self._nal_length_size == 4:
            # Validates the framing without copying: the packagers rely on the lengths being exact.
            end = len(data)
            position = 0
            while position < end:
                if position + 4 > end:
                    raise RemoteProtocolError("AVCC data ends inside a NAL length prefix")
                position += 4 + _unpack_u32(data, position)[0]
            if position > end:
                raise RemoteProtocolError("an AVCC NAL unit runs past the end of the frame")
            # A type check costs a fifth of bytes(data), which returns a bytes argument itself anyway.
            if type(data) is not bytes:
                data = bytes(data)
        else:
            data = to_four_byte_lengths(data, self._nal_length_size)
        # Frame(track, pts, dts, time_base, keyframe, data), positional: this runs for every frame.
        return [Frame(_VIDEO, dts + offset, dts, MILLISECONDS, keyframe, data)]

    def feed_audio(self, timestamp: int, payload: bytes) -> list[AudioConfig | Frame]:
        """Demux one audio tag body with its 32-bit millisecond ``timestamp``."""
        # The common tag first, inline (a call costs as much as the rest): an AAC raw frame
        # (SoundFormat 10, AACPacketType 1) of a configured track.
        if (
            len(payload) > 2
            and payload[0] >> 4 == SOUND_FORMAT_AAC
            and payload[1] == 1
            and self.audio_config is not None
        ):
            last = self._audio_dts
            if last is not None and 0 <= last <= timestamp < FAST_LIMIT:
                dts = self._audio_dts = timestamp
            else:
                dts = self._audio_dts = unwrap_timestamp(timestamp, last)
            data = payload[2:]
            if type(data) is not bytes:
                data = bytes(data)
            return [Frame(_AUDIO, dts, dts, MILLISECONDS, True, data)]
        if not payload:
            return []
        sound_format = payload[0] >> 4
        if sound_format == SOUND_FORMAT_EX_HEADER:
            return self._feed_ex_audio(timestamp, payload)
        if sound_format != SOUND_FORMAT_AAC:
            name = _SOUND_FORMAT_NAMES.get(sound_format, f"sound format {sound_format}")
            raise UnsupportedCodec(f"FLV audio codec {name} is not supported (only AAC)")
        if len(payload) < 2:
            raise RemoteProtocolError("FLV AAC audio tag lacks its AACPacketType")
        packet_type = payload[1]
        if packet_type == 1:
            return self._audio_frame(timestamp, payload[2:])
        if packet_type == 0:
            return [self._audio_sequence_start(payload[2:])]
        raise RemoteProtocolError(f"FLV AAC audio tag has invalid AACPacketType {packet_type}")

    def _feed_ex_audio(self, timestamp: int, payload: bytes) -> list[AudioConfig | Frame]:
        # Enhanced RTMP v2: [SoundFormat=9:4 AudioPacketType:4] FourCC, then a per-type body.
        if len(payload) < 5:
            raise RemoteProtocolError(f"Enhanced RTMP audio tag is truncated ({len(payload)} bytes)")
        packet_type = payload[0] & 0x0F
        fourcc = bytes(payload[1:5])
        if fourcc != b"mp4a":
            raise _unsupported_fourcc("audio", fourcc)
        if packet_type == _EX_SEQUENCE_START:
            return [self._audio_sequence_start(payload[5:])]
        if packet_type == _EX_CODED_FRAMES:
            return self._audio_frame(timestamp, payload[5:])
        if packet_type == _EX_SEQUENCE_END:
            return []
        raise UnsupportedCodec(f"Enhanced RTMP audio packet type {packet_type} is not supported")

    def _audio_sequence_start(self, record: bytes) -> AudioConfig:
        config = parse_audio_specific_config(record).to_audio_config(record)
        self.audio_config = config
        return config

    def _audio_frame(self, timestamp: int, data: bytes) -> list[AudioConfig | Frame]:
        dts = self._audio_dts = unwrap_timestamp(timestamp, self._audio_dts)
        if self.audio_config is None:
            self.dropped_before_config += 1
            return []
        if not data:
            return []
        if type(data) is not bytes:
            data = bytes(data)
        return [Frame(_AUDIO, dts, dts, MILLISECONDS, True, data)]
