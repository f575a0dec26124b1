"""AAC configuration and framing: AudioSpecificConfig parsing, ADTS headers.

FLV/RTMP and MP4 carry raw AAC frames plus an out-of-band AudioSpecificConfig; MPEG-TS carries each
frame behind a 7-byte ADTS header instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from streamit.errors import RemoteProtocolError, UnsupportedCodec
from streamit.media.bitstream import BitReader
from streamit.media.frame import AudioConfig

SAMPLING_FREQUENCIES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
"""``samplingFrequencyIndex`` → Hz (ISO/IEC 14496-3 §1.6.3.4, Table 1.18); 13-14 reserved, 15 escape."""

ESCAPE_SAMPLING_INDEX = 15
"""``samplingFrequencyIndex`` meaning "explicit 24-bit frequency follows"."""

# ISO/IEC 14496-3 §1.6.3.5 Table 1.19 (with the 2009/Amd.4 additions 11-14).
_CHANNELS_BY_CONFIG = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 13: 24, 14: 8}

AOT_AAC_LC = 2
AOT_SBR = 5
AOT_PS = 29
_AOT_ER_BSAC = 22
# Object types whose specific config is GASpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
_GA_OBJECT_TYPES = frozenset({1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23})
_SYNC_EXTENSION_SBR = 0x2B7
_SYNC_EXTENSION_PS = 0x548

ADTS_HEADER_SIZE = 7
_ADTS_MAX_FRAME = (1 << 13) - 1


@dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    """A parsed AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).

    ``object_type`` is the signalled type (5 = SBR/HE-AAC, 29 = PS/HE-AACv2 when signalled
    hierarchically); ``core_object_type`` is the underlying codec (normally 2 = AAC-LC).
    ``sample_rate``/``channels`` describe the decoded output: with SBR the output rate is the
    extension rate, and parametric stereo turns a mono core into stereo output.
    """

    object_type: int
    core_object_type: int
    sampling_index: int
    core_sample_rate: int
    sample_rate: int
    channel_config: int
    channels: int
    sbr: bool
    ps: bool
    frame_length: int  # 1024 or 960 samples per frame (frameLengthFlag)

    def to_audio_config(self, record: bytes) -> AudioConfig:
        """The neutral :class:`AudioConfig` for this configuration; ``record`` is the raw ASC."""
        return AudioConfig(
            codec="aac",
            record=bytes(record),
            object_type=self.object_type,
            sample_rate=self.sample_rate,
            channels=self.channels,
            sampling_index=self.sampling_index,
            channel_config=self.channel_config,
        )


def _object_type(bits: BitReader) -> int:
    # GetAudioObjectType(), ISO/IEC 14496-3 §1.6.2.1.1: 31 escapes to 32 + 6 more bits.
    value = bits.read(5)
    return 32 + bits.read(6) if value == 31 else value


def _sampling_frequency(bits: BitReader) -> tuple[int, int]:
    index = bits.read(4)
    if index == ESCAPE_SAMPLING_INDEX:
        frequency = bits.read(24)
        if frequency == 0:
            raise RemoteProtocolError("AudioSpecificConfig has an explicit sampling frequency of 0 Hz")
        # An explicit rate that is in the table still has a table index ADTS can carry.
        if frequency in SAMPLING_FREQUENCIES:
            return SAMPLING_FREQUENCIES.index(frequency), frequency
        return ESCAPE_SAMPLING_INDEX, frequency
    if index >= len(SAMPLING_FREQUENCIES):
        raise RemoteProtocolError(f"AudioSpecificConfig uses reserved samplingFrequencyIndex {index}")
    return index, SAMPLING_FREQUENCIES[index]


def parse_audio_specific_config(record: bytes) -> AudioSpecificConfig:
    """Parse an AudioSpecificConfig, including explicit SBR/PS signalling (hierarchical and the
    backward-compatible sync extension). Raises :class:`RemoteProtocolError` on malformed bytes and
    :class:`UnsupportedCodec` for object types that are not AAC."""
    bits = BitReader(bytes(record), "AudioSpecificConfig")
    object_type = _object_type(bits)
    if object_type == 0:
        raise RemoteProtocolError("AudioSpecificConfig has audioObjectType 0 (null)")
    sampling_index, core_rate = _sampling_frequency(bits)
    channel_config = bits.read(4)
    sbr = ps = False
    output_rate = core_rate
    core_type = object_type
    if object_type in (AOT_SBR, AOT_PS):
        # Explicit hierarchical signalling (§1.6.2.1): the core type follows the extension rate.
        sbr = True
        ps = object_type == AOT_PS
        _, output_rate = _sampling_frequency(bits)
        core_type = _object_type(bits)
        if core_type == _AOT_ER_BSAC:
            bits.skip(4)  # extensionChannelConfiguration
    if core_type not in _GA_OBJECT_TYPES:
        raise UnsupportedCodec(f"MPEG-4 audio object type {core_type} is not AAC (only AAC is supported)")
    frame_length, channels = _ga_specific_config(bits, core_type, channel_config)

    if not sbr and bits.remaining >= 16 and bits.read(11) == _SYNC_EXTENSION_SBR:
        # Backward-compatible explicit signalling appended after the core config (§1.6.2.1).
        extension_type = _object_type(bits)
        if extension_type == AOT_SBR and bits.flag():
            sbr = True
            _, output_rate = _sampling_frequency(bits)
            if bits.remaining >= 12 and bits.read(11) == _SYNC_EXTENSION_PS:
                ps = bits.flag()
            object_type = AOT_PS if ps else AOT_SBR
    if ps and channels == 1:
        channels = 2
    return AudioSpecificConfig(
        object_type=object_type,
        core_object_type=core_type,
        sampling_index=sampling_index,
        core_sample_rate=core_rate,
        sample_rate=output_rate,
        channel_config=channel_config,
        channels=channels,
        sbr=sbr,
        ps=ps,
        frame_length=frame_length,
    )


def _ga_specific_config(bits: BitReader, object_type: int, channel_config: int) -> tuple[int, int]:
    # GASpecificConfig, ISO/IEC 14496-3 §4.4.1 Table 4.1.
    frame_length = 960 if bits.flag() else 1024
    if bits.flag():  # dependsOnCoreCoder
        bits.skip(14)  # coreCoderDelay
    extension_flag = bits.flag()
    if channel_config == 0:
        channels = _program_config_channels(bits)
    elif channel_config in _CHANNELS_BY_CONFIG:
        channels = _CHANNELS_BY_CONFIG[channel_config]
    else:
        raise RemoteProtocolError(f"AudioSpecificConfig uses reserved channelConfiguration {channel_config}")
    if object_type in (6, 20):
        bits.skip(3)  # layerNr
    if extension_flag:
        if object_type == _AOT_ER_BSAC:
            bits.skip(16)  # numOfSubFrame, layer_length
        if object_type in (17, 19, 20, 23):
            bits.skip(3)  # the three *_resilience_flags
        bits.skip(1)  # extensionFlag3
    return frame_length, channels


def _program_config_channels(bits: BitReader) -> int:
    # program_config_element(), ISO/IEC 14496-3 §4.4.1.1 Table 4.2: count the output channels.
    bits.skip(4 + 2 + 4)  # element_instance_tag, object_type, sampling_frequency_index
    front, side, back = bits.read(4), bits.read(4), bits.read(4)
    lfe, assoc_data, valid_cc = bits.read(2), bits.read(3), bits.read(4)
    for _ in range(2):  # mono_mixdown_present / stereo_mixdown_present
        if bits.flag():
            bits.skip(4)
    if bits.flag():  # matrix_mixdown_idx_present
        bits.skip(3)
    channels = lfe
    for _ in range(front + side + back):
        channels += 2 if bits.flag() else 1  # *_element_is_cpe
        bits.skip(4)
    bits.skip(4 * lfe + 4 * assoc_data + 5 * valid_cc)
    bits.byte_align()
    bits.skip(8 * bits.read(8))  # comment_field_data
    if channels == 0:
        raise RemoteProtocolError("AudioSpecificConfig program_config_element declares no channels")
    return channels


def audio_config_from_asc(record: bytes) -> AudioConfig:
    """Parse an AudioSpecificConfig straight into the neutral :class:`AudioConfig`."""
    return parse_audio_specific_config(record).to_audio_config(record)


class AdtsWriter:
    """Builds ADTS headers (ISO/IEC 13818-7 §6.2 / ISO/IEC 14496-3 §1.A.2.2) for one configuration.

    Everything but ``aac_frame_length`` is fixed per configuration, so it is computed once; each header
    is then one OR, one shift and one ``int.to_bytes``. HE-AAC is written as its AAC-LC core (implicit
    SBR signalling), as ADTS can only name object types 1-4.
    """

    __slots__ = ("_constant",)

    def __init__(self, config: AudioConfig) -> None:
        object_type = AOT_AAC_LC if config.object_type in (AOT_SBR, AOT_PS) else config.object_type
        if not 1 <= object_type <= 4:
            raise UnsupportedCodec(f"AAC object type {config.object_type} cannot be carried in ADTS")
        if config.sampling_index >= len(SAMPLING_FREQUENCIES):
            raise UnsupportedCodec(f"AAC sample rate {config.sample_rate} Hz cannot be carried in ADTS")
        if not 1 <= config.channel_config <= 7:
            raise UnsupportedCodec(
                f"AAC channel configuration {config.channel_config} cannot be carried in ADTS"
            )
        # With a PS/SBR config the ADTS header describes the core: its rate is the core rate.
        sampling_index = config.sampling_index
        header = (
            (0xFFF << 44)  # syncword
            | (0 << 43)  # ID: MPEG-4
            | (0 << 41)  # layer
            | (1 << 40)  # protection_absent: no CRC
            | ((object_type - 1) << 38)  # profile_ObjectType
            | (sampling_index << 34)
            | (config.channel_config << 30)
            | (0x7FF << 2)  # adts_buffer_fullness: variable bitrate
        )
        self._constant = header

    def header(self, payload_length: int) -> bytes:
        """The 7-byte ADTS header for a raw AAC frame of ``payload_length`` bytes."""
        frame_length = payload_length + ADTS_HEADER_SIZE
        if frame_length > _ADTS_MAX_FRAME or payload_length < 0:
            raise RemoteProtocolError(f"an AAC frame of {payload_length} bytes does not fit an ADTS header")
        return (self._constant | (frame_length << 13)).to_bytes(7, "big")

    def frame(self, payload: bytes) -> bytes:
        """``payload`` (one raw AAC frame) with its ADTS header in front."""
        return self.header(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class AdtsHeader:
    """A parsed ADTS fixed + variable header."""

    mpeg_version: int  # 4 or 2 (the ID bit)
    protection_absent: bool
    object_type: int  # profile_ObjectType + 1
    sampling_index: int
    channel_config: int
    frame_length: int  # header included
    buffer_fullness: int
    raw_data_blocks: int  # number_of_raw_data_blocks_in_frame + 1

    @property
    def header_length(self) -> int:
        """7, or 9 when a CRC follows the header."""
        return ADTS_HEADER_SIZE if self.protection_absent else ADTS_HEADER_SIZE + 2

    @property
    def sample_rate(self) -> int:
        """The sampling frequency in Hz."""
        return SAMPLING_FREQUENCIES[self.sampling_index]


def parse_adts_header(data: bytes | memoryview) -> AdtsHeader:
    """Parse the ADTS header at the start of ``data``. Raises :class:`RemoteProtocolError`."""
    if len(data) < ADTS_HEADER_SIZE:
        raise RemoteProtocolError(f"ADTS header is truncated ({len(data)} bytes)")
    value = int.from_bytes(data[:ADTS_HEADER_SIZE], "big")
    if value >> 44 != 0xFFF:
        raise RemoteProtocolError("ADTS syncword not found")
    if (value >> 41) & 0x3:
        raise RemoteProtocolError("ADTS layer is not 0")
    sampling_index = (value >> 34) & 0xF
    if sampling_index >= len(SAMPLING_FREQUENCIES):
        raise RemoteProtocolError(f"ADTS uses reserved sampling_frequency_index {sampling_index}")
    header = AdtsHeader(
        mpeg_version=2 if (value >> 43) & 1 else 4,
        protection_absent=bool((value >> 40) & 1),
        object_type=((value >> 38) & 0x3) + 1,
        sampling_index=sampling_index,
        channel_config=(value >> 30) & 0x7,
        frame_length=(value >> 13) & 0x1FFF,
        buffer_fullness=(value >> 2) & 0x7FF,
        raw_data_blocks=(value & 0x3) + 1,
    )
    if header.frame_length < header.header_length:
        raise RemoteProtocolError(f"ADTS aac_frame_length {header.frame_length} is shorter than its header")
    return header


def iter_adts_frames(data: bytes) -> Iterator[tuple[AdtsHeader, bytes]]:
    """Split an ADTS stream into ``(header, raw AAC payload)`` pairs.

    Raises :class:`RemoteProtocolError` on a bad header or a frame truncated by the end of ``data``.
    """
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        header = parse_adts_header(view[offset:])
        end = offset + header.frame_length
        if end > len(view):
            raise RemoteProtocolError("ADTS frame is truncated")
        yield header, bytes(view[offset + header.header_length : end])
        offset = end
