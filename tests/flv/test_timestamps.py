"""TimestampUnwrapper: 32-bit millisecond timestamps to unbounded integers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamit.errors import LocalProtocolError
from streamit.flv import TimestampUnwrapper

WRAP = 1 << 32


def test_first_timestamp_is_taken_as_is() -> None:
    clock = TimestampUnwrapper()
    assert clock.last is None
    assert clock.unwrap(16_780_000) == 16_780_000
    assert clock.last == 16_780_000


def test_forward_wrap() -> None:
    clock = TimestampUnwrapper()
    assert [clock.unwrap(t) for t in (WRAP - 40, WRAP - 7, 26, 59)] == [
        WRAP - 40,
        WRAP - 7,
        WRAP + 26,
        WRAP + 59,
    ]


def test_twice_wrapped() -> None:
    clock = TimestampUnwrapper()
    values = [clock.unwrap(t % WRAP) for t in range(0, 3 * WRAP, WRAP // 3)]
    assert values == list(range(0, 3 * WRAP, WRAP // 3))


def test_small_backward_jump_is_not_a_wrap() -> None:
    clock = TimestampUnwrapper()
    assert [clock.unwrap(t) for t in (5000, 4000, 1 << 31)] == [5000, 4000, 1 << 31]
    # Exactly 2^31 back is still a backward jump; only more than that means a wrap.
    assert clock.unwrap(0) == 0
    assert clock.unwrap(1 << 30) == 1 << 30
    assert clock.unwrap((1 << 31) + (1 << 29)) == (1 << 31) + (1 << 29)
    # Back to 2^29 - 1 is a backward jump of 2^31 + 1, more than 2^31: a wrap.
    assert clock.unwrap((1 << 29) - 1) == WRAP + (1 << 29) - 1


def test_late_timestamp_from_before_the_wrap() -> None:
    clock = TimestampUnwrapper()
    clock.unwrap(WRAP - 10)
    clock.unwrap(30)
    assert clock.unwrap(WRAP - 5) == WRAP - 5


@pytest.mark.parametrize("value", [-1, WRAP])
def test_rejects_values_outside_32_bits(value: int) -> None:
    with pytest.raises(LocalProtocolError):
        TimestampUnwrapper().unwrap(value)


@given(
    st.integers(min_value=0, max_value=1 << 40),
    st.lists(st.integers(min_value=-(1 << 30), max_value=1 << 30)),
)
def test_recovers_any_path_of_moderate_steps(start: int, steps: list[int]) -> None:
    clock = TimestampUnwrapper()
    value = start
    assert clock.unwrap(value % WRAP) == value % WRAP
    offset = value - value % WRAP
    for step in steps:
        value += step
        assert clock.unwrap(value % WRAP) + offset == value
