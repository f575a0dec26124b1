"""The CMAF initialization segment: ``ftyp`` + ``moov`` describing an H.264 and/or AAC track.

Layout (ISO/IEC 14496-12, ISO/IEC 23000-19 CMAF §7.3.1): every sample table is empty and ``mvex``/``trex``
announce that the samples come in movie fragments.  Track 1 is video (90 kHz timescale), track 2 audio
(timescale = sample rate, so every AAC frame lasts exactly 1024 ticks).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from streamit.errors import LocalProtocolError
from streamit.fmp4.boxes import box, full_box
from streamit.media.frame import AudioConfig, TrackKind, VideoConfig

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
VIDEO_TIMESCALE = 90_000
"""The 90 kHz clock: an integer number of ticks per frame at every common frame rate."""
MOVIE_TIMESCALE = 1000

MAJOR_BRAND = b"iso6"
COMPATIBLE_BRANDS = (b"iso6", b"cmfc", b"mp41")
"""``iso6`` allows ``tfdt``/``trun`` v1 (signed composition offsets); ``cmfc`` is the CMAF structural brand
(ISO/IEC 23000-19 §7.2)."""

SAMPLE_FLAGS_SYNC = 0x0200_0000
"""sample_depends_on = 2 (an I picture or an audio frame), sample_is_non_sync_sample = 0 (§8.8.3.1)."""
SAMPLE_FLAGS_NON_SYNC = 0x0101_0000
"""sample_depends_on = 1 (depends on other pictures), sample_is_non_sync_sample = 1."""

_UNITY_MATRIX = struct.pack(">9I", 0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000)
_LANGUAGE_UND = ((ord("u") - 0x60) << 10) | ((ord("n") - 0x60) << 5) | (ord("d") - 0x60)

# MPEG-4 Systems descriptor tags (ISO/IEC 14496-1 §7.2.2.1) and values for AAC in esds.
_ES_DESCRIPTOR_TAG = 0x03
_DECODER_CONFIG_TAG = 0x04
_DECODER_SPECIFIC_INFO_TAG = 0x05
_SL_CONFIG_TAG = 0x06
_OBJECT_TYPE_AAC = 0x40  # Audio ISO/IEC 14496-3
_STREAM_TYPE_AUDIO = 0x05


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """Where a track lives in the fragments: its ID and the ticks per second of its timestamps."""

    kind: TrackKind
    track_id: int
    timescale: int


def track_info(config: VideoConfig | AudioConfig) -> TrackInfo:
    """The track ID and timescale used for a track with this configuration."""
    if isinstance(config, VideoConfig):
        return TrackInfo(TrackKind.VIDEO, VIDEO_TRACK_ID, VIDEO_TIMESCALE)
    if config.sample_rate <= 0:
        raise LocalProtocolError("an audio track needs a positive sample rate")
    return TrackInfo(TrackKind.AUDIO, AUDIO_TRACK_ID, config.sample_rate)


def init_segment(video: VideoConfig | None, audio: AudioConfig | None) -> bytes:
    """The initialization segment (``ftyp`` + ``moov``) for the given tracks (at least one)."""
    if video is None and audio is None:
        raise LocalProtocolError("an initialization segment needs at least one track")
    ftyp = box(b"ftyp", MAJOR_BRAND, struct.pack(">I", 0), *COMPATIBLE_BRANDS)
    traks: list[bytes] = []
    trexes: list[bytes] = []
    if video is not None:
        traks.append(_video_trak(video))
        trexes.append(_trex(VIDEO_TRACK_ID, SAMPLE_FLAGS_NON_SYNC))
    if audio is not None:
        traks.append(_audio_trak(audio))
        trexes.append(_trex(AUDIO_TRACK_ID, SAMPLE_FLAGS_SYNC))
    next_track_id = (AUDIO_TRACK_ID if audio is not None else VIDEO_TRACK_ID) + 1
    moov = box(b"moov", _mvhd(next_track_id), *traks, box(b"mvex", *trexes))
    return ftyp + moov


def _mvhd(next_track_id: int) -> bytes:
    # creation/modification time 0, duration 0 (fragmented: unknown), rate 1.0, volume 1.0 (§8.2.2).
    return full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH10x", 0, 0, MOVIE_TIMESCALE, 0, 0x0001_0000, 0x0100),
        _UNITY_MATRIX,
        bytes(24),  # pre_defined
        struct.pack(">I", next_track_id),
    )


def _tkhd(track_id: int, volume: int, width: int, height: int) -> bytes:
    # flags 3: track_enabled | track_in_movie (§8.3.2); width/height are 16.16 fixed point.
    return full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII8xhhhH", 0, 0, track_id, 0, 0, 0, 0, volume, 0),
        _UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )


def _mdia(timescale: int, handler: bytes, name: bytes, media_header: bytes, sample_entry: bytes) -> bytes:
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, _LANGUAGE_UND, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name + b"\x00")
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    return box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl))


def avcc_record(config: VideoConfig) -> bytes:
    """The AVCDecoderConfigurationRecord for ``avcC``, stating 4-byte NAL lengths.

    Frames reach the muxer with 4-byte length prefixes whatever the publisher used (the FLV demuxer
    normalises them), so lengthSizeMinusOne is forced to 3 (ISO/IEC 14496-15 §5.3.3.1.2).
    """
    record = config.record
    if len(record) < 7 or record[0] != 1:
        raise LocalProtocolError("the video configuration holds no AVCDecoderConfigurationRecord")
    return record[:4] + bytes((record[4] | 0x03,)) + record[5:]


def _video_trak(config: VideoConfig) -> bytes:
    # VisualSampleEntry (§12.1.3): 72 dpi, one frame per sample, depth 24, pre_defined -1.
    avc1 = box(
        b"avc1",
        bytes(6),
        struct.pack(">HHH12xHHIIIH", 1, 0, 0, config.width, config.height, 0x0048_0000, 0x0048_0000, 0, 1),
        bytes(32),  # compressorname
        struct.pack(">Hh", 0x0018, -1),
        box(b"avcC", avcc_record(config)),
    )
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))  # graphicsmode copy, opcolor 0; flags must be 1 (§12.1.2)
    return box(
        b"trak",
        _tkhd(VIDEO_TRACK_ID, 0, config.width, config.height),
        _mdia(VIDEO_TIMESCALE, b"vide", b"VideoHandler", vmhd, avc1),
    )


def _descriptor(tag: int, *payload: bytes) -> bytes:
    """An MPEG-4 descriptor with its expandable size (ISO/IEC 14496-1 §8.3.3)."""
    body = b"".join(payload)
    size = len(body)
    if size >= 1 << 28:
        raise LocalProtocolError("an MPEG-4 descriptor is too large")
    length = [size & 0x7F]
    size >>= 7
    while size:
        length.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes((tag, *reversed(length))) + body


def esds_payload(config: AudioConfig) -> bytes:
    """The ES_Descriptor carrying the AudioSpecificConfig (ISO/IEC 14496-14 §5.6)."""
    decoder_config = _descriptor(
        _DECODER_CONFIG_TAG,
        # streamType in the top 6 bits, upStream 0, reserved 1; bufferSizeDB 0, max/avg bitrate 0 (unknown).
        struct.pack(">BBBHII", _OBJECT_TYPE_AAC, (_STREAM_TYPE_AUDIO << 2) | 1, 0, 0, 0, 0),
        _descriptor(_DECODER_SPECIFIC_INFO_TAG, config.record),
    )
    sl_config = _descriptor(_SL_CONFIG_TAG, b"\x02")  # predefined 2: reserved for MP4 files
    return _descriptor(_ES_DESCRIPTOR_TAG, struct.pack(">HB", 0, 0), decoder_config, sl_config)


def _audio_trak(config: AudioConfig) -> bytes:
    if not config.record:
        raise LocalProtocolError("the audio configuration holds no AudioSpecificConfig")
    channels = config.channels or 2
    # AudioSampleEntry (§12.2.3): samplerate is 16.16 and cannot state rates above 65535 Hz; the real
    # rate is in the AudioSpecificConfig and the mdhd timescale.
    rate = config.sample_rate << 16 if config.sample_rate <= 0xFFFF else 0
    mp4a = box(
        b"mp4a",
        bytes(6),
        struct.pack(">H8xHHHHI", 1, channels, 16, 0, 0, rate),
        full_box(b"esds", 0, 0, esds_payload(config)),
    )
    smhd = full_box(b"smhd", 0, 0, bytes(4))  # balance 0, reserved
    info = track_info(config)
    return box(
        b"trak",
        _tkhd(AUDIO_TRACK_ID, 0x0100, 0, 0),
        _mdia(info.timescale, b"soun", b"SoundHandler", smhd, mp4a),
    )


def _trex(track_id: int, default_flags: int) -> bytes:
    # default_sample_description_index 1, default duration and size 0 (every trun states them).
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, default_flags))
