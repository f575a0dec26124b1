"""The fuzz targets: every parser that reads bytes a peer controls, with the invariant each must keep.

A target is a function of one ``bytes`` input.  It feeds the input to the parser the way Streamit's own
I/O code does (the RTMP pump, the ingest, the discovery watcher, the edge) and checks the parser's own
promises with ``assert``.  The invariant of all of them: **peer bytes either parse or raise**
:class:`~streamit.errors.RemoteProtocolError` (the subclasses ``MessageTooLarge`` and ``UnsupportedCodec``
included).  :func:`run_target` swallows exactly those; any other exception — ``IndexError``,
``struct.error``, ``RecursionError``, ``AssertionError``, a ``LocalProtocolError`` (our own misuse) — escapes
and is a crash.

``step`` (when given) cuts the input into pieces of that many bytes, to exercise the incremental parsers'
resumption at every boundary; ``None`` feeds the input whole.

The targets are shared by the hypothesis suite (``tests/fuzz``) and the atheris harnesses (``fuzz/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from fuzz import seeds
from streamit.discovery.entry import decode_entry
from streamit.discovery.playlist_summary import summarize_playlist
from streamit.edge.cache import MAX_PLAYLIST_LIFETIME, fresh_until, playlist_target_duration
from streamit.errors import RemoteProtocolError
from streamit.flv import FlvDemuxer, FlvFileReader, FlvTagType
from streamit.hls import HlsPackager
from streamit.hooks.nginx_form import parse_form
from streamit.media.aac import audio_config_from_asc, iter_adts_frames
from streamit.media.frame import AudioConfig, Frame, VideoConfig
from streamit.media.h264 import avcc_to_annexb, iter_nal_units, parse_avc_decoder_config, parse_sps
from streamit.rtmp import (
    AudioReceived,
    ChunkReader,
    ConnectRequested,
    MetaDataReceived,
    PublishRequested,
    RtmpConnection,
    ServerHandshake,
    VideoReceived,
)
from streamit.rtmp.amf0 import decode_amf0_all
from streamit.rtmp.amf3 import Amf3Decoder
from streamit.rtmp.handshake import HANDSHAKE_SIZE

PEER_ERRORS: tuple[type[BaseException], ...] = (RemoteProtocolError,)
"""What a parser may raise for bad peer bytes; anything else escaping a target is a crash."""

CHUNK_MAX_MESSAGE = 64 * 1024
"""The chunk reader's message cap in the ``chunk`` target: small, so that the cap itself is reached."""
MAX_CHUNK_HEADER = 3 + 11 + 4
"""Largest chunk header: 3-byte basic header, type-0 message header, extended timestamp (RTMP 1.0 §5.3.1)."""


def pieces(data: bytes, step: int | None) -> Iterator[bytes]:
    """``data`` whole (``step`` None) or in consecutive pieces of ``step`` bytes."""
    if step is None:
        yield data
        return
    for start in range(0, len(data), step):
        yield data[start : start + step]


# --- RTMP -------------------------------------------------------------------------------------------------


def handshake(data: bytes, step: int | None = None) -> None:
    """:class:`ServerHandshake` consuming C0+C1+C2 from a growing receive buffer."""
    shake = ServerHandshake()
    buffer = bytearray()
    for piece in pieces(data, step):
        buffer += piece
        while not shake.complete:
            before = len(buffer)
            consumed, reply = shake.receive(buffer)
            assert 0 <= consumed <= before
            if not consumed:
                assert not reply
                break
            # S0+S1+S2 leave together once C0+C1 are in (RTMP 1.0 §5.2.1).
            assert consumed in (1 + HANDSHAKE_SIZE, HANDSHAKE_SIZE)
            assert len(reply) == (1 + 2 * HANDSHAKE_SIZE if consumed == 1 + HANDSHAKE_SIZE else 0)
            del buffer[:consumed]
        if shake.complete:
            break
    assert shake.complete == (len(data) >= 1 + 2 * HANDSHAKE_SIZE)


def chunk(data: bytes, step: int | None = None) -> None:
    """:class:`ChunkReader` on a receive buffer that keeps only the unconsumed tail, as the pump does."""
    reader = ChunkReader(max_message_size=CHUNK_MAX_MESSAGE)
    pending = bytearray()
    for piece in pieces(data, step):
        pending += piece
        messages, consumed = reader.read(pending)
        assert 0 <= consumed <= len(pending)
        del pending[:consumed]
        for message in messages:
            assert len(message.payload) <= CHUNK_MAX_MESSAGE
            assert 0 <= message.timestamp <= 0xFFFFFFFF
            assert 0 <= message.type_id <= 0xFF and 0 <= message.stream_id <= 0xFFFFFFFF
        # What is left is at most one incomplete chunk: the reader never waits on a whole message.
        assert len(pending) <= MAX_CHUNK_HEADER + min(reader.chunk_size, CHUNK_MAX_MESSAGE)


def amf0(data: bytes, step: int | None = None) -> None:
    """Every AMF0 value of a command or data message body (one reference table)."""
    decode_amf0_all(data)


def amf3(data: bytes, step: int | None = None) -> None:
    """Consecutive AMF3 values with shared string, object and traits reference tables."""
    decoder = Amf3Decoder(data)
    while decoder.offset < len(data):
        before = decoder.offset
        decoder.decode()
        assert before < decoder.offset <= len(data)


def connection(data: bytes, step: int | None = None) -> None:
    """A whole :class:`RtmpConnection` as the ingest drives it, media fed on to an :class:`FlvDemuxer`.

    Every ``connect`` and ``publish`` is accepted, so mutated commands reach the publishing state.
    """
    conn = RtmpConnection()
    demuxers: dict[int, FlvDemuxer] = {}
    for piece in pieces(data, step):
        conn.receive_data(piece)
        while (event := conn.next_event()) is not None:
            if isinstance(event, ConnectRequested):
                conn.accept_connect(event.transaction_id)
            elif isinstance(event, PublishRequested):
                conn.accept_publish(event.stream_id)
                demuxers[event.stream_id] = FlvDemuxer()
            elif isinstance(event, VideoReceived):
                _check_demuxed(demuxers[event.stream_id].feed_video(event.timestamp, event.payload))
            elif isinstance(event, AudioReceived):
                _check_demuxed(demuxers[event.stream_id].feed_audio(event.timestamp, event.payload))
            elif isinstance(event, MetaDataReceived):
                demuxers[event.stream_id].feed_metadata(event.values)
        conn.data_to_send()
    # An error in messages held behind ``connect`` surfaces on the next call (as the pump's next read would
    # see it); without this, feeding whole and feeding in pieces could end differently.
    conn.receive_data(b"")


WALLCLOCK = datetime(2026, 1, 1, tzinfo=UTC)


def ingest(data: bytes, step: int | None = None) -> None:
    """The whole ingest path without I/O: RTMP connection → FLV demuxer → HLS packager (TS segments).

    What a publisher sends reaches the MPEG-TS muxer and the playlist through here; timestamps, codec
    configurations and frame contents are all the peer's.
    """
    conn = RtmpConnection()
    demuxer = FlvDemuxer()
    # Segments of 0.1 s: every keyframe cuts one, so short inputs reach segment cuts and the playlist.
    packager = HlsPackager(target_duration=Fraction(1, 10), playlist_length=3, expire_grace=1)
    publishing: int | None = None

    def package(items: list[Any]) -> None:
        _check_demuxed(items)
        for item in items:
            if isinstance(item, Frame):
                packager.on_frame(item, WALLCLOCK)
            else:
                packager.on_config(item)

    try:
        for piece in pieces(data, step):
            conn.receive_data(piece)
            while (event := conn.next_event()) is not None:
                if isinstance(event, ConnectRequested):
                    conn.accept_connect(event.transaction_id)
                elif isinstance(event, PublishRequested) and publishing is None:
                    conn.accept_publish(event.stream_id)
                    publishing = event.stream_id
                elif isinstance(event, PublishRequested):
                    conn.reject_publish(event.stream_id, "one publish per connection")
                elif isinstance(event, VideoReceived) and event.stream_id == publishing:
                    package(demuxer.feed_video(event.timestamp, event.payload))
                elif isinstance(event, AudioReceived) and event.stream_id == publishing:
                    package(demuxer.feed_audio(event.timestamp, event.payload))
                elif isinstance(event, MetaDataReceived) and event.stream_id == publishing:
                    demuxer.feed_metadata(event.values)
            conn.data_to_send()
        conn.receive_data(b"")  # surfaces an error held behind connect, as in ``connection``
    finally:
        # A publish that ends (or breaks) closes its last segment; the playlist must still render.
        packager.end()
        if packager.segments:
            assert packager.playlist().startswith("#EXTM3U")


# --- FLV and media ----------------------------------------------------------------------------------------


def _check_demuxed(items: list[Any]) -> None:
    for item in items:
        if isinstance(item, Frame):
            assert isinstance(item.data, bytes | bytearray | memoryview)
            assert item.time_base > 0
        else:
            assert isinstance(item, VideoConfig | AudioConfig)
            if isinstance(item, VideoConfig):
                assert item.width > 0 and item.height > 0
            else:
                assert item.sample_rate > 0 and item.channels > 0


def flv_file(data: bytes, step: int | None = None) -> None:
    """:class:`FlvFileReader` then every tag through the demuxer (script tags through AMF0), then close."""
    reader = FlvFileReader()
    demuxer = FlvDemuxer()
    for piece in pieces(data, step):
        reader.feed(piece)
        for tag in reader:
            if tag.tag_type is FlvTagType.VIDEO:
                _check_demuxed(demuxer.feed_video(tag.timestamp, tag.payload))
            elif tag.tag_type is FlvTagType.AUDIO:
                _check_demuxed(demuxer.feed_audio(tag.timestamp, tag.payload))
            else:
                values = decode_amf0_all(tag.payload)
                if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
                    demuxer.feed_metadata(values[1])
    reader.close()


def _configured_demuxer() -> FlvDemuxer:
    demuxer = FlvDemuxer()
    for tag in seeds.flv_tags("main_320x180.flv")[:4]:
        if tag.tag_type is FlvTagType.VIDEO:
            demuxer.feed_video(tag.timestamp, tag.payload)
        elif tag.tag_type is FlvTagType.AUDIO:
            demuxer.feed_audio(tag.timestamp, tag.payload)
    assert demuxer.video_config is not None and demuxer.audio_config is not None
    return demuxer


def flv_tag(data: bytes, step: int | None = None) -> None:
    """One RTMP/FLV tag body.  Byte 0: bit 0 audio (else video), bit 1 an already configured demuxer."""
    if not data:
        return
    selector, body = data[0], data[1:]
    demuxer = _configured_demuxer() if selector & 2 else FlvDemuxer()
    if selector & 1:
        _check_demuxed(demuxer.feed_audio(0, body))
    else:
        _check_demuxed(demuxer.feed_video(0, body))


def avc_config(data: bytes, step: int | None = None) -> None:
    """AVCDecoderConfigurationRecord, then each SPS it carries."""
    config = parse_avc_decoder_config(data)
    assert config.nal_length_size in (1, 2, 3, 4)
    for sps in config.sps:
        sps_nal(sps)


def sps_nal(data: bytes, step: int | None = None) -> None:
    """An H.264 SPS NAL unit (ITU-T H.264 §7.3.2.1.1)."""
    sps = parse_sps(data)
    assert sps.width > 0 and sps.height > 0
    assert sps.fps is None or sps.fps > 0


AVCC_LENGTH_SIZES = (1, 2, 4)


def avcc(data: bytes, step: int | None = None) -> None:
    """An AVCC access unit.  Byte 0 picks the NAL length size (1, 2 or 4 bytes)."""
    if not data:
        return
    length_size = AVCC_LENGTH_SIZES[data[0] % len(AVCC_LENGTH_SIZES)]
    body = data[1:]
    nals = list(iter_nal_units(body, length_size))
    assert sum(len(nal) for nal in nals) <= len(body)
    annexb = avcc_to_annexb(body, length_size)
    assert len(annexb) == sum(4 + len(nal) for nal in nals)


def aac_config(data: bytes, step: int | None = None) -> None:
    """An AudioSpecificConfig, as the demuxer turns it into the stream's audio configuration."""
    config = audio_config_from_asc(data)
    assert config.sample_rate > 0 and config.channels > 0


def adts(data: bytes, step: int | None = None) -> None:
    """An ADTS stream split into frames."""
    total = 0
    for header, payload in iter_adts_frames(data):
        assert header.frame_length >= header.header_length
        total += header.frame_length
        assert len(payload) == header.frame_length - header.header_length
    assert total == len(data)


# --- HTTP-side parsers ------------------------------------------------------------------------------------


def playlist_summary(data: bytes, step: int | None = None) -> None:
    """The discovery watcher's playlist summary."""
    summary = summarize_playlist(data)
    assert summary.segments >= 0 and summary.media_sequence >= 0
    assert summary.target_duration is None or summary.target_duration >= 0


def edge_playlist(data: bytes, step: int | None = None) -> None:
    """The edge's freshness decision for an upstream playlist body."""
    target = playlist_target_duration(data)
    assert target is None or target >= 0
    until = fresh_until("index.m3u8", 200, data, 100.0)
    assert until is None or 100.0 < until <= 100.0 + MAX_PLAYLIST_LIFETIME


def registry_entry(data: bytes, step: int | None = None) -> None:
    """A registry entry read back from the shared store (Redis) by edges and the API."""
    decode_entry(data)


def nginx_form(data: bytes, step: int | None = None) -> None:
    """An nginx-rtmp hook body (``on_publish`` and friends)."""
    fields = parse_form(data)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@dataclass(frozen=True, slots=True)
class Target:
    """One fuzz target: its function, where its seeds come from, and whether ``step`` matters to it."""

    name: str
    run: Callable[[bytes, int | None], None]
    seeds: Callable[[], tuple[bytes, ...]]
    incremental: bool = False
    max_len: int = 16384
    """libFuzzer's ``-max_len`` for this target: the largest input it builds."""


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("handshake", handshake, seeds.handshake_seeds, incremental=True),
        Target("chunk", chunk, seeds.chunk_seeds, incremental=True),
        Target("amf0", amf0, seeds.amf0_seeds),
        Target("amf3", amf3, seeds.amf3_seeds),
        Target("connection", connection, seeds.connection_seeds, incremental=True),
        Target("ingest", ingest, seeds.ingest_seeds, incremental=True, max_len=81920),
        Target("flv_file", flv_file, seeds.flv_file_seeds, incremental=True),
        Target("flv_tag", flv_tag, seeds.flv_tag_seeds),
        Target("avc_config", avc_config, seeds.avc_config_seeds),
        Target("sps", sps_nal, seeds.sps_seeds),
        Target("avcc", avcc, seeds.avcc_seeds),
        Target("aac_config", aac_config, seeds.aac_config_seeds),
        Target("adts", adts, seeds.adts_seeds),
        Target("playlist_summary", playlist_summary, seeds.playlist_seeds),
        Target("edge_playlist", edge_playlist, seeds.playlist_seeds),
        Target("registry_entry", registry_entry, seeds.registry_entry_seeds),
        Target("nginx_form", nginx_form, seeds.nginx_form_seeds),
    )
}


def run_target(target: Target, data: bytes, step: int | None = None) -> bool:
    """Run ``target`` on ``data``: True if it parsed, False on a peer error; anything else escapes."""
    try:
        target.run(data, step)
    except PEER_ERRORS:
        return False
    return True
