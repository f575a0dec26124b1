"""The box writer, init segment and media fragment, checked field by field against ISO/IEC 14496-12."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from streamit.errors import LocalProtocolError
from streamit.fmp4 import (
    AUDIO_TRACK_ID,
    VIDEO_TIMESCALE,
    VIDEO_TRACK_ID,
    Sample,
    TrackRun,
    box,
    full_box,
    init_segment,
    media_fragment,
    parse_boxes,
    parse_fragment,
    parse_init,
)
from streamit.fmp4.init import SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC, avcc_record, esds_payload
from tests.fmp4.flv_media import BFRAMES_FLV, MONO_44K_FLV, demux_file

MEDIA = demux_file(BFRAMES_FLV)
assert MEDIA.video is not None and MEDIA.audio is not None
VIDEO = MEDIA.video
AUDIO = MEDIA.audio


def test_box_and_full_box_headers() -> None:
    assert box(b"free") == b"\x00\x00\x00\x08free"
    assert box(b"abcd", b"\x01", b"\x02\x03") == b"\x00\x00\x00\x0babcd\x01\x02\x03"
    assert full_box(b"mfhd", 1, 0x020001, b"\xff") == b"\x00\x00\x00\x0dmfhd\x01\x02\x00\x01\xff"


@pytest.mark.parametrize(
    ("kind", "version", "flags"), [(b"abc", 0, 0), (b"abcd", 256, 0), (b"abcd", 0, 1 << 24)]
)
def test_invalid_box_arguments_are_local_errors(kind: bytes, version: int, flags: int) -> None:
    with pytest.raises(LocalProtocolError):
        full_box(kind, version, flags)


def test_init_segment_layout() -> None:
    data = init_segment(VIDEO, AUDIO)
    boxes = parse_boxes(data)
    assert [b.kind for b in boxes] == [b"ftyp", b"moov"]
    assert boxes[0].payload == b"iso6\x00\x00\x00\x00iso6cmfcmp41"
    moov = boxes[1]
    assert [b.kind for b in moov.children] == [b"mvhd", b"trak", b"trak", b"mvex"]
    # mvhd: version 0, timescale 1000, next_track_ID 3 as the last field.
    mvhd = moov.find(b"mvhd").payload
    assert len(mvhd) == 100 and mvhd[12:16] == struct.pack(">I", 1000) and mvhd[-4:] == struct.pack(">I", 3)
    video_trak, audio_trak = moov.find_all(b"trak")
    tkhd = video_trak.find(b"tkhd").payload
    assert tkhd[:4] == b"\x00\x00\x00\x03"  # version 0, enabled | in movie
    assert struct.unpack_from(">I", tkhd, 12)[0] == VIDEO_TRACK_ID
    assert tkhd[-8:] == struct.pack(">II", 1280 << 16, 720 << 16)
    mdia = video_trak.find(b"mdia")
    assert [b.kind for b in mdia.children] == [b"mdhd", b"hdlr", b"minf"]
    assert mdia.find(b"mdhd").payload == struct.pack(">IIIIIHH", 0, 0, 0, VIDEO_TIMESCALE, 0, 0x55C4, 0)
    assert mdia.find(b"hdlr").payload == bytes(8) + b"vide" + bytes(12) + b"VideoHandler\x00"
    stbl = mdia.find(b"minf").find(b"stbl")
    assert [b.kind for b in stbl.children] == [b"stsd", b"stts", b"stsc", b"stsz", b"stco"]
    assert stbl.find(b"stts").payload == bytes(8)  # version/flags, entry_count 0
    assert stbl.find(b"stsz").payload == bytes(12)
    audio_mdhd = audio_trak.find(b"mdia").find(b"mdhd").payload
    assert struct.unpack_from(">I", audio_mdhd, 12)[0] == 48_000
    assert audio_trak.find(b"mdia").find(b"minf").children[0].kind == b"smhd"
    trexes = moov.find(b"mvex").find_all(b"trex")
    assert [t.payload for t in trexes] == [
        struct.pack(">IIIIII", 0, VIDEO_TRACK_ID, 1, 0, 0, SAMPLE_FLAGS_NON_SYNC),
        struct.pack(">IIIIII", 0, AUDIO_TRACK_ID, 1, 0, 0, SAMPLE_FLAGS_SYNC),
    ]


def test_init_segment_sample_entries_round_trip() -> None:
    info = parse_init(init_segment(VIDEO, AUDIO))
    assert info.major_brand == b"iso6" and b"cmfc" in info.compatible_brands
    video, audio = info.tracks[VIDEO_TRACK_ID], info.tracks[AUDIO_TRACK_ID]
    assert (video.handler, video.sample_entry, video.timescale) == (b"vide", b"avc1", 90_000)
    assert (video.width, video.height) == (1280, 720)
    assert video.codec_config == VIDEO.record  # already 4-byte lengths
    assert (audio.handler, audio.sample_entry, audio.timescale) == (b"soun", b"mp4a", 48_000)
    assert audio.codec_config == AUDIO.record


def test_single_track_init_segments() -> None:
    video_only = parse_init(init_segment(VIDEO, None))
    assert list(video_only.tracks) == [VIDEO_TRACK_ID]
    audio_only = parse_init(init_segment(None, AUDIO))
    assert list(audio_only.tracks) == [AUDIO_TRACK_ID]
    with pytest.raises(LocalProtocolError):
        init_segment(None, None)


def test_avcc_states_four_byte_nal_lengths() -> None:
    two_byte = replace(VIDEO, record=VIDEO.record[:4] + b"\xfd" + VIDEO.record[5:])
    assert avcc_record(two_byte)[4] == 0xFF
    assert avcc_record(two_byte)[5:] == VIDEO.record[5:]


def test_esds_bytes() -> None:
    # ES_Descriptor(ES_ID 0) > DecoderConfigDescriptor(0x40 AAC, audio stream) > DecoderSpecificInfo(ASC),
    # then SLConfigDescriptor(predefined 2) — ISO/IEC 14496-1 §7.2.6.
    asc = AUDIO.record
    expected = (
        bytes((0x03, 3 + 2 + 13 + 2 + len(asc) + 3, 0, 0, 0))
        + bytes((0x04, 13 + 2 + len(asc), 0x40, 0x15, 0, 0, 0))
        + bytes(8)
        + bytes((0x05, len(asc)))
        + asc
        + b"\x06\x01\x02"
    )
    assert esds_payload(AUDIO) == expected


def _sample(decode_time: int, duration: int, data: bytes, sync: bool = True, offset: int = 0) -> Sample:
    return Sample(decode_time, duration, offset, sync, data)


def test_media_fragment_fields_are_exact() -> None:
    video = TrackRun(
        VIDEO_TRACK_ID,
        [_sample(5 << 32, 3000, b"key", True, 6000), _sample((5 << 32) + 3000, 3000, b"pb", False, -3000)],
        video=True,
    )
    audio = TrackRun(AUDIO_TRACK_ID, [_sample(7, 1024, b"aac1"), _sample(1031, 1024, b"aac22")], video=False)
    data = media_fragment(42, [video, audio])
    moof, mdat = parse_boxes(data)
    assert moof.kind == b"moof" and mdat.kind == b"mdat"
    assert mdat.payload == b"keypbaac1aac22"
    assert moof.find(b"mfhd").payload == struct.pack(">II", 0, 42)
    video_traf, audio_traf = moof.find_all(b"traf")
    assert video_traf.find(b"tfhd").payload == struct.pack(">II", 0x020000, VIDEO_TRACK_ID)
    assert video_traf.find(b"tfdt").payload == struct.pack(">IQ", 0x0100_0000, 5 << 32)
    mdat_start = len(data) - len(mdat.payload)
    assert video_traf.find(b"trun").payload == struct.pack(
        ">IIi" + "IIIi" * 2,
        0x0100_0F01,  # version 1; data offset, duration, size, flags, composition offset
        2,
        mdat_start,
        3000,
        3,
        SAMPLE_FLAGS_SYNC,
        6000,
        3000,
        2,
        SAMPLE_FLAGS_NON_SYNC,
        -3000,
    )
    assert audio_traf.find(b"tfdt").payload == struct.pack(">IQ", 0x0100_0000, 7)
    assert audio_traf.find(b"trun").payload == struct.pack(
        ">IIiIIII", 0x0100_0301, 2, mdat_start + 5, 1024, 4, 1024, 5
    )


def test_media_fragment_round_trips_through_the_reader() -> None:
    samples = [
        _sample(90_000 + 1500 * i, 1500, bytes([i]) * (i + 1), i == 0, 3000 - 1500 * (i % 3))
        for i in range(7)
    ]
    fragment = parse_fragment(media_fragment(1, [TrackRun(VIDEO_TRACK_ID, samples, video=True)]))
    assert fragment.sequence_number == 1
    (run,) = fragment.runs
    assert run.track_id == VIDEO_TRACK_ID and run.base_media_decode_time == 90_000
    assert list(run.samples) == samples


@pytest.mark.parametrize(
    "runs",
    [
        [],
        [TrackRun(1, [], video=True)],
        [TrackRun(1, [_sample(0, 10, b"a"), _sample(11, 10, b"b")], video=True)],  # gap in decode time
        [TrackRun(1, [_sample(-1, 10, b"a")], video=True)],
        [TrackRun(1, [_sample(0, -1, b"a")], video=True)],
        [TrackRun(1, [_sample(0, 1, b"a", offset=1 << 31)], video=True)],
    ],
)
def test_invalid_runs_are_local_errors(runs: list[TrackRun]) -> None:
    with pytest.raises(LocalProtocolError):
        media_fragment(1, runs)


def test_audio_rate_above_16_bits_is_left_to_the_audio_specific_config() -> None:
    mono = demux_file(MONO_44K_FLV)
    assert mono.audio is not None
    high = replace(mono.audio, sample_rate=96_000)
    info = parse_init(init_segment(None, high))
    assert info.tracks[AUDIO_TRACK_ID].timescale == 96_000
    entry = parse_boxes(init_segment(None, mono.audio))[1].find(b"trak").find(b"mdia").find(b"minf")
    stsd = entry.find(b"stbl").find(b"stsd").payload
    # mp4a SampleEntry: samplerate 44100 in 16.16 fixed point, 24 bytes after the entry header.
    assert stsd[8 + 8 + 24 : 8 + 8 + 28] == struct.pack(">I", 44_100 << 16)
