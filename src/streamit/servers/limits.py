"""Admission limits of the ingest port: connections per node and per IP, and failed publishes per IP.

Pure bookkeeping (the caller passes ``now``); memory stays bounded however many addresses show up.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class ConnectionLimiter:
    """Counts open connections in total and per IP address.

    :meth:`admit` says whether one more connection from ``ip`` fits; an admitted connection must be
    :meth:`release`\\ d exactly once.  Only addresses with open connections are tracked, so the table never
    holds more than ``max_total`` entries.
    """

    def __init__(self, *, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self._per_ip: dict[str, int] = {}

    def admit(self, ip: str) -> str | None:
        """Count a new connection from ``ip`` and return None, or return why it is refused (not counted)."""
        if self.total >= self.max_total:
            return f"node is at its limit of {self.max_total} connections"
        current = self._per_ip.get(ip, 0)
        if current >= self.max_per_ip:
            return f"{ip} is at its limit of {self.max_per_ip} connections"
        self._per_ip[ip] = current + 1
        self.total += 1
        return None

    def release(self, ip: str) -> None:
        """Forget one admitted connection from ``ip``."""
        current = self._per_ip.get(ip, 0)
        if current <= 0:
            return
        self.total -= 1
        if current == 1:
            del self._per_ip[ip]
        else:
            self._per_ip[ip] = current - 1

    def open_from(self, ip: str) -> int:
        """Connections from ``ip`` now open."""
        return self._per_ip.get(ip, 0)


class FailureLimiter:
    """A sliding window of failed attempts per key (an IP address).

    After ``limit`` failures within ``window`` seconds the key is blocked until its oldest counted failure
    leaves the window.  At most ``max_keys`` keys are tracked; the least recently failing is forgotten
    first, which only ever errs towards letting an attempt through.
    """

    def __init__(self, *, limit: int, window: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds ``key`` stays blocked (0.0 when an attempt may go ahead)."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[-self.limit] + self.window - now

    def record_failure(self, key: str, now: float) -> int:
        """Count a failure of ``key``; returns how many it has within the window."""
        times = self._recent(key, now)
        if times is None:
            times = deque(maxlen=self.limit)
            self._failures[key] = times
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        return len(times)

    def __len__(self) -> int:
        return len(self._failures)
