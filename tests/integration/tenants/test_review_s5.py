"""A security review's findings in offboarding: an offboarded tenant's keys must stop being
used, and nobody may be given a way back into the tenant."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import Role, Scope, User
from hub.core.errors import Conflict
from hub.keys import service as keys
from hub.keys.models import ApiKey, ApiKeyVersion, KeyStatus
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.syncs import service as syncs
from hub.tenants import service as tenants
from hub.tenants.models import Tenant
from tests.support import PASSWORD, Member, make_member, make_tenant


async def tenant_with_key(session: AsyncSession, slug: str) -> tuple[Tenant, Member, ApiKey]:
    tenant = await make_tenant(session, slug)
    admin = await make_member(session, tenant, email=f"admin@{slug}.example")
    await keys.add_contract(session, admin.principal, number="H1234")
    data = KeyCreate(
        environment="production", key_id=f"{slug}-KEY", secret=f"{slug}-secret",
        hpms_user_id="RPUSER01", technical_poc=TechnicalPoc("Toni", "toni@plan.example"),
        contracts=["H1234"], verify=False,
    )  # fmt: skip
    key = await keys.create_key(session, admin.principal, data=data, verifier=None)
    return tenant, admin, key


@pytest.fixture
async def operator(session: AsyncSession) -> User:
    return await auth.create_user(
        session, email="ops@vendor.example", password=PASSWORD, is_operator=True
    )


class TestOffboarding:
    async def test_an_offboarded_tenants_keys_are_no_longer_synced(
        self, session: AsyncSession, operator: User
    ) -> None:
        doomed, _, doomed_key = await tenant_with_key(session, "doomed")
        _, _, kept_key = await tenant_with_key(session, "kept")
        await tenants.offboard_tenant(session, tenant=doomed, operator=operator)
        served = {pair.key_id for pair in await syncs.serving_pairs(session)}
        assert doomed_key.id not in served
        assert kept_key.id in served
        await session.refresh(doomed_key)
        assert doomed_key.status is KeyStatus.DEACTIVATED
        versions = (
            await session.scalars(
                select(ApiKeyVersion).where(ApiKeyVersion.api_key_id == doomed_key.id)
            )
        ).all()
        assert [v.secret for v in versions] == [None]
        audited = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "key.deactivated", AuditEntry.tenant_id == doomed.id
                )
            )
        ).all()
        assert [e.target_id for e in audited] == [str(doomed_key.id)]

    async def test_no_token_or_membership_is_given_in_an_offboarded_tenant(
        self, session: AsyncSession, operator: User
    ) -> None:
        doomed, admin, _ = await tenant_with_key(session, "doomed")
        await tenants.offboard_tenant(session, tenant=doomed, operator=operator)
        with pytest.raises(Conflict, match="offboarded"):
            await auth.issue_token(
                session, user=admin.user, tenant_id=admin.tenant_id,
                scopes=frozenset({Scope.KEYS_READ}), name="after",
            )  # fmt: skip
        newcomer = await auth.create_user(session, email="new@doomed.example", password=PASSWORD)
        with pytest.raises(Conflict, match="offboarded"):
            await auth.add_member(
                session, tenant_id=admin.tenant_id, user=newcomer, role=Role.ADMIN
            )
        assert await auth.authenticate(session, admin.token) is None
