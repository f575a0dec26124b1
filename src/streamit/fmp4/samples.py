"""Frames → fMP4 samples of one track, with exact durations.

A sample's duration is the next sample's decode time minus its own (ISO/IEC 14496-12 §8.6.1.2), so the
newest frame of each track is held back until its successor arrives.  Only :meth:`SampleQueue.flush`
(end of stream) has to guess a duration: the last step seen on the track, else the nominal frame
duration.  Times are converted from the frame's time base by exact integer arithmetic (rounded down), so
converted timestamps never drift and durations sum to the converted timestamps exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.fmp4.fragment import Sample
from streamit.media.frame import Frame


@dataclass(frozen=True, slots=True)
class _Pending:
    decode_time: int
    composition_offset: int
    sync: bool
    data: bytes


class SampleQueue:
    """Collects one track's frames as samples timed in ``timescale`` ticks per second.

    ``nominal_duration`` (ticks) is the duration given to the last sample at :meth:`flush` when the
    track never showed a step between two frames.
    """

    def __init__(self, timescale: int, nominal_duration: int) -> None:
        if timescale <= 0 or nominal_duration < 0:
            raise LocalProtocolError("a track needs a positive timescale and a non-negative duration")
        self.timescale = timescale
        self._nominal = nominal_duration
        self._time_base = Fraction(1, timescale)
        self._complete: list[Sample] = []
        self._pending: _Pending | None = None
        self._last_step = 0

    @property
    def pending_decode_time(self) -> int | None:
        """Decode time of the held-back newest frame, or ``None``."""
        return None if self._pending is None else self._pending.decode_time

    @property
    def nominal_duration(self) -> int:
        """The duration (ticks) assumed for a frame when no step was seen yet."""
        return self._nominal

    @property
    def last_step(self) -> int:
        """The most recent decode-time step between two frames (0 before the second frame)."""
        return self._last_step

    def convert(self, frame: Frame) -> tuple[int, int]:
        """The frame's (decode time, composition offset) in ticks; raises if it cannot follow the queue.

        :class:`RemoteProtocolError` for a DTS before the held-back frame's (decode order must be kept).
        """
        scale = self._time_base
        source = frame.time_base
        # rescale() inlined: value * src / dst, rounded down.
        dts = frame.dts * source.numerator * scale.denominator // (source.denominator * scale.numerator)
        pts = frame.pts * source.numerator * scale.denominator // (source.denominator * scale.numerator)
        if dts < 0:
            raise RemoteProtocolError("a frame has a negative decode time")
        if self._pending is not None and dts < self._pending.decode_time:
            raise RemoteProtocolError("a frame's DTS goes backwards within its track")
        return dts, pts - dts

    def push(self, frame: Frame, sync: bool) -> int:
        """Add ``frame``: the previous frame becomes a complete sample.  Returns the frame's decode time."""
        dts, offset = self.convert(frame)
        pending = self._pending
        if pending is not None:
            step = dts - pending.decode_time
            self._complete.append(
                Sample(pending.decode_time, step, pending.composition_offset, pending.sync, pending.data)
            )
            if step:
                self._last_step = step
        self._pending = _Pending(dts, offset, sync, frame.data)
        return dts

    def take(self, until: int) -> list[Sample]:
        """Remove and return the complete samples that start before decode time ``until``."""
        complete = self._complete
        count = 0
        while count < len(complete) and complete[count].decode_time < until:
            count += 1
        taken, self._complete = complete[:count], complete[count:]
        return taken

    def flush(self) -> list[Sample]:
        """Remove and return every sample, the held-back one with a guessed duration."""
        samples, self._complete = self._complete, []
        pending = self._pending
        if pending is not None:
            duration = self._last_step or self._nominal
            samples.append(
                Sample(pending.decode_time, duration, pending.composition_offset, pending.sync, pending.data)
            )
            self._pending = None
        return samples
