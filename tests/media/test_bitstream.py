"""BitReader fields and exp-Golomb codes; emulation-prevention removal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError
from streamit.media.bitstream import BitReader, remove_emulation_prevention
from tests.media.bit_writer import BitWriter


def test_fixed_width_fields() -> None:
    bits = BitReader(b"\xa5\x0f\xff")
    assert bits.read(1) == 1
    assert bits.read(3) == 0b010
    assert bits.flag() is False
    bits.byte_align()
    assert bits.position == 8
    bits.byte_align()
    assert bits.position == 8
    assert bits.read(12) == 0x0FF
    assert bits.remaining == 4
    bits.skip(4)
    with pytest.raises(RemoteProtocolError, match="SPS is truncated"):
        BitReader(b"\x00", "SPS").read(9)


@pytest.mark.parametrize(
    ("data", "ue"),
    [(b"\x80", 0), (b"\x40", 1), (b"\x60", 2), (b"\x20", 3), (b"\x28", 4), (b"\x38", 6), (b"\x10", 7)],
)
def test_exp_golomb_table(data: bytes, ue: int) -> None:
    # ITU-T H.264 Table 9-2: 1 → 0, 010 → 1, 011 → 2, 00100 → 3, 00101 → 4, 00111 → 6, 0001000 → 7.
    assert BitReader(data).read_ue() == ue


@pytest.mark.parametrize(("code", "se"), [(0, 0), (1, 1), (2, -1), (3, 2), (4, -2), (9, 5)])
def test_signed_exp_golomb_mapping(code: int, se: int) -> None:
    # ITU-T H.264 Table 9-3.
    assert BitReader(BitWriter().ue(code).to_bytes()).read_se() == se


def test_exp_golomb_limits() -> None:
    assert BitReader(BitWriter().ue((1 << 32) - 2).to_bytes()).read_ue() == (1 << 32) - 2
    with pytest.raises(RemoteProtocolError, match="exp-Golomb"):
        BitReader(bytes(5)).read_ue()
    with pytest.raises(RemoteProtocolError, match="truncated"):
        BitReader(b"\x01").read_ue()  # 7 zeros then a 1, but the 7 value bits are missing
    with pytest.raises(RemoteProtocolError):
        BitReader(b"").read_ue()


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=-(1 << 20), max_value=1 << 20)), max_size=30))
def test_exp_golomb_round_trip(values: list[tuple[bool, int]]) -> None:
    writer = BitWriter()
    for signed, value in values:
        if signed:
            writer.se(value)
        else:
            writer.ue(abs(value))
    reader = BitReader(writer.to_bytes())
    assert [reader.read_se() if signed else reader.read_ue() for signed, _ in values] == [
        value if signed else abs(value) for signed, value in values
    ]


@pytest.mark.parametrize(
    ("nal", "rbsp"),
    [
        (b"\x00\x00\x03\x01", b"\x00\x00\x01"),
        (b"\x00\x00\x03\x00\x00\x03\x00", b"\x00\x00\x00\x00\x00"),
        (b"\x00\x00\x03\x03", b"\x00\x00\x03"),
        (b"\x00\x03\x00\x00\x03", b"\x00\x03\x00\x00"),
        (b"\x67\x64\x00\x1f", b"\x67\x64\x00\x1f"),
    ],
)
def test_remove_emulation_prevention(nal: bytes, rbsp: bytes) -> None:
    assert remove_emulation_prevention(nal) == rbsp
