"""Program-specific information: the PAT and PMT sections (ISO/IEC 13818-1 §2.4.4)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from streamit.mpegts.crc32 import crc32_mpeg2

PAT_TABLE_ID = 0x00
PMT_TABLE_ID = 0x02
NULL_PID = 0x1FFF
"""Used as PCR_PID when a program carries no PCR (ISO/IEC 13818-1 §2.4.4.9)."""


def _section(table_id: int, table_id_extension: int, version: int, body: bytes) -> bytes:
    # section_length counts the bytes after it: 5 bytes of extension/version/section numbers, body, CRC.
    section_length = 5 + len(body) + 4
    header = struct.pack(
        ">BHHBBB",
        table_id,
        0xB000 | section_length,  # section_syntax_indicator=1, '0', reserved '11'
        table_id_extension,
        0xC1 | ((version & 0x1F) << 1),  # reserved '11', version_number, current_next_indicator=1
        0,  # section_number
        0,  # last_section_number
    )
    section = header + body
    return section + struct.pack(">I", crc32_mpeg2(section))


def pat_section(transport_stream_id: int, program_number: int, pmt_pid: int, version: int = 0) -> bytes:
    """A program association section listing one program (ISO/IEC 13818-1 §2.4.4.3)."""
    body = struct.pack(">HH", program_number, 0xE000 | pmt_pid)
    return _section(PAT_TABLE_ID, transport_stream_id, version, body)


def pmt_section(
    program_number: int, pcr_pid: int, streams: Sequence[tuple[int, int]], version: int = 0
) -> bytes:
    """A TS program map section (ISO/IEC 13818-1 §2.4.4.8).

    ``streams`` holds ``(stream_type, elementary_PID)`` pairs; no descriptors are written.
    """
    body = struct.pack(">HH", 0xE000 | pcr_pid, 0xF000)  # program_info_length = 0
    body += b"".join(struct.pack(">BHH", stream_type, 0xE000 | pid, 0xF000) for stream_type, pid in streams)
    return _section(PMT_TABLE_ID, program_number, version, body)
