"""Tenant key operations that span many transactions, each batch audited as it commits:
re-wrapping every tenant key under the newest master key, rotating one tenant's data key
(re-sealing its values in every sealed column), and erasing the data keys a rotation
retired once nothing is sealed under them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import MetaData

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth import mfa
from hub.core.crypto import service as keys
from hub.core.crypto.cache import DEFAULT_CACHE_TTL_SECONDS
from hub.core.crypto.errors import (
    CryptoNotConfigured,
    RotationNotSettled,
    TenantKeyDestroyed,
    TenantKeyMissing,
)
from hub.core.crypto.models import KeyState
from hub.core.db import Database, utcnow
from hub.core.jobs import JOB_TIMEOUT_SECONDS

DEFAULT_BATCH_SIZE = 500
# After a data key rotation, how long another process may still seal under the old key: its
# cached copy lives this long, and a job that took it just before expiry runs this long.
SETTLE_SECONDS = DEFAULT_CACHE_TTL_SECONDS + JOB_TIMEOUT_SECONDS


@dataclass
class MasterKeyRotation:
    active_version: str
    pending_before: dict[str, int]  # live keys per older master key version, at the start
    rewrapped: int = 0
    batches: int = 0


@dataclass
class DataKeyRotation:
    tenant_id: UUID
    version: int
    resealed: dict[str, int] = field(default_factory=dict)  # per "table.column"
    # Sealed under the old key by other processes meanwhile, re-sealed by the late pass.
    resealed_late: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.resealed.values())

    @property
    def total_late(self) -> int:
        return sum(self.resealed_late.values())


@dataclass(frozen=True, slots=True)
class DiscardedKeys:
    tenant_id: UUID
    active_version: int
    discarded: list[int]  # the retired versions erased


async def _rewrap_two_step(database: Database, *, actor: Actor, active: str) -> None:
    """Users' two-step secrets, wrapped by the same ring: one transaction (one per user)."""
    async with database.transaction() as session:
        rewrapped = await mfa.rewrap_all(session)
        await audit.record(
            session,
            actor=actor,
            action=audit.MASTER_KEY_ROTATED,
            tenant_id=None,
            target_type="master_key",
            target_id=active,
            details={"two_step_secrets": rewrapped},
        )


def _check_batch_size(batch_size: int) -> None:
    if not 1 <= batch_size <= 10_000:
        raise ValueError(f"batch size must be 1..10000, not {batch_size}")


async def rotate_master_key(
    database: Database,
    *,
    actor: Actor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[MasterKeyRotation], None] | None = None,
) -> MasterKeyRotation:
    """Re-wrap every live tenant key not yet under the active master key, `batch_size` per
    transaction. No sealed value is opened. Interrupted, it can simply be run again: what
    committed stays re-wrapped, and the rest is found by its master key version. Refuses
    before writing anything when a key is under a version the ring lacks."""
    _check_batch_size(batch_size)
    crypto = database.crypto
    if crypto is None:
        raise CryptoNotConfigured("rotate_master_key: the database was built without crypto")
    async with database.transaction() as session:
        pending = await keys.count_keys_to_rewrap(session)
        two_step = await mfa.count_to_rewrap(session)
    report = MasterKeyRotation(crypto.provider.active_version, pending)
    if two_step:
        await _rewrap_two_step(database, actor=actor, active=report.active_version)
    after: UUID | None = None
    while True:
        async with database.transaction() as session:
            batch = await keys.rewrap_batch(session, after=after, limit=batch_size)
            if batch.rewrapped:
                await audit.record(
                    session,
                    actor=actor,
                    action=audit.MASTER_KEY_ROTATED,
                    tenant_id=None,
                    target_type="master_key",
                    target_id=report.active_version,
                    details={"batch": report.batches + 1, "rewrapped": batch.rewrapped},
                )
        if batch.last_id is None:
            return report
        after = batch.last_id
        report.rewrapped += batch.rewrapped
        report.batches += 1
        if on_batch is not None:
            on_batch(report)


async def rotate_data_key(
    database: Database,
    *,
    tenant_id: UUID,
    actor: Actor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    metadata: MetaData | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_wait: Callable[[float], None] | None = None,
) -> DataKeyRotation:
    """Give the tenant a new data key version, then re-seal each of its values in every
    sealed column (found through the column type) under it, batch by batch. Values not yet
    re-sealed keep opening under the retired key meanwhile; if interrupted, run it again (a
    further version is made and everything still on an older one is re-sealed).
    `metadata` defaults to every table of the hub.

    Other processes (web, workers) keep sealing under the old key until their cached copy
    expires, and a job that took it just before may write with it until it ends: so once
    `settle_seconds` have passed since the new key became active (`on_wait` is told how
    long is left), a late pass re-seals what they sealed meanwhile. 0 skips it (one process
    only, as in a test)."""
    from hub import models  # every table, including those added after this module

    _check_batch_size(batch_size)
    async with database.transaction() as session:
        version = await keys.new_data_key_version(session, tenant_id)
        await audit.record(
            session,
            actor=actor,
            action=audit.TENANT_DATA_KEY_ROTATED,
            tenant_id=tenant_id,
            target_type="data_key",
            target_id=version,
            details={"version": version, "stage": "new_key"},
        )
    activated = time.monotonic()
    report = DataKeyRotation(tenant_id, version)
    columns = keys.sealed_columns(metadata if metadata is not None else models.metadata)
    for ref in columns:
        report.resealed[ref.field] = await _reseal_column(database, tenant_id, ref, batch_size)
    if settle_seconds > 0:
        left = settle_seconds - (time.monotonic() - activated)
        if left > 0:
            if on_wait is not None:
                on_wait(left)
            await sleep(left)
        for ref in columns:
            late = await _reseal_column(database, tenant_id, ref, batch_size)
            report.resealed_late[ref.field] = late
    async with database.transaction() as session:
        await audit.record(
            session,
            actor=actor,
            action=audit.TENANT_DATA_KEY_ROTATED,
            tenant_id=tenant_id,
            target_type="data_key",
            target_id=version,
            details={
                "version": version, "stage": "resealed", "values": report.total,
                "late": report.total_late,
            },
        )  # fmt: skip
    return report


async def _reseal_column(
    database: Database, tenant_id: UUID, ref: keys.SealedColumnRef, batch_size: int
) -> int:
    resealed, after = 0, None
    while True:
        async with database.transaction() as session:
            count, after = await keys.reseal_batch(
                session, tenant_id, ref, after=after, limit=batch_size
            )
        resealed += count
        if after is None:
            return resealed


async def discard_retired_keys(
    database: Database,
    *,
    tenant_id: UUID,
    actor: Actor,
    metadata: MetaData | None = None,
    settle_seconds: float = SETTLE_SECONDS,
) -> DiscardedKeys:
    """Erase the tenant's retired data keys, so that the master key no longer opens anything
    they sealed (in a backup, say). One transaction: the tenant's data keys are locked (a
    rotation waits), every sealed column is counted by key version off the tokens' headers
    (nothing is opened), and the retired keys go only if no value names one; audited.

    Refuses while the active key is younger than `settle_seconds`: another process may
    still seal under the key it replaced (0 skips the check: only when nothing else runs)."""
    from hub import models  # every table, including those added after this module

    columns = keys.sealed_columns(metadata if metadata is not None else models.metadata)
    async with database.transaction() as session:
        held = await keys.data_keys(session, tenant_id, lock=True)
        active = next((k for k in held if k.state is KeyState.ACTIVE), None)
        if any(k.state is KeyState.DESTROYED for k in held):
            raise TenantKeyDestroyed(tenant_id=tenant_id, version=None)
        if active is None:
            raise TenantKeyMissing(tenant_id=tenant_id, version=None)
        age = (utcnow() - active.created_at).total_seconds()
        if age < settle_seconds:
            raise RotationNotSettled(
                tenant_id=tenant_id, version=active.version, wait_seconds=settle_seconds - age
            )
        discarded = await keys.discard_retired_keys(session, tenant_id, columns)
        if discarded:
            await audit.record(
                session,
                actor=actor,
                action=audit.TENANT_DATA_KEYS_DISCARDED,
                tenant_id=tenant_id,
                target_type="data_key",
                target_id=active.version,
                details={"active_version": active.version, "discarded_versions": discarded},
            )
    return DiscardedKeys(tenant_id, active.version, discarded)
