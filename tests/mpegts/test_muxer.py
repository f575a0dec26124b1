from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError, RemoteProtocolError, UnsupportedCodec
from streamit.media.aac import AdtsWriter, iter_adts_frames
from streamit.media.frame import MILLISECONDS, MPEG_TS_CLOCK, Frame, TrackKind
from streamit.mpegts.annexb import access_unit_annexb, parameter_sets_annexb
from streamit.mpegts.muxer import (
    AUDIO_PID,
    PCR_LEAD,
    PMT_PID,
    TIMESTAMP_MODULUS,
    TIMESTAMP_OFFSET,
    VIDEO_PID,
    TsMuxer,
    _PidWriter,
    pes_header,
)
from tests.conftest import require_tool
from tests.mpegts.flv_fixture import read_flv
from tests.mpegts.ts_demux import (
    TsPacket,
    check_continuity,
    parse_packets,
    parse_pes,
    parse_pmt,
    parse_sections,
)

MEDIA = read_flv()


def ts90(value: int) -> int:
    return (value * 90 + TIMESTAMP_OFFSET) % TIMESTAMP_MODULUS


def mux_all(muxer: TsMuxer, frames: list[Frame], psi_every: int = 0) -> bytes:
    out = [muxer.psi()]
    for index, frame in enumerate(frames):
        if psi_every and index and index % psi_every == 0:
            out.append(muxer.psi())
        out.append(muxer.mux(frame))
    return b"".join(out)


def test_packets_are_aligned_and_counters_continue_across_segments() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    first = mux_all(muxer, MEDIA.frames[:200], psi_every=50)
    second = mux_all(muxer, MEDIA.frames[200:], psi_every=50)
    for chunk in (first, second):
        assert len(chunk) % 188 == 0
        assert all(chunk[i] == 0x47 for i in range(0, len(chunk), 188))
    state = check_continuity(parse_packets(first))
    check_continuity(parse_packets(second), start=state)
    assert set(state) == {0, PMT_PID, VIDEO_PID, AUDIO_PID}


def test_every_frame_output_is_packet_aligned() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    for frame in MEDIA.frames:
        out = muxer.mux(frame)
        assert out and len(out) % 188 == 0


def test_psi_describes_the_program() -> None:
    packets = parse_packets(TsMuxer(MEDIA.video, MEDIA.audio).psi())
    (pat,) = parse_sections(packets, 0)
    assert pat.table_id == 0 and pat.body == bytes.fromhex("0001f000")
    (pmt_section,) = parse_sections(packets, PMT_PID)
    assert pmt_section.table_id == 2 and pmt_section.table_id_extension == 1
    pmt = parse_pmt(pmt_section)
    assert pmt.pcr_pid == VIDEO_PID
    assert pmt.streams == [(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]


def test_audio_only_program_takes_pcr_from_audio() -> None:
    muxer = TsMuxer(None, MEDIA.audio)
    packets = parse_packets(mux_all(muxer, MEDIA.audio_frames[:100]))
    pmt = parse_pmt(parse_sections(packets, PMT_PID)[0])
    assert pmt.pcr_pid == AUDIO_PID and pmt.streams == [(0x0F, AUDIO_PID)]
    pes = parse_pes(packets, AUDIO_PID)
    assert pes[0].pcr is not None and pes[0].random_access
    with_pcr = [p for p in pes if p.pcr is not None]
    assert all(p.random_access for p in with_pcr)
    assert all(p.pcr == (p.pts - PCR_LEAD) % TIMESTAMP_MODULUS for p in with_pcr)
    pcrs = [p.pcr for p in with_pcr if p.pcr is not None]
    gaps = [b - a for a, b in itertools.pairwise(pcrs)]
    assert max(gaps) <= 9000
    assert len(with_pcr) < len(pes) / 2  # not on every frame


def test_pmt_version_changes_only_with_the_track_set() -> None:
    muxer = TsMuxer(MEDIA.video, None)
    version = parse_sections(parse_packets(muxer.psi()), PMT_PID)[0].version
    muxer.set_config(MEDIA.video)
    assert parse_sections(parse_packets(muxer.psi()), PMT_PID)[0].version == version
    muxer.set_config(MEDIA.audio)
    section = parse_sections(parse_packets(muxer.psi()), PMT_PID)[0]
    assert section.version == version + 1
    assert parse_pmt(section).streams == [(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]
    muxer.reset()
    pmt = parse_pmt(parse_sections(parse_packets(muxer.psi()), PMT_PID)[0])
    assert pmt.streams == [] and pmt.pcr_pid == 0x1FFF and pmt.version == version + 2


@pytest.mark.parametrize("nal_type", [1, 5, 6, 7, 9])
@pytest.mark.parametrize("keyframe", [False, True])
@pytest.mark.parametrize("size", [1, 150, 5000])
def test_single_nal_access_units_match_the_annexb_reference(nal_type: int, keyframe: bool, size: int) -> None:
    # A lone non-IDR slice takes a shortcut past access_unit_split; every other single NAL unit does not.
    nal = bytes((0x60 | nal_type,)) + bytes((i * 3) & 0xFF for i in range(size - 1))
    data = len(nal).to_bytes(4, "big") + nal
    frame = Frame(TrackKind.VIDEO, 80, 40, MILLISECONDS, keyframe, data)
    params = parameter_sets_annexb(MEDIA.video.sps, MEDIA.video.pps)
    expected = b"".join(access_unit_annexb(data, keyframe, params))
    packets = TsMuxer(MEDIA.video, MEDIA.audio).mux(frame)
    if nal_type == 9:  # an access unit delimiter alone: no access unit to write
        assert packets == expected == b""
        return
    (pes,) = parse_pes(parse_packets(packets), VIDEO_PID)
    assert pes.data == expected and (pes.pts, pes.dts) == (ts90(80), ts90(40))


def test_pes_carry_the_frames_with_their_timestamps() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    packets = parse_packets(mux_all(muxer, MEDIA.frames))
    params = parameter_sets_annexb(MEDIA.video.sps, MEDIA.video.pps)
    video = parse_pes(packets, VIDEO_PID)
    assert len(video) == len(MEDIA.video_frames)
    assert any(f.pts != f.dts for f in MEDIA.video_frames)
    for pes, frame in zip(video, MEDIA.video_frames, strict=True):
        assert pes.stream_id == 0xE0 and pes.packet_length == 0
        assert pes.pts == ts90(frame.pts)
        assert pes.dts == (None if frame.pts == frame.dts else ts90(frame.dts))
        assert pes.data == b"".join(access_unit_annexb(frame.data, frame.keyframe, params))
        assert pes.random_access == frame.keyframe
    audio = parse_pes(packets, AUDIO_PID)
    adts = AdtsWriter(MEDIA.audio)
    assert len(audio) == len(MEDIA.audio_frames)
    for pes, frame in zip(audio, MEDIA.audio_frames, strict=True):
        assert pes.stream_id == 0xC0 and pes.dts is None
        assert pes.pts == ts90(frame.pts)
        assert pes.data == adts.header(len(frame.data)) + frame.data
        assert pes.packet_length == 8 + len(pes.data)
        assert pes.pcr is None


def test_pcr_on_keyframes_after_psi_and_at_most_100_ms_apart() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    frames = MEDIA.frames
    data = mux_all(muxer, frames, psi_every=37)
    packets = parse_packets(data)
    video = parse_pes(packets, VIDEO_PID)
    assert all(p.pcr is not None for p in video if p.random_access)
    with_pcr = [p for p in video if p.pcr is not None]
    for pes in with_pcr:
        assert pes.pcr == (pes.decode_ts - PCR_LEAD) % TIMESTAMP_MODULUS
    pcrs = [p.pcr for p in with_pcr if p.pcr is not None]
    gaps = [b - a for a, b in itertools.pairwise(pcrs)]
    assert max(gaps) <= 9000 and min(gaps) > 0
    assert len(with_pcr) < len(video)
    # The first video PES after every PAT carries a PCR.
    seen_pat = False
    for packet in packets:
        if packet.pid == 0:
            seen_pat = True
        elif packet.pid == VIDEO_PID and packet.unit_start and seen_pat:
            assert packet.pcr is not None
            seen_pat = False
    # Each PES's DTS is at or after the latest PCR written before it, on both tracks.
    latest_pcr = None
    pes_by_start = iter(parse_pes(packets, VIDEO_PID))
    audio_by_start = iter(parse_pes(packets, AUDIO_PID))
    for packet in packets:
        if packet.pcr is not None:
            latest_pcr = packet.pcr
        if packet.unit_start and packet.pid in (VIDEO_PID, AUDIO_PID):
            pes = next(pes_by_start if packet.pid == VIDEO_PID else audio_by_start)
            assert latest_pcr is not None and pes.decode_ts >= latest_pcr


def test_backwards_pcr_is_flagged_as_a_discontinuity() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    keyframe = MEDIA.video_frames[0]
    later = dataclasses.replace(keyframe, pts=10_080, dts=10_000)
    earlier = dataclasses.replace(keyframe, pts=80, dts=0)
    packets = parse_packets(muxer.psi() + muxer.mux(later) + muxer.psi() + muxer.mux(earlier))
    first, second = (p for p in packets if p.pid == VIDEO_PID and p.unit_start)
    assert not first.discontinuity and second.discontinuity
    assert second.pcr is not None and first.pcr is not None and second.pcr < first.pcr


def test_timestamps_wrap_at_33_bits() -> None:
    start = (TIMESTAMP_MODULUS - TIMESTAMP_OFFSET) // 90 - 500
    frames = [
        dataclasses.replace(f, pts=f.pts + start, dts=f.dts + start)
        for f in MEDIA.frames[:60]
        if f.track is TrackKind.AUDIO
    ]
    audio = parse_pes(parse_packets(mux_all(TsMuxer(None, MEDIA.audio), frames)), AUDIO_PID)
    assert [p.pts for p in audio] == [ts90(f.pts) for f in frames]
    assert audio[0].pts > audio[-1].pts  # wrapped


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.integers(0, 800), st.booleans())
def test_any_payload_size_is_packetised_and_stuffed_exactly(size: int, with_pcr: bool) -> None:
    muxer = TsMuxer(None, MEDIA.audio)
    muxer.mux(Frame(TrackKind.AUDIO, 0, 0, MILLISECONDS, True, b"\x21" * 4))
    data = bytes(range(256)) * 4
    frame = Frame(TrackKind.AUDIO, 5, 5, MILLISECONDS, True, data[:size])
    if with_pcr:
        muxer.psi()
    out = muxer.mux(frame)
    packets = parse_packets(out)
    (pes,) = parse_pes(packets, AUDIO_PID)
    assert pes.data[7:] == data[:size]
    assert (pes.pcr is not None) == with_pcr
    pes_size = 14 + 7 + size
    adaptation = 8 if with_pcr else 0
    assert len(packets) == -(-(pes_size + adaptation) // 184)


def test_video_frame_without_nal_units_yields_no_packets() -> None:
    muxer = TsMuxer(MEDIA.video, None)
    assert muxer.mux(Frame(TrackKind.VIDEO, 0, 0, MILLISECONDS, False, b"")) == b""


def test_timestamps_in_any_time_base() -> None:
    muxer = TsMuxer(None, MEDIA.audio)
    frame = Frame(TrackKind.AUDIO, 1024 * 3, 1024 * 3, Fraction(1, 44100), True, b"\x21")
    (pes,) = parse_pes(parse_packets(muxer.mux(frame)), AUDIO_PID)
    assert pes.pts == frame.rescale_pts(MPEG_TS_CLOCK) + TIMESTAMP_OFFSET


def test_pes_header_falls_back_to_unbounded_length() -> None:
    assert pes_header(0xC0, 0, 0, 0xFFFF)[4:6] == b"\x00\x00"
    assert pes_header(0xC0, 0, 0, 0xFFFF - 8)[4:6] == b"\xff\xff"


def test_misuse_and_bad_peer_data() -> None:
    with pytest.raises(LocalProtocolError):
        TsMuxer(None, MEDIA.audio).mux(MEDIA.video_frames[0])
    with pytest.raises(LocalProtocolError):
        TsMuxer(MEDIA.video, None).mux(MEDIA.audio_frames[0])
    with pytest.raises(UnsupportedCodec):
        TsMuxer(dataclasses.replace(MEDIA.video, codec="hevc"), None)
    with pytest.raises(UnsupportedCodec):
        TsMuxer(None, dataclasses.replace(MEDIA.audio, codec="opus"))
    with pytest.raises(RemoteProtocolError):
        TsMuxer(MEDIA.video, None).mux(dataclasses.replace(MEDIA.video_frames[1], pts=0, dts=40))


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=400), st.booleans(), st.integers(0, 10**9), st.integers(0, 1000))
def test_arbitrary_video_payloads_mux_or_raise_remote_protocol_error(
    data: bytes, keyframe: bool, dts: int, offset: int
) -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    try:
        out = muxer.mux(Frame(TrackKind.VIDEO, dts + offset, dts, MILLISECONDS, keyframe, data))
    except RemoteProtocolError:
        return
    assert len(out) % 188 == 0


def test_ffprobe_reads_our_stream(tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    path = tmp_path / "out.ts"
    path.write_bytes(mux_all(TsMuxer(MEDIA.video, MEDIA.audio), MEDIA.frames, psi_every=100))
    result = subprocess.run(
        [ffprobe, "-v", "warning", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stderr == ""
    report = json.loads(result.stdout)
    streams = {s["codec_type"]: s for s in report["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert streams["audio"]["codec_name"] == "aac" and int(streams["audio"]["sample_rate"]) == 44100
    for kind, frames in (("video", MEDIA.video_frames), ("audio", MEDIA.audio_frames)):
        index = streams[kind]["index"]
        packets = [p for p in report["packets"] if p["stream_index"] == index]
        # Same timestamps as the source on both tracks: audio and video stay in sync.
        assert [p["pts"] for p in packets] == [ts90(f.pts) for f in frames]
        assert [p["dts"] for p in packets] == [ts90(f.dts) for f in frames]
        dts = [p["dts"] for p in packets]
        assert dts == sorted(dts)


def test_ffmpeg_decodes_our_stream_without_errors(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    path = tmp_path / "out.ts"
    path.write_bytes(mux_all(TsMuxer(MEDIA.video, MEDIA.audio), MEDIA.frames))
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""


# --- audio grouping ---------------------------------------------------------------------------------------


def grouped_audio(packets: list[TsPacket]) -> list[tuple[int, list[bytes]]]:
    """Each audio PES as (PTS, the raw AAC frames of its ADTS units)."""
    return [(p.pts, [raw for _, raw in iter_adts_frames(p.data)]) for p in parse_pes(packets, AUDIO_PID)]


@pytest.mark.parametrize("per_pes", [2, 5, 8])
def test_grouped_audio_keeps_every_frame_and_each_pes_takes_its_first_frames_pts(per_pes: int) -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=per_pes)
    packets = parse_packets(mux_all(muxer, MEDIA.frames) + muxer.flush_audio())
    assert muxer.audio_pending == 0
    check_continuity(packets)
    groups = grouped_audio(packets)
    assert [raw for _, frames in groups for raw in frames] == [f.data for f in MEDIA.audio_frames]
    assert max(len(frames) for _, frames in groups) == per_pes
    frames_iter = iter(MEDIA.audio_frames)
    for pts, frames in groups:
        first = next(frames_iter)
        assert pts == ts90(first.pts)
        for _ in frames[1:]:
            next(frames_iter)
    # Every PES still arrives before its decoding time: DTS at or after the latest PCR (§2.4.2).
    latest_pcr = None
    starts = {VIDEO_PID: iter(parse_pes(packets, VIDEO_PID)), AUDIO_PID: iter(parse_pes(packets, AUDIO_PID))}
    for packet in packets:
        if packet.pcr is not None:
            latest_pcr = packet.pcr
        if packet.unit_start and packet.pid in starts:
            pes = next(starts[packet.pid])
            assert latest_pcr is not None and pes.decode_ts >= latest_pcr


def test_grouped_audio_only_program_keeps_pcrs_100_ms_apart() -> None:
    muxer = TsMuxer(None, MEDIA.audio, audio_frames_per_pes=8)
    frames = MEDIA.audio_frames[:200]
    packets = parse_packets(mux_all(muxer, frames) + muxer.flush_audio())
    groups = grouped_audio(packets)
    assert sum(len(f) for _, f in groups) == len(frames) and max(len(f) for _, f in groups) > 1
    pcrs = [p.pcr for p in parse_pes(packets, AUDIO_PID) if p.pcr is not None]
    assert all(0 < b - a <= 9000 for a, b in itertools.pairwise(pcrs))


def test_a_gap_or_jump_in_audio_time_starts_a_new_pes() -> None:
    frames = MEDIA.audio_frames[:12]
    gap = frames[4].dts + 500
    later = [dataclasses.replace(f, pts=f.pts + gap, dts=f.dts + gap) for f in frames[5:]]
    muxer = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=20)  # video's PCRs: no span cap
    groups = grouped_audio(parse_packets(mux_all(muxer, frames[:5] + later) + muxer.flush_audio()))
    assert [len(f) for _, f in groups] == [5, 7]
    assert groups[1][0] == ts90(later[0].pts)


def test_psi_and_flush_end_a_group() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=5)
    audio = MEDIA.audio_frames
    assert muxer.mux(audio[0]) == b"" and muxer.mux(audio[1]) == b"" and muxer.audio_pending == 2
    keyframe = next(f for f in MEDIA.video_frames if f.keyframe)
    packets = parse_packets(
        muxer.mux(dataclasses.replace(keyframe, pts=audio[1].pts, dts=audio[1].dts), psi=True)
    )
    # The held audio comes first, then the PSI that starts the segment, then the keyframe.
    assert packets[0].pid == AUDIO_PID and [p.pid for p in packets].index(0) > 0
    assert muxer.audio_pending == 0 and muxer.flush_audio() == b""


def test_audio_grouping_errors_leave_the_group_intact() -> None:
    muxer = TsMuxer(None, MEDIA.audio, audio_frames_per_pes=5)
    muxer.mux(MEDIA.audio_frames[0])
    with pytest.raises(RemoteProtocolError):
        muxer.mux(Frame(TrackKind.AUDIO, 30, 30, MILLISECONDS, True, bytes(9000)))
    assert muxer.audio_pending == 1
    with pytest.raises(ValueError):
        TsMuxer(None, MEDIA.audio, audio_frames_per_pes=0)


def test_ffprobe_reads_grouped_audio(tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    muxer = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=5)
    path = tmp_path / "grouped.ts"
    path.write_bytes(mux_all(muxer, MEDIA.frames) + muxer.flush_audio())
    result = subprocess.run(
        [ffprobe, "-v", "warning", "-show_packets", "-select_streams", "a", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stderr == ""
    packets = json.loads(result.stdout)["packets"]
    assert len(packets) == len(MEDIA.audio_frames)
    # ffprobe derives the later frames of a PES from the AAC frame duration; the source's millisecond
    # timestamps differ from that by their rounding only.
    for packet, frame in zip(packets, MEDIA.audio_frames, strict=True):
        assert abs(int(packet["pts"]) - ts90(frame.pts)) <= 180
        assert int(packet["size"]) == len(frame.data) + 7  # with its ADTS header


def reference_packets(pid: int, cc: int, payload: bytes, adaptation: bytes) -> bytes:
    """ISO/IEC 13818-1 §2.4.3.2 packetisation one packet at a time, as plainly as possible."""
    out = []
    offset = 0
    first = True
    while first or offset < len(payload):
        field = bytes((len(adaptation),)) + adaptation if first and adaptation else b""
        room = 184 - len(field)
        chunk = payload[offset : offset + room]
        offset += len(chunk)
        if len(chunk) < room:  # the last packet: stuffing inside the adaptation field
            missing = room - len(chunk)
            if field:
                field = bytes((field[0] + missing,)) + field[1:] + b"\xff" * missing
            elif missing == 1:
                field = b"\x00"
            else:
                field = bytes((missing - 1, 0)) + b"\xff" * (missing - 2)
        control = 0x30 if field else 0x10
        out.append(bytes((0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF, control | cc)) + field + chunk)
        cc = (cc + 1) & 0xF
        first = False
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 400),
    st.one_of(st.integers(0, 3000), st.integers(23_000, 48_000)),
    st.integers(0, 20),
    st.sampled_from([b"", b"\x40", bytes(7)]),
    st.integers(0, 15),
)
def test_packetizing_whole_or_from_parts_matches_the_reference(
    head_size: int, body_size: int, margin: int, adaptation: bytes, cc: int
) -> None:
    head = bytes(range(256)) * 2
    body = bytes((i * 7) & 0xFF for i in range(body_size + 2 * margin))
    start, end = margin, margin + body_size
    if not head_size and not body_size:
        return
    payload = head[:head_size] + body[start:end]
    expected = reference_packets(VIDEO_PID, cc, payload, adaptation)
    joined, parts, into = _PidWriter(VIDEO_PID), _PidWriter(VIDEO_PID), _PidWriter(VIDEO_PID)
    joined.cc = parts.cc = into.cc = cc
    assert joined.packetize(payload, adaptation) == expected
    assert parts.packetize_parts(head[:head_size], body, start, end, adaptation) == expected
    pieces: list[bytes | bytearray] = [b"before"]
    assert into.packetize_parts_into(pieces, head[:head_size], body, start, end, adaptation) == len(expected)
    assert b"".join(pieces) == b"before" + expected
    assert parts.cc == joined.cc == into.cc == (cc + len(expected) // 188) & 0xF


@pytest.mark.parametrize("size", [0, 1, 162, 163, 164, 346, 347, 348, 530, 531, 1000, 8184])
@pytest.mark.parametrize("offset", [0, 20])
def test_audio_pes_is_its_pes_header_adts_header_and_frame(size: int, offset: int) -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    data = bytes((i * 5) & 0xFF for i in range(size))
    out = muxer.mux(Frame(TrackKind.AUDIO, 1000 + offset, 1000, MILLISECONDS, True, data))
    header = pes_header(0xC0, ts90(1000 + offset), ts90(1000), size + 7) + AdtsWriter(MEDIA.audio).header(
        size
    )
    assert out == _PidWriter(AUDIO_PID).packetize(header + data)


@pytest.mark.parametrize("audio_frames_per_pes", [1, 3])
def test_video_muxed_into_pieces_matches_mux(audio_frames_per_pes: int) -> None:
    joined = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=audio_frames_per_pes)
    into = TsMuxer(MEDIA.video, MEDIA.audio, audio_frames_per_pes=audio_frames_per_pes)
    for index, frame in enumerate(MEDIA.frames[:300]):
        psi = index % 70 == 0
        if frame.track is TrackKind.VIDEO:
            pieces: list[bytes | bytearray] = []
            size = into.mux_video_into(pieces, frame, psi=psi)
            assert b"".join(pieces) == joined.mux(frame, psi=psi)
            assert size == sum(map(len, pieces))
        else:
            assert into.mux(frame, psi=psi) == joined.mux(frame, psi=psi)
    with pytest.raises(LocalProtocolError):
        into.mux_video_into([], MEDIA.audio_frames[0])


def test_an_aac_frame_too_large_for_adts_is_refused_without_a_trace() -> None:
    muxer = TsMuxer(MEDIA.video, MEDIA.audio)
    with pytest.raises(RemoteProtocolError):
        muxer.mux(Frame(TrackKind.AUDIO, 0, 0, MILLISECONDS, True, bytes(8185)))
    first = parse_packets(muxer.mux(MEDIA.audio_frames[0]))[0]
    assert first.cc == 0


def test_a_pes_longer_than_the_counter_run_is_still_counted_right() -> None:
    payload = bytes(range(256)) * 4000  # 1 MB: 5566 packets, more than the precomputed counter run
    writer = _PidWriter(VIDEO_PID)
    writer.cc = 9
    assert writer.packetize(payload, bytes(7)) == reference_packets(VIDEO_PID, 9, payload, bytes(7))
