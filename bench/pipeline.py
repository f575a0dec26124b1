"""Pipeline benchmark: the CPU cost of Streamit's RTMP ingest → HLS path, without sockets.

It replays ``bench/.work/clip.flv`` (the 3 Mbit/s 720p30 clip of ``bench/ingest.py``) as the bytes an
``ffmpeg -re … -f flv rtmp://…`` publisher sends — handshake C0/C1/C2, Set Chunk Size 4096, connect,
releaseStream, FCPublish, createStream, publish, ``@setDataFrame``, then every FLV tag as one RTMP message
chunked by :class:`~streamit.rtmp.ChunkWriter` (video on chunk stream 6, audio on 4, as ffmpeg does) — one
``receive_data`` call per RTMP message, as the server gets it from the socket under ``-re``.  The bytes go
through the sans-I/O pipeline the way ``servers/ingest.py`` drives it::

    RtmpConnection.receive_data/next_event → FlvDemuxer → media.Stream (sink) → HlsPackager

With LL-HLS on (``streamit serve``'s default) each frame also goes to the stream's
:class:`~streamit.origin.parts.LiveLlHls` (an :class:`~streamit.hls.parts.LlHlsPackager` whose whole
segments are written to a temporary directory, as the origin writes them beside the TS ones).  The report
gives CPU milliseconds (``time.process_time``) per stream-second of media, best and median of ``--runs``
runs, for each stage on its own (fed with the previous stage's precomputed output) and for the whole path,
without and with LL-HLS.  No viewer requests anything: work done only for requests is not billed.  Run with
the project's venv::

    .venv/bin/python bench/pipeline.py [--runs 5] [--seconds 60] [--profile FILE.pstats]

This is a benchmark, not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from ingest import CLIP_PATH, Children, ensure_clip  # noqa: E402

from streamit.flv import FlvDemuxer  # noqa: E402
from streamit.flv.file import FlvFileReader, FlvTagType  # noqa: E402
from streamit.hls import HlsPackager  # noqa: E402
from streamit.hls.events import PackagerEvent, PlaylistUpdated, SegmentReady  # noqa: E402
from streamit.hls.parts import LlHlsEvent, LlHlsPackager, PartedSegment  # noqa: E402
from streamit.hls.parts import SegmentReady as LlSegmentReady  # noqa: E402
from streamit.hls.segmenter import Segment  # noqa: E402
from streamit.media import AudioConfig, Frame, VideoConfig  # noqa: E402
from streamit.media.stream import Stream, StreamItem  # noqa: E402
from streamit.origin.parts import LiveLlHls  # noqa: E402
from streamit.rtmp import (  # noqa: E402
    AudioReceived,
    ConnectRequested,
    MetaDataReceived,
    PublishRequested,
    RtmpConnection,
    VideoReceived,
)
from streamit.rtmp.amf0 import encode_amf0_all  # noqa: E402
from streamit.rtmp.chunk import ChunkWriter  # noqa: E402
from streamit.rtmp.events import Event  # noqa: E402
from streamit.rtmp.messages import MessageType, encode_command, encode_set_chunk_size  # noqa: E402

HANDSHAKE_SIZE = 1536
CHUNK_SIZE = 4096
# ffmpeg's librtmp-compatible channel layout (libavformat/rtmppkt.h): commands on 3, audio and data on 4,
# video on 6, the publish command on 8.
COMMAND_CSID = 3
AUDIO_CSID = 4
VIDEO_CSID = 6
SOURCE_CSID = 8
CONTROL_CSID = 2
MESSAGE_STREAM = 1
STREAM_KEY = "bench"
# servers/ingest.py's LL-HLS settings at the defaults (hls_segment_duration 2, hls_part_duration 0.334,
# hls_playlist_length 6).
SEGMENT_DURATION = Fraction(2)
PART_DURATION = Fraction(334, 1000)
PLAYLIST_LENGTH = 6

MediaEvent = VideoReceived | AudioReceived | MetaDataReceived


@dataclass(frozen=True, slots=True)
class Workload:
    """What one publisher sends: the socket reads, and how many seconds of media they carry."""

    reads: list[bytes]
    media_seconds: float


def build_workload(clip: Path, seconds: float | None) -> Workload:
    """The client→server reads of publishing ``clip`` (only its first ``seconds`` if given)."""
    reader = FlvFileReader()
    reader.feed(clip.read_bytes())
    writer = ChunkWriter()
    reads: list[bytes] = []
    # C0 + a plain C1 (zero version field: no digest, RTMP 1.0 §5.2.3), then C2 with the first commands.
    reads.append(b"\x03" + bytes(8) + os.urandom(HANDSHAKE_SIZE - 8))
    first = bytearray(os.urandom(HANDSHAKE_SIZE))
    first += writer.write(CONTROL_CSID, MessageType.SET_CHUNK_SIZE, 0, 0, encode_set_chunk_size(CHUNK_SIZE))
    writer.chunk_size = CHUNK_SIZE
    connect = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf59.27.100)",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
    }
    first += writer.write(COMMAND_CSID, MessageType.COMMAND_AMF0, 0, 0, encode_command("connect", 1, connect))
    reads.append(bytes(first))

    def command(csid: int, stream_id: int, name: str, transaction: float, *args: object) -> bytes:
        payload = encode_command(name, transaction, None, *args)
        return writer.write(csid, MessageType.COMMAND_AMF0, stream_id, 0, payload)

    reads.append(
        command(COMMAND_CSID, 0, "releaseStream", 2, STREAM_KEY)
        + command(COMMAND_CSID, 0, "FCPublish", 3, STREAM_KEY)
        + command(COMMAND_CSID, 0, "createStream", 4)
    )
    reads.append(command(SOURCE_CSID, MESSAGE_STREAM, "publish", 5, STREAM_KEY, "live"))
    last_timestamp = 0
    limit = None if seconds is None else int(seconds * 1000)
    for tag in reader:
        if limit is not None and tag.timestamp > limit:
            break
        if tag.tag_type is FlvTagType.SCRIPT_DATA:
            payload = encode_amf0_all("@setDataFrame") + tag.payload
            reads.append(writer.write(AUDIO_CSID, MessageType.DATA_AMF0, MESSAGE_STREAM, 0, payload))
            continue
        csid = VIDEO_CSID if tag.tag_type is FlvTagType.VIDEO else AUDIO_CSID
        reads.append(writer.write(csid, tag.tag_type, MESSAGE_STREAM, tag.timestamp, tag.payload))
        last_timestamp = max(last_timestamp, tag.timestamp)
    return Workload(reads, last_timestamp / 1000)


def _handle_decision(conn: RtmpConnection, event: Event) -> None:
    if isinstance(event, ConnectRequested):
        conn.accept_connect(event.transaction_id)
    elif isinstance(event, PublishRequested):
        conn.accept_publish(event.stream_id)


# --------------------------------------------------------------------------------------------------------
# The stages, each on its own


def run_rtmp(reads: Sequence[bytes]) -> list[MediaEvent]:
    """Feed every read to a fresh connection, answer its decisions; the media events, in order."""
    conn = RtmpConnection()
    media: list[MediaEvent] = []
    append = media.append
    for data in reads:
        conn.receive_data(data, 0.0)
        while (event := conn.next_event()) is not None:
            if isinstance(event, VideoReceived | AudioReceived | MetaDataReceived):
                append(event)
            else:
                _handle_decision(conn, event)
        conn.data_to_send()
    return media


def run_demux(events: Sequence[MediaEvent]) -> list[StreamItem]:
    """Demux the media events of one publish."""
    demuxer = FlvDemuxer()
    items: list[StreamItem] = []
    for event in events:
        if isinstance(event, VideoReceived):
            items.extend(demuxer.feed_video(event.timestamp, event.payload))
        elif isinstance(event, AudioReceived):
            items.extend(demuxer.feed_audio(event.timestamp, event.payload))
        else:
            demuxer.feed_metadata(dict(event.values))
    return items


def run_stream(items: Sequence[StreamItem]) -> None:
    """Push the items through a Stream with one sink that does nothing."""
    stream = Stream()

    def sink(item: StreamItem) -> None:
        pass

    stream.add_sink(sink)
    push = stream.push
    for item in items:
        push(item)
    stream.end()


class MemoryStore:
    """Stands in for origin's SegmentStore with its default of one segment in memory (no disk)."""

    def __init__(self) -> None:
        self.segments = 0
        self.last_segment: Segment | None = None
        self.playlist = b""

    def apply(self, events: Iterable[PackagerEvent]) -> None:
        """Keep the newest segment and playlist, as the store's memory does."""
        for event in events:
            if isinstance(event, SegmentReady):
                self.segments += 1
                self.last_segment = event.segment
            elif isinstance(event, PlaylistUpdated):
                self.playlist = event.text.encode()


def _packaging_sink(
    packager: HlsPackager, store: MemoryStore, ll: LiveLlHls | None = None
) -> Callable[[StreamItem], None]:
    # What servers/ingest.py Channel.package does.
    def package(item: StreamItem) -> None:
        if isinstance(item, Frame):
            now = datetime.now(UTC)
            store.apply(packager.on_frame(item, now))
            if ll is not None:
                ll.on_frame(item, now)
        else:
            store.apply(packager.on_config(item))
            if ll is not None:
                ll.on_config(item)

    return package


def new_ll_packager() -> LlHlsPackager:
    """An LL-HLS packager set up as ``streamit serve`` sets it up."""
    return LlHlsPackager(
        target_duration=SEGMENT_DURATION, part_target=PART_DURATION, playlist_length=PLAYLIST_LENGTH
    )


def new_live_ll(directory: Path) -> LiveLlHls:
    """A stream's LL-HLS state as the origin's registry opens it, writing segments to ``directory``."""
    return LiveLlHls(
        new_ll_packager(), target_duration=SEGMENT_DURATION, max_waiters=10_000, directory=directory
    )


@dataclass
class LlSummary:
    """What the LL-HLS packager produced: the number of segments and the last one."""

    segments: int = 0
    last_segment: PartedSegment | None = None

    def apply(self, events: Iterable[LlHlsEvent]) -> None:
        """Count the segments (nothing else is kept: the stage measures the packager alone)."""
        for event in events:
            if isinstance(event, LlSegmentReady):
                self.segments += 1
                self.last_segment = event.segment


def run_hls(items: Sequence[StreamItem]) -> MemoryStore:
    """Package the items (as the stream sink would), then end the stream."""
    packager = HlsPackager(target_duration=Fraction(2), playlist_length=6)
    store = MemoryStore()
    package = _packaging_sink(packager, store)
    for item in items:
        package(item)
    store.apply(packager.end())
    return store


def run_ll_packager(items: Sequence[StreamItem]) -> LlSummary:
    """Package the items with the LL-HLS packager alone (events only counted), then end the stream."""
    packager = new_ll_packager()
    summary = LlSummary()
    for item in items:
        if isinstance(item, Frame):
            summary.apply(packager.on_frame(item, datetime.now(UTC)))
        else:
            summary.apply(packager.on_config(item))
    summary.apply(packager.end())
    return summary


def run_ll_origin(items: Sequence[StreamItem], directory: Path) -> LiveLlHls:
    """Package the items into a stream's LL-HLS state (packager, parts in memory, segments on disk).

    The stream is not ended: ending it releases everything, which would leave nothing to inspect.
    """
    live = new_live_ll(directory)
    for item in items:
        if isinstance(item, Frame):
            live.on_frame(item, datetime.now(UTC))
        else:
            live.on_config(item)
    return live


def run_total(reads: Sequence[bytes], ll_directory: Path | None = None) -> MemoryStore:
    """The whole path as the server runs it, every stage interleaved per read.

    With ``ll_directory`` LL-HLS packaging runs too (``streamit serve``'s default), writing its segments
    there.
    """
    conn = RtmpConnection()
    demuxer = FlvDemuxer()
    stream = Stream()
    packager = HlsPackager(target_duration=Fraction(2), playlist_length=6)
    store = MemoryStore()
    ll = None if ll_directory is None else new_live_ll(ll_directory)
    stream.add_sink(_packaging_sink(packager, store, ll))
    push = stream.push

    def media(items: list[VideoConfig | Frame] | list[AudioConfig | Frame]) -> None:
        for item in items:
            push(item)

    for data in reads:
        conn.receive_data(data, 0.0)
        while (event := conn.next_event()) is not None:
            if isinstance(event, VideoReceived):
                media(demuxer.feed_video(event.timestamp, event.payload))
            elif isinstance(event, AudioReceived):
                media(demuxer.feed_audio(event.timestamp, event.payload))
            elif isinstance(event, MetaDataReceived):
                demuxer.feed_metadata(dict(event.values))
            else:
                _handle_decision(conn, event)
        conn.data_to_send()
    stream.end()
    store.apply(packager.end())
    if ll is not None:
        ll.end()
    return store


# --------------------------------------------------------------------------------------------------------
# Measurement


def cpu_seconds(run: Callable[[], object]) -> float:
    """CPU time of one call, after a collection so that earlier garbage is not billed to it."""
    gc.collect()
    start = time.process_time()
    run()
    return time.process_time() - start


@dataclass(frozen=True, slots=True)
class StageResult:
    """CPU ms per stream-second of one stage over the runs."""

    name: str
    samples: list[float]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def measure(workload: Workload, runs: int, directory: Path) -> list[StageResult]:
    """Run each stage and the whole path ``runs`` times; ms of CPU per stream-second.

    LL-HLS stages write their segments under ``directory``.
    """
    reads = workload.reads
    events = run_rtmp(reads)
    items = run_demux(events)
    if run_total(reads).segments < workload.media_seconds // 4:
        raise SystemExit("the pipeline produced too few segments: the workload is broken")
    if run_ll_packager(items).segments < workload.media_seconds // 4:
        raise SystemExit("the LL-HLS packager produced too few segments: the workload is broken")

    def ll_origin() -> None:
        run_ll_origin(items, directory / "origin").release()

    stages: list[tuple[str, Callable[[], object]]] = [
        ("rtmp (receive_data + next_event)", lambda: run_rtmp(reads)),
        ("flv demux", lambda: run_demux(events)),
        ("media.Stream push", lambda: run_stream(items)),
        ("hls (packager + TS muxer)", lambda: run_hls(items)),
        ("ll-hls packager (fMP4 parts)", lambda: run_ll_packager(items)),
        ("ll-hls origin (packager + LiveLlHls)", ll_origin),
        ("total (interleaved)", lambda: run_total(reads)),
        ("total with LL-HLS (interleaved)", lambda: run_total(reads, directory / "total")),
    ]
    per_second = 1000 / workload.media_seconds
    samples: dict[str, list[float]] = {name: [] for name, _ in stages}
    for _ in range(runs):
        for name, run in stages:
            samples[name].append(cpu_seconds(run) * per_second)
    return [StageResult(name, samples[name]) for name, _ in stages]


def render(results: Sequence[StageResult], workload: Workload, runs: int) -> str:
    """A small table of the results."""
    lines = [
        f"clip: {CLIP_PATH.name}, {workload.media_seconds:.1f} s of media, {len(workload.reads)} reads, "
        f"{sum(map(len, workload.reads)) / workload.media_seconds * 8 / 1e6:.2f} Mbit/s; {runs} runs; "
        f"Python {sys.version.split()[0]}",
        "",
        f"{'stage':<38} {'best ms/s':>10} {'median ms/s':>12}",
    ]
    for result in results:
        lines.append(f"{result.name:<38} {result.best:>10.2f} {result.median:>12.2f}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="runs per stage (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="replay only the clip's first N s")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the whole path")
    parser.add_argument(
        "--no-ll", action="store_true", help="profile the whole path without LL-HLS (it is on by default)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the workload, measure, print."""
    args = parse_args(argv)
    with Children() as children:
        clip = ensure_clip(children)
    workload = build_workload(clip, args.seconds)
    with tempfile.TemporaryDirectory(prefix="streamit-pipeline-") as scratch:
        directory = Path(scratch)
        if args.profile is not None:
            profiler = cProfile.Profile()
            profiler.runcall(run_total, workload.reads, None if args.no_ll else directory / "profile")
            profiler.dump_stats(args.profile)
            print(f"profile of the whole path written to {args.profile}")
        results = measure(workload, args.runs, directory)
    print(render(results, workload, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
