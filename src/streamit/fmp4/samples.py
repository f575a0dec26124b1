"""Frames → fMP4 samples of one track, with exact durations.

A sample's duration is the next sample's decode time minus its own (ISO/IEC 14496-12 §8.6.1.2), so the
newest frame of each track is held back until its successor arrives.  Only :meth:`SampleQueue.flush`
(end of stream) has to guess a duration: the last step seen on the track, else the nominal frame
duration.  Times are converted from the frame's time base by exact integer arithmetic (rounded down), so
converted timestamps never drift and durations sum to the converted timestamps exactly.
"""

from __future__ import annotations

import bisect
import operator
from fractions import Fraction

from streamit.errors import LocalProtocolError, RemoteProtocolError
from streamit.fmp4.fragment import Sample, SampleColumns
from streamit.fmp4.init import SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC
from streamit.media.frame import Frame


class SampleQueue:
    """Collects one track's frames as samples timed in ``timescale`` ticks per second.

    ``nominal_duration`` (ticks) is the duration given to the last sample at :meth:`flush` when the
    track never showed a step between two frames; ``last_step`` is the most recent decode-time step between
    two frames (0 before the second frame).  Both are plain attributes: the packager reads them per frame.
    """

    def __init__(self, timescale: int, nominal_duration: int) -> None:
        if timescale <= 0 or nominal_duration < 0:
            raise LocalProtocolError("a track needs a positive timescale and a non-negative duration")
        self.timescale = timescale
        self.nominal_duration = nominal_duration
        self.last_step = 0
        # The frames held, in columns (a frame costs four list appends, no object): every one is a complete
        # sample but the newest, whose duration waits for its successor.
        self._times: list[int] = []
        self._offsets: list[int] = []
        self._flags: list[int] = []
        self._data: list[bytes] = []
        # Conversion from the last time base seen (a track's frames share one): t·n/d ticks, rounded down.
        self._source: Fraction | None = None
        self._multiplier = 0
        self._divisor = 1

    @property
    def pending_decode_time(self) -> int | None:
        """Decode time of the held-back newest frame, or ``None``."""
        times = self._times
        return times[-1] if times else None

    def _set_source(self, source: Fraction) -> None:
        # rescale(value, source, 1/timescale) = value·num·timescale // den: the same integers, once.
        self._multiplier = source.numerator * self.timescale
        self._divisor = source.denominator
        self._source = source

    def push(self, frame: Frame, sync: bool) -> int:
        """Add ``frame``: the previous frame becomes a complete sample.  Returns the frame's decode time.

        Raises :class:`RemoteProtocolError` for a negative decode time or a DTS before the held-back frame's
        (decode order must be kept), and then leaves the queue unchanged.
        """
        source = frame.time_base
        if source is not self._source:
            self._set_source(source)
        multiplier = self._multiplier
        divisor = self._divisor
        dts = frame.dts * multiplier // divisor
        times = self._times
        if times:
            step = dts - times[-1]
            if step < 0:
                raise RemoteProtocolError("a frame's DTS goes backwards within its track")
            if step:
                self.last_step = step
        elif dts < 0:
            raise RemoteProtocolError("a frame has a negative decode time")
        times.append(dts)
        self._offsets.append(frame.pts * multiplier // divisor - dts)
        self._flags.append(SAMPLE_FLAGS_SYNC if sync else SAMPLE_FLAGS_NON_SYNC)
        self._data.append(frame.data)
        return dts

    def _columns(self, count: int, last_duration: int, track_id: int, video: bool) -> SampleColumns:
        """Remove the oldest ``count`` samples; the last one lasts ``last_duration`` when it is the
        held-back frame, else until its successor."""
        times = self._times
        durations = list(map(operator.sub, times[1 : count + 1], times[:count]))
        if len(durations) < count:
            durations.append(last_duration)
        offsets, flags, data = self._offsets, self._flags, self._data
        run = SampleColumns(
            track_id, video, times[0], durations, offsets[:count], flags[:count], data[:count]
        )
        del times[:count], offsets[:count], flags[:count], data[:count]
        return run

    def take_columns(self, until: int, track_id: int, video: bool) -> SampleColumns | None:
        """Remove the complete samples that start before decode time ``until``, as the columns of a track
        run (``None`` when there is none)."""
        times = self._times
        # Decode times never decrease: the samples before ``until`` are a prefix, found by bisection.
        count = bisect.bisect_left(times, until, 0, max(len(times) - 1, 0))
        if not count:
            return None
        return self._columns(count, 0, track_id, video)

    def flush_columns(self, track_id: int, video: bool) -> SampleColumns | None:
        """Remove every sample, the held-back one with a guessed duration, as the columns of a track run."""
        if not self._times:
            return None
        return self._columns(len(self._times), self.last_step or self.nominal_duration, track_id, video)

    @staticmethod
    def _samples(run: SampleColumns | None) -> list[Sample]:
        if run is None:
            return []
        samples: list[Sample] = []
        time = run.decode_time
        for duration, offset, flags, data in zip(
            run.durations, run.composition_offsets, run.flags, run.data, strict=True
        ):
            samples.append(Sample(time, duration, offset, flags == SAMPLE_FLAGS_SYNC, data))
            time += duration
        return samples

    def take(self, until: int) -> list[Sample]:
        """Remove and return the complete samples that start before decode time ``until``."""
        return self._samples(self.take_columns(until, 0, False))

    def flush(self) -> list[Sample]:
        """Remove and return every sample, the held-back one with a guessed duration."""
        return self._samples(self.flush_columns(0, False))
