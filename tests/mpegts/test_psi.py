from __future__ import annotations

from streamit.mpegts.crc32 import crc32_mpeg2
from streamit.mpegts.psi import NULL_PID, pat_section, pmt_section
from tests.mpegts.flv_fixture import FIXTURES
from tests.mpegts.ts_demux import parse_packets


def test_pat_layout() -> None:
    section = pat_section(1, 1, 0x1000)
    assert section[:8] == bytes.fromhex("00b00d0001c10000")
    assert section[8:12] == bytes.fromhex("0001f000")
    assert len(section) == 3 + 13
    assert crc32_mpeg2(section) == 0


def test_ffmpeg_pat_is_reproduced_byte_for_byte() -> None:
    # ffmpeg writes transport_stream_id 1, program 1 on PMT PID 0x1000, version 0: the same PAT as ours.
    packets = parse_packets((FIXTURES / "ffmpeg-psi.ts").read_bytes())
    pat = next(p for p in packets if p.pid == 0)
    assert pat.payload[1 : 1 + 16] == pat_section(1, 1, 0x1000)


def test_pmt_lists_streams_pcr_and_version() -> None:
    section = pmt_section(1, 0x100, [(0x1B, 0x100), (0x0F, 0x101)], version=3)
    assert section[0] == 0x02
    assert (section[5] >> 1) & 0x1F == 3 and section[5] & 1 == 1
    assert int.from_bytes(section[8:10], "big") & 0x1FFF == 0x100
    assert section[12:22] == bytes.fromhex("1be100f0000fe101f000")
    assert crc32_mpeg2(section) == 0


def test_empty_program_has_no_pcr_pid() -> None:
    section = pmt_section(1, NULL_PID, [])
    assert int.from_bytes(section[8:10], "big") & 0x1FFF == 0x1FFF
    assert ((section[1] & 0x0F) << 8) | section[2] == len(section) - 3
