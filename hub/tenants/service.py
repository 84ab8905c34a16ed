"""Tenant lifecycle: create (with its data key) and look up."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import crypto
from hub.core.errors import Conflict, Invalid, NotFound
from hub.core.ids import TenantID
from hub.tenants.models import Tenant

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_slug(slug: str) -> str:
    slug = slug.strip()
    if not SLUG_PATTERN.fullmatch(slug):
        raise Invalid(
            "slug", "use 1-63 lower-case letters, digits and hyphens, not starting or ending with -"
        )
    return slug


async def create_tenant(session: AsyncSession, *, name: str, slug: str) -> Tenant:
    slug = check_slug(slug)
    name = name.strip()
    if not name:
        raise Invalid("name", "must not be empty")
    if len(name) > 200:
        raise Invalid("name", "must be at most 200 characters")
    if await find_tenant_by_slug(session, slug) is not None:
        raise Conflict(f"a tenant with slug {slug!r} already exists", field="slug")
    tenant = Tenant(name=name, slug=slug)
    session.add(tenant)
    await session.flush()
    await crypto.ensure_tenant_key(session, tenant.id)
    return tenant


async def find_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await find_tenant_by_slug(session, slug)
    if tenant is None:
        raise NotFound("tenant", slug)
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: TenantID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(select(Tenant).order_by(Tenant.slug))).all()
