"""KeyVault: stream keys encrypted with a server secret, from settings or a generated secret file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamit.db import KeyVault
from streamit.db.keys import generate_stream_key
from streamit.db.vault import SECRET_FILE_NAME, load_or_create_secret
from streamit.errors import ConfigError


def test_round_trip_and_fresh_ciphertexts() -> None:
    vault = KeyVault("correct horse")
    key = generate_stream_key()
    one, two = vault.encrypt(key), vault.encrypt(key)
    assert one != two  # random IV per encryption
    assert key not in one and key[3:] not in one
    assert vault.decrypt(one) == key and vault.decrypt(two) == key


def test_other_secret_or_damage_decrypts_to_none() -> None:
    ciphertext = KeyVault("one").encrypt("sk_abc")
    assert KeyVault("two").decrypt(ciphertext) is None
    # Damage past the base64 padding, which newer cryptography releases accept missing.
    body = ciphertext.rstrip("=")
    assert KeyVault("one").decrypt(body[:-4]) is None
    middle = len(body) // 2
    flipped = "A" if body[middle] != "A" else "B"
    assert KeyVault("one").decrypt(body[:middle] + flipped + body[middle + 1 :]) is None
    assert KeyVault("one").decrypt("not a token") is None
    assert KeyVault("one").decrypt("ü") is None


def test_empty_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        KeyVault("")


@given(st.text(max_size=200))
def test_decrypt_of_arbitrary_text_is_none(garbage: str) -> None:
    assert KeyVault("s").decrypt(garbage) is None


def test_secret_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    vault = KeyVault.from_settings(None, data_dir)
    secret_file = data_dir / SECRET_FILE_NAME
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 40
    ciphertext = vault.encrypt("sk_key")
    again = KeyVault.from_settings(None, data_dir)
    assert secret_file.read_text().strip() == secret
    assert again.decrypt(ciphertext) == "sk_key"


def test_configured_secret_wins_over_the_file(tmp_path: Path) -> None:
    ciphertext = KeyVault("configured").encrypt("sk_key")
    assert KeyVault.from_settings("configured", tmp_path).decrypt(ciphertext) == "sk_key"
    assert not (tmp_path / SECRET_FILE_NAME).exists()


def test_empty_secret_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / SECRET_FILE_NAME
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_or_create_secret(path)


def test_creating_leaves_no_draft_files(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path / SECRET_FILE_NAME)
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE_NAME]
    assert load_or_create_secret(tmp_path / SECRET_FILE_NAME) == secret


def test_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE_NAME).mkdir()
    with pytest.raises(ConfigError):
        load_or_create_secret(tmp_path / SECRET_FILE_NAME)
