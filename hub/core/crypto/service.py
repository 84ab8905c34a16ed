"""Tenant keys and sealing with only a session in hand: create, load (cached), seal, open,
index; and the building blocks of rotation and shredding (re-wrap, re-seal, count by key
version, discard retired keys, destroy)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import (
    Column,
    LargeBinary,
    MetaData,
    Table,
    delete,
    func,
    select,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.crypto.cache import Crypto
from hub.core.crypto.errors import (
    CryptoNotConfigured,
    MasterKeyRejected,
    MasterKeyUnavailable,
    RetiredKeyInUse,
    TenantKeyDestroyed,
    TenantKeyMissing,
)
from hub.core.crypto.keyring import WrapKeyRejected, WrapKeyUnknown, WrappedKey
from hub.core.crypto.models import KeyPurpose, KeyState, TenantKey
from hub.core.crypto.sealed import (
    DATA_KEY_BYTES,
    Sealed,
    SealedColumn,
    TenantCipher,
    normalise_for_index,
)
from hub.core.db import utcnow
from hub.core.db.engine import CRYPTO_INFO_KEY


def crypto_of(session: AsyncSession) -> Crypto:
    """The `Crypto` the session's `Database` carries."""
    crypto: Crypto | None = session.info.get(CRYPTO_INFO_KEY)
    if crypto is None:
        raise CryptoNotConfigured(
            "this session has no crypto: build its Database with crypto=Crypto.from_settings(…)"
        )
    return crypto


def _wrap_context(tenant_id: UUID, purpose: KeyPurpose, version: int) -> bytes:
    return b"hub.tenant-key|%b|%b|%d" % (tenant_id.bytes, purpose.value.encode(), version)


async def _unwrap(crypto: Crypto, key: TenantKey) -> bytes:
    assert key.wrapped_key is not None
    master = key.master_key_version
    assert master is not None
    purpose, tenant_id, version = key.purpose.value, key.tenant_id, key.version
    try:
        return await crypto.provider.unwrap(
            WrappedKey(master, key.wrapped_key),
            context=_wrap_context(key.tenant_id, key.purpose, key.version),
        )
    except WrapKeyUnknown:
        raise MasterKeyUnavailable(
            master_version=master, tenant_id=tenant_id, purpose=purpose, version=version
        ) from None
    except WrapKeyRejected:
        raise MasterKeyRejected(
            master_version=master, tenant_id=tenant_id, purpose=purpose, version=version
        ) from None


async def _new_key(
    session: AsyncSession, crypto: Crypto, tenant_id: UUID, purpose: KeyPurpose, version: int
) -> TenantKey:
    wrapped = await crypto.provider.wrap(
        secrets.token_bytes(DATA_KEY_BYTES), context=_wrap_context(tenant_id, purpose, version)
    )
    key = TenantKey(
        tenant_id=tenant_id,
        purpose=purpose,
        version=version,
        state=KeyState.ACTIVE,
        wrapped_key=wrapped.blob,
        master_key_version=wrapped.master_version,
    )
    session.add(key)
    return key


async def _tenant_keys(session: AsyncSession, tenant_id: UUID) -> Sequence[TenantKey]:
    statement = select(TenantKey).where(TenantKey.tenant_id == tenant_id)
    return (await session.scalars(statement.order_by(TenantKey.version))).all()


async def _tenant_exists(session: AsyncSession, tenant_id: UUID) -> bool:
    tenants = TenantKey.metadata.tables["tenants"]
    return await session.scalar(select(tenants.c.id).where(tenants.c.id == tenant_id)) is not None


def _refuse_if_destroyed(keys: Sequence[TenantKey], tenant_id: UUID) -> None:
    if any(k.state is KeyState.DESTROYED for k in keys):
        raise TenantKeyDestroyed(tenant_id=tenant_id, version=None)


async def ensure_tenant_key(session: AsyncSession, tenant_id: UUID) -> None:
    """Give the tenant an active data key and an index key if it has none (idempotent)."""
    crypto = crypto_of(session)
    keys = await _tenant_keys(session, tenant_id)
    _refuse_if_destroyed(keys, tenant_id)
    data = [k for k in keys if k.purpose is KeyPurpose.DATA]
    if not any(k.state is KeyState.ACTIVE for k in data):
        next_version = max((k.version for k in data), default=0) + 1
        await _new_key(session, crypto, tenant_id, KeyPurpose.DATA, next_version)
    if not any(k.purpose is KeyPurpose.INDEX for k in keys):
        await _new_key(session, crypto, tenant_id, KeyPurpose.INDEX, 1)
    await session.flush()


async def load_cipher(session: AsyncSession, tenant_id: UUID) -> TenantCipher:
    """Unwrap the tenant's live keys from the database (bypassing the cache) and cache them.

    A tenant that has no keys at all (created before they existed) gets them here."""
    crypto = crypto_of(session)
    keys = await _tenant_keys(session, tenant_id)
    if not keys:
        if not await _tenant_exists(session, tenant_id):
            raise TenantKeyMissing(tenant_id=tenant_id, version=None)
        await ensure_tenant_key(session, tenant_id)
        keys = await _tenant_keys(session, tenant_id)
    _refuse_if_destroyed(keys, tenant_id)
    data_keys: dict[int, bytes] = {}
    active: int | None = None
    index_key: bytes | None = None
    for key in keys:
        unwrapped = await _unwrap(crypto, key)
        if key.purpose is KeyPurpose.INDEX:
            index_key = unwrapped
            continue
        data_keys[key.version] = unwrapped
        if key.state is KeyState.ACTIVE:
            active = key.version
    if active is None:
        raise TenantKeyMissing(tenant_id=tenant_id, version=None)
    cipher = TenantCipher(
        tenant_id, active_version=active, data_keys=data_keys, index_key=index_key
    )
    crypto.remember(cipher)
    return cipher


async def cipher_for(session: AsyncSession, tenant_id: UUID) -> TenantCipher:
    """The tenant's cipher, for sealing and opening many values in a loop: from the cache
    when warm and current. A cached cipher that lacks the tenant's newest data key (another
    process rotated it: values sealed under it would not open here, for as long as the
    cache lives) is reloaded; checking costs one index probe, once per loop."""
    cached = crypto_of(session).cached(tenant_id)
    if cached is not None:
        newest = await session.scalar(
            select(func.max(TenantKey.version)).where(
                TenantKey.tenant_id == tenant_id, TenantKey.purpose == KeyPurpose.DATA
            )
        )
        if newest is None or newest in cached.versions:
            return cached
    return await load_cipher(session, tenant_id)


async def seal(
    session: AsyncSession, plaintext: str, *, tenant: UUID, field: str, row: UUID
) -> Sealed:
    """Seal `plaintext` under the tenant's active data key, bound to (tenant, field, row)."""
    crypto: Crypto | None = session.info.get(CRYPTO_INFO_KEY)  # crypto_of(), inlined: hot path
    cipher = (crypto or crypto_of(session)).cached(tenant) or await load_cipher(session, tenant)
    return cipher.seal(plaintext, field=field, row=row)


async def open(
    session: AsyncSession, sealed: Sealed, *, tenant: UUID, field: str, row: UUID
) -> str:
    """The plaintext of `sealed`, which must have been sealed for this (tenant, field, row)."""
    crypto: Crypto | None = session.info.get(CRYPTO_INFO_KEY)  # crypto_of(), inlined: hot path
    cipher = (crypto or crypto_of(session)).cached(tenant) or await load_cipher(session, tenant)
    try:
        return cipher.open(sealed, field=field, row=row)
    except TenantKeyMissing:
        # Another process may have rotated the tenant's data key since this one cached it.
        cipher = await load_cipher(session, tenant)
        return cipher.open(sealed, field=field, row=row)


async def blind_index(
    session: AsyncSession,
    value: str,
    *,
    tenant: UUID,
    field: str,
    normalise: Callable[[str], str] = normalise_for_index,
) -> str:
    """A keyed HMAC (64 hex) of the normalised value, for exact-match lookup on a sealed
    column. Keyed by the tenant's index key, which data-key rotation leaves alone."""
    cipher = await cipher_for(session, tenant)
    return cipher.blind_index(value, field=field, normalise=normalise)


async def check_master_keys(session: AsyncSession) -> None:
    """Refuse a key ring that cannot unwrap the tenant keys stored: each master key version
    that live keys are under must be in the ring and must unwrap one of them. Raises
    `MasterKeyUnavailable` or `MasterKeyRejected` (naming the version, never a key)."""
    crypto = crypto_of(session)
    versions = await session.scalars(
        select(TenantKey.master_key_version).where(TenantKey.wrapped_key.is_not(None)).distinct()
    )
    for version in versions.all():
        key = await session.scalar(
            select(TenantKey).where(TenantKey.master_key_version == version).limit(1)
        )
        if key is not None:  # destroyed meanwhile: nothing left to unwrap
            await _unwrap(crypto, key)


# Rotation and shredding building blocks ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    rewrapped: int
    last_id: UUID | None  # where the next batch starts; None when nothing was left


async def count_keys_to_rewrap(session: AsyncSession) -> dict[str, int]:
    """Live keys not under the active master key, by the master key version they are under.

    Raises `MasterKeyUnavailable` when any is under a version the ring does not hold, so a
    rotation that cannot finish refuses before it writes anything."""
    crypto = crypto_of(session)
    active = crypto.provider.active_version
    rows = await session.execute(
        select(TenantKey.master_key_version, func.count())
        .where(TenantKey.wrapped_key.is_not(None), TenantKey.master_key_version != active)
        .group_by(TenantKey.master_key_version)
    )
    counts = {str(version): int(count) for version, count in rows}
    for version in counts:
        if not crypto.provider.has_version(version):
            key = await session.scalar(
                select(TenantKey).where(TenantKey.master_key_version == version).limit(1)
            )
            assert key is not None
            raise MasterKeyUnavailable(
                master_version=version,
                tenant_id=key.tenant_id,
                purpose=key.purpose.value,
                version=key.version,
            )
    return counts


async def rewrap_batch(session: AsyncSession, *, after: UUID | None, limit: int) -> RewrapBatch:
    """Re-wrap up to `limit` live keys (in id order, after `after`) under the active master
    key. Only key material is touched: no sealed value is opened."""
    crypto = crypto_of(session)
    active = crypto.provider.active_version
    statement = select(TenantKey).where(
        TenantKey.wrapped_key.is_not(None), TenantKey.master_key_version != active
    )
    if after is not None:
        statement = statement.where(TenantKey.id > after)
    # Locked as read: an offboarding that destroys some of these meanwhile is waited for,
    # and its keys then drop out of the batch. Read unlocked, they were written back after
    # it committed, re-wrapped: the shredded tenant's keys alive again under the new key.
    statement = statement.order_by(TenantKey.id).limit(limit).with_for_update()
    keys = (await session.scalars(statement.execution_options(populate_existing=True))).all()
    for key in keys:
        plain = await _unwrap(crypto, key)
        wrapped = await crypto.provider.wrap(
            plain, context=_wrap_context(key.tenant_id, key.purpose, key.version)
        )
        key.wrapped_key, key.master_key_version = wrapped.blob, wrapped.master_version
    await session.flush()
    return RewrapBatch(rewrapped=len(keys), last_id=keys[-1].id if keys else None)


async def new_data_key_version(session: AsyncSession, tenant_id: UUID) -> int:
    """Retire the tenant's active data key and make a new one active; returns its version.

    Retired keys stay (wrapped) so values not yet re-sealed, or sealed meanwhile by a
    process with a stale cache, still open."""
    crypto = crypto_of(session)
    # Lock the data keys first: an offboarding under way is waited for and then refused,
    # rather than its destroyed keys marked retired and a new live key made for the tenant.
    _refuse_if_destroyed(await data_keys(session, tenant_id, lock=True), tenant_id)
    # Unwrap what is there first: a ring that cannot (a wrong key under the right version
    # name) must fail here, not wrap a new key that the real ring could never open.
    await load_cipher(session, tenant_id)
    keys = await _tenant_keys(session, tenant_id)
    data = [k for k in keys if k.purpose is KeyPurpose.DATA]
    for key in data:
        if key.state is KeyState.ACTIVE:
            key.state = KeyState.RETIRED
    version = max(k.version for k in data) + 1
    await session.flush()  # the retirement first: at most one active key at any moment
    await _new_key(session, crypto, tenant_id, KeyPurpose.DATA, version)
    await session.flush()
    crypto.forget(tenant_id)
    return version


async def data_keys(
    session: AsyncSession, tenant_id: UUID, *, lock: bool = False
) -> Sequence[TenantKey]:
    """The tenant's data keys, oldest version first; with `lock`, held until the transaction
    ends (on PostgreSQL: a rotation waits for it)."""
    statement = select(TenantKey).where(
        TenantKey.tenant_id == tenant_id, TenantKey.purpose == KeyPurpose.DATA
    )
    if lock and session.get_bind().dialect.name != "sqlite":  # SQLite: one writer anyway
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement.order_by(TenantKey.version))).all()


async def count_by_key_version(
    session: AsyncSession, tenant_id: UUID, ref: SealedColumnRef
) -> dict[int, int]:
    """How many of the tenant's values in one sealed column each data key version seals,
    read off the tokens' headers (bytes 2-5): nothing is opened."""
    version = func.substr(type_coerce(ref.column, LargeBinary), 2, 4, type_=LargeBinary)
    rows = await session.execute(
        select(version, func.count())
        .where(ref.table.c.tenant_id == tenant_id, ref.column.is_not(None))
        .group_by(version)
    )
    return {int.from_bytes(bytes(head), "big"): int(count) for head, count in rows}


async def discard_retired_keys(
    session: AsyncSession, tenant_id: UUID, refs: Sequence[SealedColumnRef]
) -> list[int]:
    """Erase the tenant's retired data keys (their rows, wrapped bytes and all) when no value
    in `refs` is sealed under one; the versions erased. Raises `RetiredKeyInUse`, naming the
    columns and counts, when some still are. Lock the keys first (`data_keys(lock=True)`)."""
    retired = {
        k.version: k for k in await data_keys(session, tenant_id) if k.state is KeyState.RETIRED
    }
    if not retired:
        return []
    uses: dict[int, dict[str, int]] = {}
    for ref in refs:
        for version, count in (await count_by_key_version(session, tenant_id, ref)).items():
            if version in retired:
                uses.setdefault(version, {})[ref.field] = count
    if uses:
        raise RetiredKeyInUse(tenant_id=tenant_id, uses=uses)
    await session.execute(
        delete(TenantKey).where(TenantKey.id.in_([k.id for k in retired.values()]))
    )
    crypto_of(session).forget(tenant_id)
    return sorted(retired)


async def destroy_tenant_keys(session: AsyncSession, tenant_id: UUID) -> int:
    """Crypto-shred: erase every wrapped key of the tenant; returns how many were live."""
    result = await session.execute(
        update(TenantKey)
        .where(TenantKey.tenant_id == tenant_id, TenantKey.state != KeyState.DESTROYED)
        .values(
            state=KeyState.DESTROYED,
            wrapped_key=None,
            master_key_version=None,
            destroyed_at=utcnow(),
        )
        .execution_options(synchronize_session="fetch")
    )
    crypto_of(session).forget(tenant_id)
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class SealedColumnRef:
    """A column of type `SealedColumn`, found in the metadata; its field is "table.column"."""

    table: Table
    column: Column  # type: ignore[type-arg]

    @property
    def field(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def sealed_columns(metadata: MetaData) -> list[SealedColumnRef]:
    """Every sealed column of every table, so rotation covers tables added later."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, SealedColumn):
                if "id" not in table.c or "tenant_id" not in table.c:
                    raise TypeError(
                        f"{table.name}.{column.name} is sealed but its table lacks an `id` or "
                        "`tenant_id` column, which sealing binds to"
                    )
                found.append(SealedColumnRef(table, column))
    return found


async def reseal_batch(
    session: AsyncSession,
    tenant_id: UUID,
    ref: SealedColumnRef,
    *,
    after: UUID | None,
    limit: int,
) -> tuple[int, UUID | None]:
    """Re-seal under the active data key up to `limit` of the tenant's values in one sealed
    column (id order, after `after`). Returns (re-sealed, last id seen or None when done).

    Each row is written only if it still holds the value read (nothing is locked: a sync
    or a secret rotation runs on meanwhile): a value rewritten since is left as its writer
    left it, not put back (an HPMS key or webhook secret rotated during a data-key rotation
    would revert to the old one). Sealed meanwhile under an old key, the late pass finds it."""
    cipher = await cipher_for(session, tenant_id)
    id_column, value = ref.table.c.id, ref.column
    statement = select(id_column, value).where(
        ref.table.c.tenant_id == tenant_id, value.is_not(None)
    )
    if after is not None:
        statement = statement.where(id_column > after)
    rows = (await session.execute(statement.order_by(id_column).limit(limit))).all()
    resealed = 0
    for row_id, sealed in rows:
        if sealed.key_version == cipher.active_version:
            continue
        plaintext = cipher.open(sealed, field=ref.field, row=row_id)
        fresh = cipher.seal(plaintext, field=ref.field, row=row_id)
        written = await session.execute(
            update(ref.table).where(id_column == row_id, value == sealed).values({value: fresh})
        )
        resealed += int(getattr(written, "rowcount", 0) or 0)
    return resealed, rows[-1][0] if rows else None
