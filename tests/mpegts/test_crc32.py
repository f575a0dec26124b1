from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.mpegts.crc32 import crc32_mpeg2
from tests.mpegts.flv_fixture import FIXTURES
from tests.mpegts.ts_demux import parse_packets


def test_check_value() -> None:
    # The catalogued check value of CRC-32/MPEG-2 over the ASCII digits 1..9.
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7
    assert crc32_mpeg2(b"") == 0xFFFFFFFF


def test_matches_ffmpeg_psi_sections() -> None:
    packets = parse_packets((FIXTURES / "ffmpeg-psi.ts").read_bytes())
    checked = 0
    for packet in packets:
        if not packet.unit_start:
            continue
        raw = packet.payload[1 + packet.payload[0] :]
        length = ((raw[1] & 0x0F) << 8) | raw[2]
        section = raw[: 3 + length]
        assert crc32_mpeg2(section[:-4]) == struct.unpack(">I", section[-4:])[0]
        checked += 1
    assert checked >= 3  # PAT, PMT and SDT


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.binary(max_size=300))
def test_section_with_its_crc_checks_to_zero(data: bytes) -> None:
    assert crc32_mpeg2(data + struct.pack(">I", crc32_mpeg2(data))) == 0
