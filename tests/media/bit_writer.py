"""A test-side bit writer for building codec headers (SPS, AudioSpecificConfig) field by field."""

from __future__ import annotations


class BitWriter:
    """Accumulates big-endian bit fields and exp-Golomb codes."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def u(self, count: int, value: int) -> BitWriter:
        assert 0 <= value < (1 << count)
        self.value = (self.value << count) | value
        self.length += count
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def to_bytes(self, trailing_one: bool = False) -> bytes:
        """The bits padded with zeros to a byte (after a stop bit if ``trailing_one``)."""
        value, length = self.value, self.length
        if trailing_one:
            value, length = (value << 1) | 1, length + 1
        pad = -length % 8
        return (value << pad).to_bytes((length + pad) // 8, "big")
