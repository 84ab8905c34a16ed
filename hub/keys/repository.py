"""Tenant-scoped queries for keys, versions, contracts and designees."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.errors import NotFound
from hub.core.ids import TenantID
from hub.keys.models import (
    ApiKey,
    ApiKeyContract,
    ApiKeyDesignee,
    ApiKeyVersion,
    Contract,
    Environment,
    KeyStatus,
    VersionState,
)


def keys(tenant_id: TenantID) -> Select[ApiKey]:
    return select(ApiKey).where(ApiKey.tenant_id == tenant_id)


async def get_key(session: AsyncSession, tenant_id: TenantID, key_id: UUID) -> ApiKey:
    key = await session.scalar(keys(tenant_id).where(ApiKey.id == key_id))
    if key is None:
        raise NotFound("api_key", key_id)
    return key


async def lock_key(session: AsyncSession, tenant_id: TenantID, key_id: UUID) -> ApiKey:
    """The key, locked for this transaction (PostgreSQL) so that lifecycle steps serialise."""
    statement = keys(tenant_id).where(ApiKey.id == key_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update()
    key = await session.scalar(statement.execution_options(populate_existing=True))
    if key is None:
        raise NotFound("api_key", key_id)
    return key


async def list_keys(session: AsyncSession, tenant_id: TenantID) -> Sequence[ApiKey]:
    return (await session.scalars(keys(tenant_id).order_by(ApiKey.created_at))).all()


async def current_version(session: AsyncSession, key: ApiKey) -> ApiKeyVersion | None:
    return await session.scalar(
        select(ApiKeyVersion).where(
            ApiKeyVersion.tenant_id == key.tenant_id,
            ApiKeyVersion.api_key_id == key.id,
            ApiKeyVersion.state == VersionState.CURRENT,
        )
    )


async def versions(session: AsyncSession, key: ApiKey) -> Sequence[ApiKeyVersion]:
    return (
        await session.scalars(
            select(ApiKeyVersion)
            .where(ApiKeyVersion.tenant_id == key.tenant_id, ApiKeyVersion.api_key_id == key.id)
            .order_by(ApiKeyVersion.created_at)
        )
    ).all()


async def key_id_taken(session: AsyncSession, environment: Environment, key_id: str) -> bool:
    """Whether any tenant registered this CMS key ID in this environment (answer only yes/no)."""
    found = await session.scalar(
        select(ApiKeyVersion.id).where(
            ApiKeyVersion.environment == environment, ApiKeyVersion.key_id == key_id
        )
    )
    return found is not None


async def list_contracts(session: AsyncSession, tenant_id: TenantID) -> Sequence[Contract]:
    return (
        await session.scalars(
            select(Contract).where(Contract.tenant_id == tenant_id).order_by(Contract.number)
        )
    ).all()


async def contracts_by_number(
    session: AsyncSession, tenant_id: TenantID, numbers: Sequence[str]
) -> dict[str, Contract]:
    found = await session.scalars(
        select(Contract).where(Contract.tenant_id == tenant_id, Contract.number.in_(numbers))
    )
    return {c.number: c for c in found}


async def key_contracts(
    session: AsyncSession, tenant_id: TenantID, key_ids: Sequence[UUID]
) -> Sequence[tuple[ApiKeyContract, Contract]]:
    rows = await session.execute(
        select(ApiKeyContract, Contract)
        .join(Contract, Contract.id == ApiKeyContract.contract_id)
        .where(ApiKeyContract.tenant_id == tenant_id, ApiKeyContract.api_key_id.in_(key_ids))
        .order_by(Contract.number)
    )
    return [(mapping, contract) for mapping, contract in rows]


async def key_versions(
    session: AsyncSession, tenant_id: TenantID, key_ids: Sequence[UUID]
) -> Sequence[ApiKeyVersion]:
    return (
        await session.scalars(
            select(ApiKeyVersion)
            .where(ApiKeyVersion.tenant_id == tenant_id, ApiKeyVersion.api_key_id.in_(key_ids))
            .order_by(ApiKeyVersion.created_at)
        )
    ).all()


async def designees(
    session: AsyncSession, tenant_id: TenantID, key_ids: Sequence[UUID]
) -> Sequence[ApiKeyDesignee]:
    return (
        await session.scalars(
            select(ApiKeyDesignee).where(
                ApiKeyDesignee.tenant_id == tenant_id, ApiKeyDesignee.api_key_id.in_(key_ids)
            )
        )
    ).all()


async def active_coverage(
    session: AsyncSession, tenant_id: TenantID
) -> Sequence[tuple[str, Environment, ApiKey]]:
    """(contract number, environment, key) for every active key's live contract mapping,
    oldest key first: the first key listed for a pair is the one that serves it."""
    rows = await session.execute(
        select(Contract.number, ApiKey.environment, ApiKey)
        .join(ApiKeyContract, ApiKeyContract.contract_id == Contract.id)
        .join(ApiKey, ApiKey.id == ApiKeyContract.api_key_id)
        .where(
            Contract.tenant_id == tenant_id,
            ApiKey.status == KeyStatus.ACTIVE,
            ApiKeyContract.access_lost_at.is_(None),
        )
        .order_by(Contract.number, ApiKey.environment, ApiKey.created_at, ApiKey.id)
    )
    return [(number, environment, key) for number, environment, key in rows]
