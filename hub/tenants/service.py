"""Tenant lifecycle: create (with its data key, audited), look up, and offboard (crypto-shred).

Key rotations that span many transactions live in `hub.tenants.keys`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.models import ApiToken, User
from hub.core import crypto
from hub.core.crypto.service import destroy_tenant_keys
from hub.core.db import postgres, utcnow
from hub.core.errors import Conflict, Forbidden, Invalid, NotFound
from hub.core.ids import TenantID
from hub.tenants.models import Tenant, TenantStatus

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def check_slug(slug: str) -> str:
    slug = slug.strip()
    if not SLUG_PATTERN.fullmatch(slug):
        raise Invalid(
            "slug", "use 1-63 lower-case letters, digits and hyphens, not starting or ending with -"
        )
    return slug


async def create_tenant(
    session: AsyncSession, *, name: str, slug: str, actor: Actor | None = None
) -> Tenant:
    """A new active tenant with its own data key (and blind-index key)."""
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
    await audit.record(
        session,
        actor=actor or Actor.system(),
        action=audit.TENANT_CREATED,
        tenant_id=tenant.id,
        target_type="tenant",
        target_id=tenant.id,
        details={"slug": slug},
    )
    return tenant


async def find_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await find_tenant_by_slug(session, slug)
    if tenant is None:
        raise NotFound("tenant", slug)
    return tenant


async def require_active(session: AsyncSession, tenant_id: TenantID) -> Tenant:
    """The tenant, refusing an offboarded one: nobody is let back into a shredded tenant.

    Called before something is made in the tenant (a key, an endpoint, a token, a member).
    On PostgreSQL the tenant's row is then held (FOR SHARE) until the transaction ends, so an
    offboarding, which takes it FOR UPDATE, waits for what is being made and then retires it
    too; and what starts after an offboarding waits for it and is refused. (SQLite has one
    writer: the two never overlap.)"""
    return await _locked(session, tenant_id, exclusive=False, refuse_offboarded=True)


async def _locked(
    session: AsyncSession, tenant_id: TenantID, *, exclusive: bool, refuse_offboarded: bool
) -> Tenant:
    statement = (
        select(Tenant).where(Tenant.id == tenant_id).execution_options(populate_existing=True)
    )
    if postgres.is_postgres(session):
        statement = statement.with_for_update(read=not exclusive)
    tenant = (await session.scalars(statement)).one_or_none()
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    if refuse_offboarded and not tenant.is_active:
        raise Conflict(f"tenant {tenant.slug} is offboarded", field="tenant")
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: TenantID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(select(Tenant).order_by(Tenant.slug))).all()


async def offboard_tenant(session: AsyncSession, *, tenant: Tenant, operator: User) -> int:
    """Crypto-shred the tenant: destroy its data and index keys, so every value sealed for
    it is unreadable from now on, revoke its API tokens, and mark it offboarded. Returns
    how many keys were destroyed. Platform operators only; not undoable."""
    from hub.keys.service import retire_tenant_keys  # keys build on tenants
    from hub.webhooks.service import disable_tenant_endpoints  # and so do webhooks

    if not operator.is_operator or not operator.is_active:
        raise Forbidden(f"{operator.email} is not a platform operator")
    # Whatever is being made in the tenant (`require_active`) commits first, and is retired
    # below with the rest; whatever starts now waits for this and is refused.
    tenant = await _locked(session, TenantID(tenant.id), exclusive=True, refuse_offboarded=False)
    if tenant.status is TenantStatus.OFFBOARDED:
        raise Conflict(f"tenant {tenant.slug} is already offboarded", field="slug")
    destroyed = await destroy_tenant_keys(session, tenant.id)
    now = utcnow()
    # Its keys would otherwise stay active: synced (and failing) every interval, forever.
    # Each is audited on its own.
    await retire_tenant_keys(
        session, tenant_id=TenantID(tenant.id), actor=Actor.operator(operator), now=now
    )
    # Its endpoints' signing secrets are shredded too: sending would only fail, forever.
    await disable_tenant_endpoints(
        session, TenantID(tenant.id), actor=Actor.operator(operator), reason="tenant offboarded"
    )
    revoked = await session.execute(
        update(ApiToken)
        .where(ApiToken.tenant_id == tenant.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    tenant.status, tenant.offboarded_at = TenantStatus.OFFBOARDED, now
    await audit.record(
        session,
        actor=Actor.operator(operator),
        action=audit.TENANT_OFFBOARDED,
        tenant_id=tenant.id,
        target_type="tenant",
        target_id=tenant.id,
        details={
            "slug": tenant.slug,
            "keys_destroyed": destroyed,
            "tokens_revoked": int(getattr(revoked, "rowcount", 0) or 0),
        },
    )
    await session.flush()
    return destroyed
