"""Admission limits: connections in total and per IP, failed publishes per IP in a sliding window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamit.servers.limits import ConnectionLimiter, FailureLimiter


def test_connections_are_limited_per_ip_and_in_total() -> None:
    limiter = ConnectionLimiter(max_total=3, max_per_ip=2)
    assert limiter.admit("192.0.2.1") is None
    assert limiter.admit("192.0.2.1") is None
    refusal = limiter.admit("192.0.2.1")
    assert refusal is not None and "192.0.2.1" in refusal and "2 connections" in refusal
    assert limiter.admit("192.0.2.2") is None
    refusal = limiter.admit("192.0.2.3")
    assert refusal is not None and "3 connections" in refusal
    assert limiter.total == 3

    limiter.release("192.0.2.1")
    assert limiter.open_from("192.0.2.1") == 1
    assert limiter.admit("192.0.2.3") is None


def test_release_of_an_unknown_address_changes_nothing() -> None:
    limiter = ConnectionLimiter(max_total=1, max_per_ip=1)
    limiter.release("192.0.2.9")
    assert limiter.total == 0
    assert limiter.admit("192.0.2.9") is None
    assert limiter.admit("192.0.2.8") is not None


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=200))
def test_connection_counts_match_admissions(operations: list[tuple[bool, int]]) -> None:
    limiter = ConnectionLimiter(max_total=8, max_per_ip=3)
    open_connections: dict[str, int] = {}
    for connect, host in operations:
        ip = f"198.51.100.{host}"
        if connect:
            if limiter.admit(ip) is None:
                open_connections[ip] = open_connections.get(ip, 0) + 1
        elif open_connections.get(ip):
            limiter.release(ip)
            open_connections[ip] -= 1
        assert limiter.total == sum(open_connections.values()) <= 8
        assert all(limiter.open_from(a) == n <= 3 for a, n in open_connections.items())


def test_failures_block_after_the_limit_until_the_window_passes() -> None:
    limiter = FailureLimiter(limit=3, window=60)
    assert limiter.blocked_for("192.0.2.1", 0) == 0
    assert [limiter.record_failure("192.0.2.1", t) for t in (0, 10, 20)] == [1, 2, 3]
    assert limiter.blocked_for("192.0.2.1", 21) == 39  # until the failure at 0 leaves the window
    assert limiter.blocked_for("192.0.2.2", 21) == 0  # other addresses are not affected
    assert limiter.blocked_for("192.0.2.1", 60) == 0
    limiter.record_failure("192.0.2.1", 61)
    assert limiter.blocked_for("192.0.2.1", 62) == 8  # failures at 10, 20, 61: blocked until 70


def test_failures_forget_quiet_addresses_and_stay_bounded() -> None:
    limiter = FailureLimiter(limit=2, window=10, max_keys=100)
    for host in range(1000):
        limiter.record_failure(f"10.0.{host // 256}.{host % 256}", host * 0.001)
    assert len(limiter) == 100
    assert limiter.blocked_for("10.0.3.231", 2) == 0  # one failure only
    limiter.blocked_for("10.0.3.231", 100)
    assert len(limiter) == 99  # expired entries are dropped when looked at


@given(st.lists(st.floats(0, 1000, allow_nan=False), max_size=100), st.integers(1, 5))
def test_blocked_only_with_limit_failures_in_the_window(times: list[float], limit: int) -> None:
    limiter = FailureLimiter(limit=limit, window=30)
    times = sorted(times)
    for t in times:
        limiter.record_failure("203.0.113.5", t)
    now = times[-1] if times else 0.0
    recent = [t for t in times if now - t < 30]
    assert (limiter.blocked_for("203.0.113.5", now) > 0) == (len(recent) >= limit)
