"""A hypothesis strategy that mutates real captured bytes, the way coverage-guided fuzzers do.

Random bytes rarely get past the first length check; a real capture with a few bits flipped, a length
field set to an extreme, a range deleted or duplicated, or the tail of another capture spliced in, reaches
the deep states where parsers keep partial messages and reference tables.  Shrinking works on the choice
of seed and on each mutation, so a failure shrinks to few, small mutations of one seed.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x03, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFE, 0xFF)
INTERESTING_INTEGERS = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0xFFFFFFFF)
"""Boundaries of the 8-, 16-, 24- and 32-bit length and timestamp fields of RTMP, AMF, FLV and ADTS."""
MAX_MUTATIONS = 6
MAX_INSERT = 32
MAX_RANGE = 256


@st.composite
def mutate(draw: st.DrawFn, data: bytes, others: Sequence[bytes]) -> bytes:
    """One mutation of ``data`` (``others`` may be spliced in)."""
    out = bytearray(data)
    size = len(out)
    kind = draw(
        st.sampled_from(("flip", "byte", "integer", "insert", "delete", "duplicate", "truncate", "splice"))
    )
    at = draw(st.integers(0, size))
    if kind == "flip" and size:
        at = min(at, size - 1)
        out[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "byte" and size:
        out[min(at, size - 1)] = draw(st.sampled_from(INTERESTING_BYTES))
    elif kind == "integer":
        width = draw(st.sampled_from((1, 2, 3, 4)))
        value = draw(st.sampled_from(INTERESTING_INTEGERS)) & ((1 << (8 * width)) - 1)
        order = draw(st.sampled_from(("big", "little")))
        out[at : at + width] = value.to_bytes(width, order)
    elif kind == "insert":
        out[at:at] = draw(st.binary(min_size=1, max_size=MAX_INSERT))
    elif kind == "delete":
        del out[at : at + draw(st.integers(1, MAX_RANGE))]
    elif kind == "duplicate":
        length = draw(st.integers(1, MAX_RANGE))
        out[at:at] = out[at : at + length]
    elif kind == "truncate":
        del out[at:]
    elif kind == "splice" and others:
        other = draw(st.sampled_from(others))
        cut = draw(st.integers(0, len(other)))
        out[at:] = other[cut:]
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """A seed with 0 to :data:`MAX_MUTATIONS` mutations applied one after the other."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, MAX_MUTATIONS))):
        data = draw(mutate(data, seeds))
    return data


def peer_bytes(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly mutated seeds, some plain random bytes (for the very first parsing steps)."""
    return st.one_of(mutated(seeds), mutated(seeds), mutated(seeds), st.binary(max_size=512))
