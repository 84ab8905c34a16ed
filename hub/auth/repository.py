"""Tenant-scoped queries for memberships and tokens: every one starts from a `TenantID`."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from hub.auth.models import ApiToken, Membership, Role, User
from hub.core.errors import NotFound
from hub.core.ids import TenantID


def memberships(tenant_id: TenantID) -> Select[Membership]:
    return (
        select(Membership)
        .where(Membership.tenant_id == tenant_id)
        .options(joinedload(Membership.user))
    )


def tokens(tenant_id: TenantID) -> Select[ApiToken]:
    return select(ApiToken).where(ApiToken.tenant_id == tenant_id)


async def list_members(session: AsyncSession, tenant_id: TenantID) -> Sequence[Membership]:
    statement = memberships(tenant_id).join(Membership.user).order_by(User.email)
    return (await session.scalars(statement)).all()


async def get_member(session: AsyncSession, tenant_id: TenantID, membership_id: UUID) -> Membership:
    member = await session.scalar(memberships(tenant_id).where(Membership.id == membership_id))
    if member is None:
        raise NotFound("membership", membership_id)
    return member


async def find_member_by_user(
    session: AsyncSession, tenant_id: TenantID, user_id: UUID
) -> Membership | None:
    return await session.scalar(memberships(tenant_id).where(Membership.user_id == user_id))


async def get_token(session: AsyncSession, tenant_id: TenantID, token_id: UUID) -> ApiToken:
    token = await session.scalar(tokens(tenant_id).where(ApiToken.id == token_id))
    if token is None:
        raise NotFound("api_token", token_id)
    return token


async def list_tokens(
    session: AsyncSession, tenant_id: TenantID, *, user_id: UUID | None = None
) -> Sequence[ApiToken]:
    statement = tokens(tenant_id)
    if user_id is not None:
        statement = statement.where(ApiToken.user_id == user_id)
    return (await session.scalars(statement.order_by(ApiToken.created_at))).all()


async def count_admins(session: AsyncSession, tenant_id: TenantID) -> int:
    statement = (
        select(func.count())
        .select_from(Membership)
        .where(Membership.tenant_id == tenant_id, Membership.role == Role.ADMIN)
    )
    return int(await session.scalar(statement) or 0)
