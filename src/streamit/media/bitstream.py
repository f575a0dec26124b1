"""Big-endian bit reading for codec headers (H.264 parameter sets, AAC AudioSpecificConfig).

Headers are short (tens of bytes) and parsed once per configuration, so the reader converts its input
to one Python integer and extracts fields with shifts instead of looping over bytes.
"""

from __future__ import annotations

from streamit.errors import RemoteProtocolError

_MAX_EXP_GOLOMB_ZEROS = 31


def remove_emulation_prevention(nal: bytes) -> bytes:
    """The RBSP of a NAL unit: ``nal`` without its emulation-prevention bytes.

    ITU-T H.264 §7.4.1: the encoder inserts ``0x03`` after every ``0x00 0x00`` that would otherwise be
    followed by a byte ``<= 0x03``; a non-overlapping left-to-right replacement undoes exactly that,
    because the zero count restarts after each removed byte.
    """
    if b"\x00\x00\x03" not in nal:
        return nal
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class BitReader:
    """Reads unsigned/signed fixed-width fields and exp-Golomb codes, most significant bit first.

    Reading past the end raises :class:`RemoteProtocolError` with ``what`` in the message, because the
    bytes always come from a peer.
    """

    __slots__ = ("_bits", "_position", "_total", "what")

    def __init__(self, data: bytes, what: str = "bitstream") -> None:
        self._bits = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self._position = 0
        self.what = what

    @property
    def position(self) -> int:
        """Number of bits consumed so far."""
        return self._position

    @property
    def remaining(self) -> int:
        """Number of bits not yet consumed."""
        return self._total - self._position

    def read(self, count: int) -> int:
        """The next ``count`` bits as an unsigned integer (``u(n)``)."""
        end = self._position + count
        if end > self._total:
            raise RemoteProtocolError(f"{self.what} is truncated (needs {end} bits, has {self._total})")
        self._position = end
        return (self._bits >> (self._total - end)) & ((1 << count) - 1)

    def flag(self) -> bool:
        """The next bit as a boolean (``u(1)``)."""
        return self.read(1) == 1

    def skip(self, count: int) -> None:
        """Consume ``count`` bits."""
        self.read(count)

    def byte_align(self) -> None:
        """Skip to the next byte boundary."""
        self.read(-self._position % 8)

    def read_ue(self) -> int:
        """An unsigned exp-Golomb code ``ue(v)`` (ITU-T H.264 §9.1)."""
        left = self._total - self._position
        rest = self._bits & ((1 << left) - 1)
        zeros = left - rest.bit_length()
        if zeros > _MAX_EXP_GOLOMB_ZEROS:
            # §9.1 codes of conforming streams fit 32 bits; more zeros (or none left) is corrupt input.
            raise RemoteProtocolError(f"{self.what} has an invalid exp-Golomb code")
        self._position += zeros
        return self.read(zeros + 1) - 1

    def read_se(self) -> int:
        """A signed exp-Golomb code ``se(v)`` (ITU-T H.264 §9.1.1)."""
        code = self.read_ue()
        return (code + 1) >> 1 if code & 1 else -(code >> 1)
