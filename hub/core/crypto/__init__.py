"""Envelope encryption: per-tenant data keys wrapped by a versioned master key ring.

Services seal and open with only a session in hand (the session's `Database` carries a
`Crypto`, built once per process by create_app, the worker's on_startup or the CLI)::

    from hub.core import crypto

    row = ApiKeyVersion(tenant_id=tid)                 # ids exist from construction
    row.secret = await crypto.seal(session, raw, tenant=tid, field="api_key_versions.secret",
                                   row=row.id)
    raw = await crypto.open(session, row.secret, tenant=tid,
                            field="api_key_versions.secret", row=row.id)

    cipher = await crypto.cipher_for(session, tid)     # hot loops: sync, no I/O per value
    sealed = cipher.seal(text, field="complaints.narrative", row=complaint.id)
    text = cipher.open(sealed, field="complaints.narrative", row=complaint.id)

    digest = await crypto.blind_index(session, mbi, tenant=tid, field="complaints.mbi")
    # or cipher.blind_index(mbi, field="complaints.mbi"): 64 hex, for an indexed String(64)

Public API:

- `seal(session, plaintext: str, *, tenant, field, row) -> Sealed`
- `open(session, sealed: Sealed, *, tenant, field, row) -> str`
- `cipher_for(session, tenant) -> TenantCipher` with `.seal(...)`, `.open(...)`,
  `.blind_index(value, *, field, normalise=normalise_for_index) -> str`
- `blind_index(session, value, *, tenant, field, normalise=...) -> str`
- `ensure_tenant_key(session, tenant)`: called by tenant creation.
- `Sealed` (repr `'***'`), `SealedColumn` (the column type: `mapped_column(SealedColumn())`
  typed `Mapped[Sealed]`; it refuses plain str/bytes).
- `Crypto` (`Crypto.from_settings(settings)`), `KeyProvider`, `LocalKeyRingProvider`,
  `MasterKeyRing`, and the errors below.

Rules: a value in column `c` of table `t` is sealed with `field="t.c"`, `row=` the row's
`id` and `tenant=` its `tenant_id` — data-key rotation finds sealed columns through their
type and re-seals them by this rule. Open a secret only at the moment it is used.

Errors (all `CryptoError`; messages name key versions, tenant, field and row, never a
plaintext): `SealedValueRejected` (wrong tenant/field/row or altered bits),
`MalformedSealedValue` (truncated), `UnknownFormatVersion`, `TenantKeyMissing`,
`TenantKeyDestroyed` (offboarded), `MasterKeyUnavailable` (no ring key of that version),
`MasterKeyRejected` (wrong master key), `MasterKeyError` (ring cannot load),
`CryptoNotConfigured`.

Blind indexes are keyed by a separate per-tenant index key, not the data key: rotating the
data key leaves every stored index valid (no recomputation, lookups keep working during
a rotation). Master-key rotation re-wraps the index key like the data keys; offboarding
destroys it with them, so a shredded tenant's indexes can no longer be linked to values.
"""

from hub.core.crypto.cache import Crypto
from hub.core.crypto.errors import (
    CryptoError,
    CryptoNotConfigured,
    MalformedSealedValue,
    MasterKeyError,
    MasterKeyRejected,
    MasterKeyUnavailable,
    SealedValueRejected,
    TenantKeyDestroyed,
    TenantKeyMissing,
    UnknownFormatVersion,
)
from hub.core.crypto.keyring import (
    KeyProvider,
    LocalKeyRingProvider,
    MasterKeyRing,
    WrappedKey,
    generate_master_key,
    load_key_ring,
)
from hub.core.crypto.sealed import Sealed, SealedColumn, TenantCipher, normalise_for_index
from hub.core.crypto.service import (
    blind_index,
    cipher_for,
    crypto_of,
    ensure_tenant_key,
    open,
    seal,
)
from hub.core.db.engine import CRYPTO_INFO_KEY

__all__ = [
    "CRYPTO_INFO_KEY",
    "Crypto",
    "CryptoError",
    "CryptoNotConfigured",
    "KeyProvider",
    "LocalKeyRingProvider",
    "MalformedSealedValue",
    "MasterKeyError",
    "MasterKeyRejected",
    "MasterKeyRing",
    "MasterKeyUnavailable",
    "Sealed",
    "SealedColumn",
    "SealedValueRejected",
    "TenantCipher",
    "TenantKeyDestroyed",
    "TenantKeyMissing",
    "UnknownFormatVersion",
    "WrappedKey",
    "blind_index",
    "cipher_for",
    "crypto_of",
    "ensure_tenant_key",
    "generate_master_key",
    "load_key_ring",
    "normalise_for_index",
    "open",
    "seal",
]
