"""The live :class:`Stream`: one publisher's configs and frames, fanned out to sinks and readers.

*Sinks* are synchronous callables run in order for every item (the HLS packager, the recorder); a
sink that raises stops the fan-out, as the error is a bug of that sink.  *Readers* are bounded queues
for consumers that run at their own pace (relays, transcoders); they are pure data structures, and the
asyncio layer learns that a reader has data through its ``on_readable`` callback.

A reader never holds more than its caps.  When a frame would overflow it, the reader discards its
queued frames and everything after them up to the next video keyframe, so that what it delivers next
is decodable; it keeps the latest pending configs so that no configuration change is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from streamit.errors import LocalProtocolError
from streamit.media.frame import AudioConfig, Frame, TrackKind, VideoConfig

StreamItem = VideoConfig | AudioConfig | Frame
"""What flows through a :class:`Stream`: a codec configuration or a frame."""

Sink = Callable[[StreamItem], None]
"""A synchronous consumer of every item of a stream."""

_VIDEO = TrackKind.VIDEO
"""For the per-frame checks: on Python 3.11 an Enum member lookup goes through a slow attribute hook."""

MAX_QUEUED_CONFIGS = 4
"""Configs a reader may hold; a slow reader facing a storm of config changes keeps only the latest."""


class StreamReader:
    """A bounded queue of one consumer of a :class:`Stream`; create it with :meth:`Stream.open_reader`.

    ``on_readable`` (settable at any time) is called with no argument whenever the queue goes from empty
    to non-empty, and when the stream ends.
    """

    __slots__ = (
        "_audio_waiting",
        "_closed",
        "_config_count",
        "_frame_bytes",
        "_frame_count",
        "_items",
        "_resyncing",
        "_stream",
        "_video_waiting",
        "dropped_frames",
        "max_bytes",
        "max_frames",
        "on_readable",
    )

    def __init__(
        self,
        stream: Stream,
        max_frames: int,
        max_bytes: int,
        on_readable: Callable[[], None] | None = None,
    ) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise LocalProtocolError("a reader needs max_frames >= 1 and max_bytes >= 1")
        self._stream = stream
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.on_readable = on_readable
        self.dropped_frames = 0
        """Frames this reader lost because it was too slow (queued ones discarded + skipped to resync)."""
        self._items: deque[StreamItem] = deque()
        self._frame_count = 0
        self._frame_bytes = 0
        self._config_count = 0
        self._video_waiting = True
        self._audio_waiting = True
        self._resyncing = False
        self._closed = False

    @property
    def queued_frames(self) -> int:
        """Frames waiting in the queue (configs not included)."""
        return self._frame_count

    @property
    def queued_bytes(self) -> int:
        """Bytes of frame data waiting in the queue."""
        return self._frame_bytes

    @property
    def queued_configs(self) -> int:
        """Configs waiting in the queue."""
        return self._config_count

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def at_end(self) -> bool:
        """True once the stream ended (or the reader was closed) and the queue is drained."""
        return (self._closed or self._stream.ended) and not self._items

    def __len__(self) -> int:
        return len(self._items)

    def pop(self) -> StreamItem | None:
        """The next config or frame, or ``None`` if nothing is queued."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, Frame):
            self._frame_count -= 1
            self._frame_bytes -= len(item.data)
        else:
            self._config_count -= 1
        return item

    def close(self) -> None:
        """Detach from the stream and discard what is queued."""
        if not self._closed:
            self._closed = True
            self._stream._detach(self)
            self._clear()

    def _clear(self) -> None:
        self._items.clear()
        self._frame_count = self._frame_bytes = self._config_count = 0

    def _offer(self, item: StreamItem) -> None:
        was_empty = not self._items
        if isinstance(item, Frame):
            self._offer_frame(item)
        else:
            if self._config_count >= MAX_QUEUED_CONFIGS:
                self._overflow()
            self._items.append(item)
            self._config_count += 1
        if was_empty and self._items and self.on_readable is not None:
            self.on_readable()

    def _offer_frame(self, frame: Frame) -> None:
        size = len(frame.data)
        if size > self.max_bytes:
            # It can never be queued; later video frames reference it, so resync at the next keyframe.
            self.dropped_frames += 1
            if frame.track is _VIDEO:
                self._video_waiting = self._resyncing = True
            return
        if not self._accepts(frame):
            if self._resyncing:
                self.dropped_frames += 1
            return
        if self._frame_count >= self.max_frames or self._frame_bytes + size > self.max_bytes:
            self._overflow()
            if not self._accepts(frame):
                self.dropped_frames += 1
                return
        self._items.append(frame)
        self._frame_count += 1
        self._frame_bytes += size

    def _accepts(self, frame: Frame) -> bool:
        # Video may only start at a keyframe; audio waits for that keyframe too while the stream has
        # video, so that what a reader delivers starts on a common, decodable boundary.
        if frame.track is _VIDEO:
            if self._video_waiting:
                if not frame.keyframe:
                    return False
                self._video_waiting = self._audio_waiting = self._resyncing = False
            return True
        if self._audio_waiting:
            if self._stream.video_config is not None:
                return False
            self._audio_waiting = self._resyncing = False
        return True

    def _overflow(self) -> None:
        video: VideoConfig | None = None
        audio: AudioConfig | None = None
        for item in self._items:
            if isinstance(item, VideoConfig):
                video = item
            elif isinstance(item, AudioConfig):
                audio = item
        self.dropped_frames += self._frame_count
        self._clear()
        for config in (video, audio):
            if config is not None:
                self._items.append(config)
                self._config_count += 1
        self._video_waiting = self._audio_waiting = self._resyncing = True


class Stream:
    """The live fan-out of one published stream.

    It remembers the current :class:`VideoConfig`/:class:`AudioConfig` and the last video keyframe
    (the start of the current GOP), so that late joiners start with the configs and then at a keyframe.
    """

    def __init__(self) -> None:
        self.video_config: VideoConfig | None = None
        self.audio_config: AudioConfig | None = None
        self.gop_start: Frame | None = None
        """The most recent video keyframe."""
        self.ended = False
        self.frames_in = 0
        self.bytes_in = 0
        self._sinks: list[Sink] = []
        self._readers: list[StreamReader] = []

    @property
    def readers(self) -> tuple[StreamReader, ...]:
        """The open readers."""
        return tuple(self._readers)

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink`` for every later item, after the sinks added before it."""
        self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop calling ``sink``; unknown sinks are ignored."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def open_reader(
        self,
        max_frames: int = 600,
        max_bytes: int = 16 * 1024 * 1024,
        on_readable: Callable[[], None] | None = None,
    ) -> StreamReader:
        """A new bounded reader. It first yields the current configs, then frames from the next video
        keyframe on (from the next frame if the stream has no video)."""
        if self.ended:
            raise LocalProtocolError("cannot open a reader on an ended stream")
        reader = StreamReader(self, max_frames, max_bytes, on_readable)
        for config in (self.video_config, self.audio_config):
            if config is not None:
                reader._offer(config)
        self._readers.append(reader)
        return reader

    def push(self, item: StreamItem) -> None:
        """Deliver a config or frame to every sink, then every reader.

        A config equal to the current one (encoders repeat sequence headers) is not delivered again.
        """
        if self.ended:
            raise LocalProtocolError("cannot push to an ended stream")
        if isinstance(item, Frame):
            self.frames_in += 1
            self.bytes_in += len(item.data)
            if item.track is _VIDEO and item.keyframe:
                self.gop_start = item
        elif isinstance(item, VideoConfig):
            if item == self.video_config:
                return
            self.video_config = item
        else:
            if item == self.audio_config:
                return
            self.audio_config = item
        for sink in self._sinks:
            sink(item)
        for reader in self._readers:
            reader._offer(item)

    def end(self) -> None:
        """The publisher stopped: readers drain what they hold, then report :attr:`StreamReader.at_end`."""
        if self.ended:
            return
        self.ended = True
        for reader in self._readers:
            if reader.on_readable is not None:
                reader.on_readable()

    def _detach(self, reader: StreamReader) -> None:
        if reader in self._readers:
            self._readers.remove(reader)
