"""Master keys: the versioned key ring, where it is loaded from, and the `KeyProvider` seam
through which tenant keys are wrapped (the local ring now; a KMS or Vault transit later)."""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.crypto.errors import CryptoError, MasterKeyError
from hub.settings import MASTER_KEY_BYTES, Settings, parse_master_keys

log = structlog.get_logger(__name__)

NONCE_BYTES = 12
KEY_FILE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key encrypted by a provider: which master key did it, and the opaque bytes."""

    master_version: str
    blob: bytes


class WrapKeyUnknown(CryptoError):
    """The provider holds no master key of this version."""

    def __init__(self, version: str) -> None:
        super().__init__(f"master key {version!r} is not available")
        self.version = version


class WrapKeyRejected(CryptoError):
    """The provider holds the version but the blob does not authenticate under it."""

    def __init__(self, version: str) -> None:
        super().__init__(f"master key {version!r} rejects the wrapped key")
        self.version = version


class KeyProvider(Protocol):
    """Wraps and unwraps tenant keys. `context` is bound as associated data: a wrapped key
    moved to another tenant (or purpose) does not unwrap."""

    @property
    def active_version(self) -> str:
        """The master key version new wraps use."""

    def has_version(self, version: str) -> bool:
        """Whether this provider can unwrap what `version` wrapped."""

    async def wrap(self, key: bytes, *, context: bytes) -> WrappedKey: ...

    async def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """The key, or `WrapKeyUnknown` / `WrapKeyRejected`."""


class MasterKeyRing:
    """Versioned 256-bit master keys, newest (active) first. `repr` shows versions only."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise MasterKeyError("the master key ring is empty")
        for version, key in keys:
            if len(key) != MASTER_KEY_BYTES:
                raise MasterKeyError(f"master key {version!r} is not {MASTER_KEY_BYTES} bytes")
        self.versions = [version for version, _ in keys]
        self._ciphers = {version: AESGCM(key) for version, key in keys}

    @classmethod
    def parse(cls, text: str, *, source: str = "HUB_MASTER_KEYS") -> MasterKeyRing:
        try:
            return cls(parse_master_keys(text.replace("\n", ",")))
        except ValueError as error:
            raise MasterKeyError(f"{source}: {error}") from None

    @property
    def active_version(self) -> str:
        return self.versions[0]

    def cipher(self, version: str) -> AESGCM | None:
        return self._ciphers.get(version)

    def __repr__(self) -> str:
        return f"MasterKeyRing(versions={self.versions!r})"


class LocalKeyRingProvider:
    """Wraps with AES-256-GCM under the ring's active master key: nonce ‖ ciphertext ‖ tag."""

    def __init__(self, ring: MasterKeyRing) -> None:
        self.ring = ring

    @property
    def active_version(self) -> str:
        return self.ring.active_version

    def has_version(self, version: str) -> bool:
        return self.ring.cipher(version) is not None

    async def wrap(self, key: bytes, *, context: bytes) -> WrappedKey:
        version = self.ring.active_version
        cipher = self.ring.cipher(version)
        assert cipher is not None  # the active version is in the ring by construction
        nonce = os.urandom(NONCE_BYTES)
        return WrappedKey(version, nonce + cipher.encrypt(nonce, key, context))

    async def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        cipher = self.ring.cipher(wrapped.master_version)
        if cipher is None:
            raise WrapKeyUnknown(wrapped.master_version)
        blob = wrapped.blob
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
        except (InvalidTag, ValueError):
            raise WrapKeyRejected(wrapped.master_version) from None


def generate_master_key(version: str) -> str:
    """A new ring entry `version:<base64 of 32 random bytes>` for HUB_MASTER_KEYS."""
    if not version or any(c in version for c in ":, \n"):
        raise MasterKeyError("a master key version is a short name without ':', ',' or spaces")
    return f"{version}:{base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()}"


def _read_key_file(path: Path, variable: str) -> MasterKeyRing:
    try:
        text = path.read_text()
    except OSError as error:
        raise MasterKeyError(f"{variable}: cannot read {path} ({error.strerror})") from None
    if path.stat().st_mode & 0o077:
        log.warning("master key file is readable by group or others", path=str(path))
    return MasterKeyRing.parse(text, source=f"{variable} ({path})")


def _create_local_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        return  # another process made it first; read theirs
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generate_master_key("local1") + "\n")
    log.warning(
        "generated a master key for local use only; set HUB_MASTER_KEYS in production",
        path=str(path),
    )


def load_key_ring(settings: Settings) -> MasterKeyRing:
    """HUB_MASTER_KEYS, else HUB_MASTER_KEY_FILE, else (not in production) a generated
    `<data dir>/master.key`, created with mode 0600 on first use."""
    if settings.master_keys is not None:
        return MasterKeyRing.parse(settings.master_keys)
    if settings.master_key_file is not None:
        return _read_key_file(settings.master_key_file.expanduser(), "HUB_MASTER_KEY_FILE")
    if settings.is_production:
        raise MasterKeyError("HUB_MASTER_KEYS: required when HUB_ENV=production")
    path = settings.default_master_key_file
    if not path.exists():
        _create_local_key_file(path)
    return _read_key_file(path, "master key file")
