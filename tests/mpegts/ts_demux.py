"""Test-only MPEG-TS demuxer, independent of the muxer, to check what the muxer wrote."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamit.mpegts.crc32 import crc32_mpeg2


@dataclass
class TsPacket:
    pid: int
    unit_start: bool
    cc: int
    has_payload: bool
    payload: bytes
    adaptation_length: int | None = None
    random_access: bool = False
    discontinuity: bool = False
    pcr: int | None = None


@dataclass
class Pes:
    pid: int
    stream_id: int
    packet_length: int
    pts: int
    dts: int | None
    data: bytes
    random_access: bool
    pcr: int | None
    packets: int

    @property
    def decode_ts(self) -> int:
        return self.pts if self.dts is None else self.dts


@dataclass
class Section:
    table_id: int
    table_id_extension: int
    version: int
    body: bytes


@dataclass
class Pmt:
    pcr_pid: int
    version: int
    streams: list[tuple[int, int]] = field(default_factory=list)


def parse_packets(data: bytes) -> list[TsPacket]:
    assert len(data) % 188 == 0, f"{len(data)} is not a multiple of 188"
    packets = []
    for offset in range(0, len(data), 188):
        raw = data[offset : offset + 188]
        assert raw[0] == 0x47, f"bad sync byte at {offset}"
        pid = ((raw[1] & 0x1F) << 8) | raw[2]
        control = (raw[3] >> 4) & 0x3
        packet = TsPacket(pid, bool(raw[1] & 0x40), raw[3] & 0x0F, bool(control & 1), b"")
        position = 4
        if control & 2:
            length = raw[4]
            packet.adaptation_length = length
            if length:
                flags = raw[5]
                packet.discontinuity = bool(flags & 0x80)
                packet.random_access = bool(flags & 0x40)
                if flags & 0x10:
                    base = int.from_bytes(raw[6:11], "big") >> 7
                    assert raw[10] & 0x7E == 0x7E, "PCR reserved bits"
                    assert int.from_bytes(raw[10:12], "big") & 0x1FF == 0, "PCR extension"
                    packet.pcr = base
                assert set(raw[6 + (6 if flags & 0x10 else 0) : 5 + length]) <= {0xFF}, "stuffing"
            position = 5 + length
        assert position <= 188
        if packet.has_payload:
            packet.payload = raw[position:]
        else:
            assert position == 188
        packets.append(packet)
    return packets


def check_continuity(packets: list[TsPacket], start: dict[int, int] | None = None) -> dict[int, int]:
    """Assert CCs advance by one per payload packet on every PID; returns the last CC per PID."""
    last: dict[int, int] = dict(start or {})
    for packet in packets:
        if not packet.has_payload:
            continue
        if packet.pid in last:
            assert packet.cc == (last[packet.pid] + 1) % 16, f"CC jump on PID {packet.pid:#x}"
        last[packet.pid] = packet.cc
    return last


def decode_timestamp(raw: bytes) -> int:
    assert raw[0] & 1 and raw[2] & 1 and raw[4] & 1, "marker bits"
    return (
        ((raw[0] >> 1) & 0x07) << 30
        | (int.from_bytes(raw[1:3], "big") >> 1) << 15
        | (int.from_bytes(raw[3:5], "big") >> 1)
    )


def parse_pes(packets: list[TsPacket], pid: int) -> list[Pes]:
    result: list[Pes] = []
    current: list[TsPacket] = []

    def finish() -> None:
        if not current:
            return
        payload = b"".join(p.payload for p in current)
        assert payload[:3] == b"\x00\x00\x01"
        stream_id = payload[3]
        packet_length = int.from_bytes(payload[4:6], "big")
        assert payload[6] & 0xC0 == 0x80
        flags = payload[7] >> 6
        header_length = payload[8]
        pts = decode_timestamp(payload[9:14])
        dts = None
        if flags == 3:
            assert payload[9] >> 4 == 3 and payload[14] >> 4 == 1
            dts = decode_timestamp(payload[14:19])
            assert header_length == 10
        else:
            assert flags == 2 and payload[9] >> 4 == 2 and header_length == 5
        if packet_length:
            assert packet_length == len(payload) - 6, "PES_packet_length"
        result.append(
            Pes(
                pid,
                stream_id,
                packet_length,
                pts,
                dts,
                payload[9 + header_length :],
                current[0].random_access,
                current[0].pcr,
                len(current),
            )
        )

    for packet in packets:
        if packet.pid != pid or not packet.has_payload:
            continue
        if packet.unit_start:
            finish()
            current = [packet]
        else:
            assert current, "payload before the first unit start"
            current.append(packet)
    finish()
    return result


def parse_sections(packets: list[TsPacket], pid: int) -> list[Section]:
    sections = []
    for packet in packets:
        if packet.pid != pid:
            continue
        assert packet.unit_start
        payload = packet.payload
        pointer = payload[0]
        raw = payload[1 + pointer :]
        length = ((raw[1] & 0x0F) << 8) | raw[2]
        section = raw[: 3 + length]
        assert raw[3 + length :].strip(b"\xff") == b"", "stuffing after section"
        assert crc32_mpeg2(section) == 0, "CRC"
        sections.append(Section(raw[0], int.from_bytes(raw[3:5], "big"), (raw[5] >> 1) & 0x1F, section[8:-4]))
    return sections


def parse_pmt(section: Section) -> Pmt:
    body = section.body
    pmt = Pmt(int.from_bytes(body[0:2], "big") & 0x1FFF, section.version)
    info_length = int.from_bytes(body[2:4], "big") & 0x0FFF
    offset = 4 + info_length
    while offset < len(body):
        stream_type = body[offset]
        pid = int.from_bytes(body[offset + 1 : offset + 3], "big") & 0x1FFF
        es_info = int.from_bytes(body[offset + 3 : offset + 5], "big") & 0x0FFF
        pmt.streams.append((stream_type, pid))
        offset += 5 + es_info
    return pmt


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B stream written with four-byte start codes, as the muxer does."""
    assert data.startswith(b"\x00\x00\x00\x01")
    return data.split(b"\x00\x00\x00\x01")[1:]
