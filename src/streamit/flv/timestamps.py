"""Unwrapping of 32-bit RTMP/FLV millisecond timestamps into unbounded integers."""

from __future__ import annotations

from streamit.errors import LocalProtocolError

_WRAP = 1 << 32
_HALF = 1 << 31
_LOW_32_BITS = _WRAP - 1
_NOT_32_BITS = -_WRAP
"""Set in every int outside 0 .. 2^32 - 1, negative ones included."""


class TimestampUnwrapper:
    """Turns a track's 32-bit millisecond timestamps (which wrap after ~49.7 days) into unbounded ints.

    Each timestamp is placed at the unbounded value nearest to the previous one that has the same low
    32 bits: a backwards jump of more than 2^31 is therefore a wrap forward, and a forward jump of more
    than 2^31 is a late timestamp from before the last wrap.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    @property
    def last(self) -> int | None:
        """The last unwrapped timestamp, or ``None`` before the first."""
        return self._last

    def unwrap(self, timestamp: int) -> int:
        """The unbounded value of the 32-bit ``timestamp``."""
        value = self._last = unwrap_timestamp(timestamp, self._last)
        return value


FAST_LIMIT = _HALF
"""While both the last value and a timestamp lie in ``0 .. FAST_LIMIT - 1`` and the timestamp does not go
back, its unbounded value is the timestamp itself: callers on a per-frame path test this before calling
:func:`unwrap_timestamp`, whose big-integer masks cost several times more."""


def unwrap_timestamp(timestamp: int, last: int | None) -> int:
    """The unbounded value of the 32-bit ``timestamp`` nearest to ``last`` (the previous unbounded value,
    ``None`` for the first timestamp), as :meth:`TimestampUnwrapper.unwrap` places it."""
    if timestamp & _NOT_32_BITS:
        raise LocalProtocolError(f"timestamp {timestamp} is not a 32-bit value")
    if last is None:
        return timestamp
    delta = (timestamp - last) & _LOW_32_BITS
    return last + delta if delta < _HALF else last + delta - _WRAP
