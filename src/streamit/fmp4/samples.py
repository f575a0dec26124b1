"""Frames → fMP4 samples of one track, with exact durations.

A sample's duration is the next sample's decode time minus its own (ISO/IEC 14496-12 §8.6.1.2), so the
newest frame of each track is held back until its successor arrives.  Only :meth:`SampleQueue.flush`
(end of stream) has to guess a duration: the last step seen on the track, else the nominal frame
duration.  Times are converted from the frame's time base by exact integer arithmetic (rounded down), so
converted timestamps never drift and durations sum to the converted timestamps exactly.
"""

from __future__ import annotations

from fractions import Fraction

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.fmp4.fragment import Sample
from streamit.media.frame import Frame


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
        self._complete: list[Sample] = []
        # The held-back newest frame: (decode time, composition offset, sync, data).
        self._pending: tuple[int, int, bool, bytes] | None = None
        self._last_step = 0
        # Conversion from the last time base seen (a track's frames share one): t·n/d ticks, rounded down.
        self._source: Fraction | None = None
        self._multiplier = 0
        self._divisor = 1

    @property
    def pending_decode_time(self) -> int | None:
        """Decode time of the held-back newest frame, or ``None``."""
        return None if self._pending is None else self._pending[0]

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
        source = frame.time_base
        if source is not self._source:
            # rescale(value, source, 1/timescale) = value·num·timescale // den: the same integers, once.
            self._multiplier = source.numerator * self.timescale
            self._divisor = source.denominator
            self._source = source
        multiplier = self._multiplier
        divisor = self._divisor
        dts = frame.dts * multiplier // divisor
        if dts < 0:
            raise RemoteProtocolError("a frame has a negative decode time")
        pending = self._pending
        if pending is not None and dts < pending[0]:
            raise RemoteProtocolError("a frame's DTS goes backwards within its track")
        return dts, frame.pts * multiplier // divisor - dts

    def push(self, frame: Frame, sync: bool) -> int:
        """Add ``frame``: the previous frame becomes a complete sample.  Returns the frame's decode time."""
        dts, offset = self.convert(frame)
        self.push_converted(dts, offset, sync, frame.data)
        return dts

    def push_converted(self, decode_time: int, composition_offset: int, sync: bool, data: bytes) -> None:
        """Add a frame already converted by :meth:`convert` (which checked it can follow the queue)."""
        pending = self._pending
        if pending is not None:
            start = pending[0]
            step = decode_time - start
            self._complete.append(Sample(start, step, pending[1], pending[2], pending[3]))
            if step:
                self._last_step = step
        self._pending = (decode_time, composition_offset, sync, data)

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
            samples.append(Sample(pending[0], duration, pending[1], pending[2], pending[3]))
            self._pending = None
        return samples
