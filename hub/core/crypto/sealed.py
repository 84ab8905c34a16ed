"""Sealed values: the token format, the per-tenant cipher that makes and opens them, and the
column type that stores them.

Token (bytes): format version (1 byte) ‖ data-key version (4 bytes, big-endian) ‖ nonce
(12 bytes) ‖ AES-256-GCM ciphertext and tag. Associated data: format version ‖ tenant id
(16 bytes) ‖ row id (16 bytes) ‖ field name (UTF-8), so a token copied to another tenant,
row or field does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from hub.core.crypto.errors import (
    CryptoError,
    MalformedSealedValue,
    SealedValueRejected,
    TenantKeyMissing,
    UnknownFormatVersion,
)
from hub.core.randomness import RandomBlocks

FORMAT_VERSION = 1
_FORMAT_BYTE = bytes([FORMAT_VERSION])
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = 1 + 4
_NONCE_END = _HEADER + NONCE_BYTES
_MIN_LENGTH = _NONCE_END + TAG_BYTES
DATA_KEY_BYTES = 32


class Sealed:
    """A sealed value as stored. Its `repr()` and `str()` are `'***'`: a sealed value that
    reaches a log line or a template shows nothing, not even its ciphertext."""

    __slots__ = ("token",)

    def __init__(self, token: bytes) -> None:
        self.token = token

    @property
    def format_version(self) -> int:
        return self.token[0] if self.token else 0

    @property
    def key_version(self) -> int:
        return int.from_bytes(self.token[1:_HEADER], "big")

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and hmac.compare_digest(self.token, other.token)

    def __hash__(self) -> int:
        return hash(self.token)


class SealedColumn(TypeDecorator[Sealed]):
    """A column holding a `Sealed` (binary). It only wraps and unwraps the Python object: no
    key lookup, no I/O. It refuses a plain `str` or `bytes`, so plaintext cannot be stored
    by mistake.

    Contract (data-key rotation relies on it): a value in column `c` of table `t` is sealed
    with `field="t.c"`, `row=<the row's id>` and `tenant=<the row's tenant_id>`.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Sealed | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise TypeError(
                f"a sealed column takes a Sealed value, not {type(value).__name__}: "
                "seal it first (hub.core.crypto.seal)"
            )
        return value.token

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Sealed | None:
        return None if value is None else Sealed(bytes(value))


# Nonces: 96 random bits each, drawn in blocks (never shared with a forked child).
_NONCES: RandomBlocks[bytes] = RandomBlocks(NONCE_BYTES, bytes)


_SPACES = re.compile(r"\s+")


def normalise_for_index(value: str) -> str:
    """NFKC, trimmed, case-folded, inner whitespace collapsed to one space."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value).strip()).casefold()


def _header(version: int) -> bytes:
    return _FORMAT_BYTE + version.to_bytes(4, "big")


class TenantCipher:
    """One tenant's unwrapped keys, ready to seal, open and index with no I/O.

    Built by `hub.core.crypto.cipher_for(session, tenant)` (which caches it); use it directly
    in a hot loop, e.g. sealing every PHI field of a downloaded file.
    """

    __slots__ = (
        "_aad_prefix",
        "_active",
        "_by_header",
        "_fields",
        "_header",
        "_index",
        "_prints",
        "tenant_id",
    )

    def __init__(
        self,
        tenant_id: UUID,
        *,
        active_version: int,
        data_keys: dict[int, bytes],
        index_key: bytes | None,
    ) -> None:
        if active_version not in data_keys:
            raise TenantKeyMissing(tenant_id=tenant_id, version=active_version)
        self.tenant_id = tenant_id
        # Keyed by the token's 5-byte header (format, key version): one slice and one dict
        # lookup find the key on the hot path. AESGCM objects are built once and reused.
        self._by_header = {_header(v): AESGCM(key) for v, key in data_keys.items()}
        self._header = _header(active_version)
        self._active = self._by_header[self._header]
        self._aad_prefix = _FORMAT_BYTE + tenant_id.bytes
        self._index = hmac.new(index_key, digestmod=hashlib.sha256) if index_key else None
        self._fields: dict[str, bytes] = {}  # field name -> UTF-8, a handful per tenant
        self._prints: dict[str, Callable[[str], str]] = {}  # field -> its fingerprinter

    def _field(self, field: str) -> bytes:
        encoded = self._fields.get(field)
        if encoded is None:
            encoded = self._fields[field] = field.encode()
        return encoded

    @property
    def active_version(self) -> int:
        return int.from_bytes(self._header[1:], "big")

    @property
    def versions(self) -> frozenset[int]:
        return frozenset(int.from_bytes(h[1:], "big") for h in self._by_header)

    def seal(self, plaintext: str, *, field: str, row: UUID) -> Sealed:
        nonce = _NONCES.take()
        aad = self._aad_prefix + row.bytes + (self._fields.get(field) or self._field(field))
        return Sealed(self._header + nonce + self._active.encrypt(nonce, plaintext.encode(), aad))

    def open(self, sealed: Sealed, *, field: str, row: UUID) -> str:
        token = sealed.token
        cipher = self._by_header.get(token[:_HEADER])
        if cipher is None or len(token) < _MIN_LENGTH:
            raise self._rejection(token, field, row)
        aad = self._aad_prefix + row.bytes + (self._fields.get(field) or self._field(field))
        try:
            return cipher.decrypt(token[_HEADER:_NONCE_END], token[_NONCE_END:], aad).decode()
        except InvalidTag:
            raise SealedValueRejected(
                tenant_id=self.tenant_id,
                field=field,
                row=row,
                version=int.from_bytes(token[1:_HEADER], "big"),
            ) from None

    def _rejection(self, token: bytes, field: str, row: UUID) -> CryptoError:
        if len(token) < _MIN_LENGTH:
            return MalformedSealedValue(
                f"{len(token)} bytes is too short to be a sealed value (truncated?)",
                tenant_id=self.tenant_id,
                field=field,
                row=row,
            )
        if token[0] != FORMAT_VERSION:
            return UnknownFormatVersion(token[0], tenant_id=self.tenant_id, field=field, row=row)
        version = int.from_bytes(token[1:_HEADER], "big")
        return TenantKeyMissing(tenant_id=self.tenant_id, version=version, field=field)

    def blind_index(
        self,
        value: str,
        *,
        field: str,
        normalise: Callable[[str], str] = normalise_for_index,
    ) -> str:
        """HMAC-SHA256 (hex) of the normalised value under the tenant's index key, bound to
        `field`: equal inputs give equal indexes within one tenant and field only."""
        if self._index is None:
            raise TenantKeyMissing(tenant_id=self.tenant_id, version=None, field=field)
        mac = self._index.copy()
        mac.update(field.encode() + b"\x00" + normalise(value).encode())
        return mac.hexdigest()

    def fingerprint(self, value: str, *, field: str) -> str:
        """A keyed BLAKE2b (hex, 128 bits) of `value` exactly as given, bound to `field`: the
        cheap "has this changed?" hash for whole downloaded rows, where `blind_index`'s
        normalising would cost more than the hashing. Its key is derived from the index key
        per field, so equal rows give equal fingerprints within one tenant and field only."""
        return self.fingerprinter(field)(value)

    def fingerprinter(self, field: str) -> Callable[[str], str]:
        """`fingerprint` for one field, as a function (for a loop over many values)."""
        made = self._prints.get(field)
        if made is not None:
            return made
        if self._index is None:
            raise TenantKeyMissing(tenant_id=self.tenant_id, version=None, field=field)
        mac = self._index.copy()
        mac.update(b"fingerprint\x00" + field.encode())
        keyed = hashlib.blake2b(key=mac.digest(), digest_size=16)  # copied: keyed once

        def fingerprint(value: str) -> str:
            digest = keyed.copy()
            digest.update(value.encode())
            return digest.hexdigest()

        self._prints[field] = fingerprint
        return fingerprint

    def __repr__(self) -> str:
        return f"TenantCipher(tenant_id={self.tenant_id}, versions={sorted(self.versions)})"
