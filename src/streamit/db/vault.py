"""Reversible encryption of stream keys, so owners can see a stream's key again ("reveal key").

Lookups never need it: ingest finds a stream by the key's SHA-256 digest (:mod:`streamit.db.keys`).  The
ciphertext exists only for the owner's convenience and is useless without the server secret.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamit.errors import ConfigError

SECRET_FILE_NAME = "secret.key"
_SECRET_BYTES = 32
# Binds the derived key to this one purpose: the same server secret may key other things later.
_HKDF_INFO = b"streamit stream-key vault v1"


def _fernet_key(secret: str) -> bytes:
    # HKDF (RFC 5869) turns a secret of any length and quality into the 32 bytes Fernet needs.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived)


def load_or_create_secret(path: Path) -> str:
    """The secret stored in ``path``; on first use a random one is written there with mode 0600."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    try:
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
        # link() publishes the complete file or fails if another process got there first, so nobody
        # ever reads a half-written secret and two processes starting together agree on one.
        os.link(draft, path)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise ConfigError(f"cannot create secret file {path}: {exc}") from exc
    finally:
        draft.unlink(missing_ok=True)
    return secret


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc}") from exc
    if not text:
        raise ConfigError(f"secret file {path} is empty; delete it to generate a new secret")
    return text


class KeyVault:
    """Encrypts and decrypts stream keys with a key derived from one server secret (Fernet)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the key-encryption secret must not be empty")
        self._fernet = Fernet(_fernet_key(secret))

    @classmethod
    def from_settings(cls, secret_key: str | None, data_dir: Path) -> KeyVault:
        """A vault keyed by ``secret_key`` or, when unset, by ``<data_dir>/secret.key`` (created once)."""
        if secret_key:
            return cls(secret_key)
        return cls(load_or_create_secret(data_dir / SECRET_FILE_NAME))

    def encrypt(self, key: str) -> str:
        """The ciphertext of ``key`` (ASCII, different on every call)."""
        return self._fernet.encrypt(key.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str | None:
        """The key inside ``ciphertext``; ``None`` if it was made with another secret or is damaged."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None
