"""CRC-32/MPEG-2, the checksum that ends every PSI section (ISO/IEC 13818-1 Annex A)."""

from __future__ import annotations

_POLYNOMIAL = 0x04C11DB7


def _build_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _POLYNOMIAL) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_TABLE = _build_table()


def crc32_mpeg2(data: bytes) -> int:
    """The CRC-32/MPEG-2 of ``data``: polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection.

    A section followed by its own CRC checks to 0, which is how decoders verify it.
    """
    crc = 0xFFFFFFFF
    table = _TABLE
    # PSI sections are a few dozen bytes and are rebuilt only when the program changes: not a hot path.
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc
