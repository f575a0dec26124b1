from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamit.errors import RemoteProtocolError, UnsupportedCodec
from streamit.mpegts.adts import ADTS_HEADER_SIZE, AdtsHeader
from tests.conftest import require_tool
from tests.mpegts.flv_fixture import read_flv

MEDIA = read_flv()


def decode_adts(header: bytes) -> dict[str, int]:
    value = int.from_bytes(header[:7], "big")
    return {
        "sync": value >> 44,
        "id": (value >> 43) & 1,
        "layer": (value >> 41) & 3,
        "protection_absent": (value >> 40) & 1,
        "profile": (value >> 38) & 3,
        "sampling_index": (value >> 34) & 0xF,
        "channels": (value >> 30) & 7,
        "length": (value >> 13) & 0x1FFF,
        "fullness": (value >> 2) & 0x7FF,
        "blocks": value & 3,
    }


@settings(deadline=None)  # shared CI machines are slow; correctness is what matters
@given(st.integers(1, 4), st.integers(0, 12), st.integers(0, 7), st.integers(0, 8191 - 7))
def test_fields(object_type: int, sampling_index: int, channels: int, size: int) -> None:
    header = AdtsHeader(object_type, sampling_index, channels).header(size)
    assert len(header) == ADTS_HEADER_SIZE
    assert decode_adts(header) == {
        "sync": 0xFFF,
        "id": 0,
        "layer": 0,
        "protection_absent": 1,
        "profile": object_type - 1,
        "sampling_index": sampling_index,
        "channels": channels,
        "length": size + 7,
        "fullness": 0x7FF,
        "blocks": 0,
    }


@pytest.mark.parametrize(("object_type", "index", "channels"), [(6, 4, 2), (0, 4, 2), (2, 15, 2), (2, 13, 1)])
def test_unsupported_configurations(object_type: int, index: int, channels: int) -> None:
    with pytest.raises(UnsupportedCodec):
        AdtsHeader(object_type, index, channels)


@pytest.mark.parametrize("object_type", [5, 29])
def test_he_aac_is_written_as_its_aac_lc_core(object_type: int) -> None:
    header = decode_adts(AdtsHeader(object_type, 6, 1).header(100))
    assert header["profile"] == 1 and header["sampling_index"] == 6 and header["channels"] == 1


def test_oversized_frame_is_the_peers_error() -> None:
    with pytest.raises(RemoteProtocolError):
        AdtsHeader(2, 4, 2).header(8192 - 7)


def test_ffprobe_decodes_real_frames_behind_our_headers(tmp_path: Path) -> None:
    ffprobe = require_tool("ffprobe")
    audio = MEDIA.audio
    adts = AdtsHeader(audio.object_type, audio.sampling_index, audio.channel_config)
    frames = MEDIA.audio_frames
    path = tmp_path / "audio.aac"
    path.write_bytes(b"".join(adts.header(len(f.data)) + f.data for f in frames))
    result = subprocess.run(
        [ffprobe, "-v", "error", "-show_streams", "-count_frames", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    assert result.stderr == ""
    (stream,) = json.loads(result.stdout)["streams"]
    assert stream["codec_name"] == "aac" and stream["profile"] == "LC"
    assert int(stream["sample_rate"]) == 44100 and stream["channels"] == 2
    assert int(stream["nb_read_frames"]) == len(frames)
