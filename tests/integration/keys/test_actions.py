"""Who may do what to a key, as pages ask it (`actions_for`), checked against what each
service call then allows; and what deactivating a responsible party's user does to keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import Alert
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import ApiToken, Role, Scope
from hub.core.errors import Conflict, Forbidden
from hub.keys import service
from hub.keys.api import key_views
from hub.keys.models import ApiKey, KeyStatus
from hub.keys.schemas import KeyCreate, TechnicalPoc
from tests.support import Member, make_member, make_tenant


@dataclass
class Plan:
    rp: Member
    admin: Member
    viewer: Member


@pytest.fixture
async def plan(session: AsyncSession) -> Plan:
    tenant = await make_tenant(session, "plan", "Plan Health")
    admin = await make_member(session, tenant, email="admin@plan.example", role=Role.ADMIN)
    rp = await make_member(session, tenant, email="rp@plan.example", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="viewer@plan.example", role=Role.VIEWER)
    for number in ("H1234", "S5678"):
        await service.add_contract(session, admin.principal, number=number)
    await session.commit()
    return Plan(rp, admin, viewer)


async def new_key(session: AsyncSession, member: Member, key_id: str) -> ApiKey:
    body = KeyCreate(
        environment="sandbox", key_id=key_id, secret="the-secret-value", hpms_user_id="U1",
        technical_poc=TechnicalPoc("T", "t@plan.example"), contracts=["H1234"], verify=False,
    )  # fmt: skip
    return await service.create_key(session, member.principal, data=body, verifier=None)


async def _into(session: AsyncSession, plan: Plan, key: ApiKey, state: str) -> None:
    """Bring `key` (of plan.rp) into `state`."""
    if state == "suspended":
        await service.suspend_key(session, plan.rp.principal, key_id=key.id)
    elif state == "compromised":
        await service.report_compromise(
            session, tenant_id=plan.rp.tenant_id, key_id=key.id, actor=Actor.system()
        )
    elif state == "invalid":
        await service.mark_invalid(
            session, tenant_id=plan.rp.tenant_id, key_id=key.id, reason="CMS said 403"
        )
    elif state == "deactivated":
        await service.deactivate_key(session, plan.rp.principal, key_id=key.id)
    elif state == "rp_removed":
        await auth.remove_member(session, plan.admin.principal, membership_id=plan.rp.membership.id)
    elif state == "rp_deactivated":
        await auth.deactivate_user(session, plan.rp.user, actor=Actor.cli())
    await session.flush()


STATES = ["active", "suspended", "compromised", "invalid", "deactivated", "rp_removed",
          "rp_deactivated"]  # fmt: skip
Call = Callable[[AsyncSession, Any, ApiKey], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "deactivate": lambda s, p, k: service.deactivate_key(s, p, key_id=k.id),
    "suspend": lambda s, p, k: service.suspend_key(s, p, key_id=k.id),
    "resume": lambda s, p, k: service.resume_key(s, p, key_id=k.id),
    "designees": lambda s, p, k: service.set_designees(s, p, key_id=k.id, users=[], tokens=[]),
    "set_contracts": lambda s, p, k: service.set_contracts(s, p, key_id=k.id, numbers=["S5678"]),
}


class TestActionsFor:
    @pytest.mark.parametrize("state", STATES)
    @pytest.mark.parametrize("who", ["rp", "admin", "viewer"])
    async def test_each_flag_is_what_the_service_allows(
        self, session: AsyncSession, plan: Plan, state: str, who: str
    ) -> None:
        key = await new_key(session, plan.rp, f"K-{state}-{who}")
        await session.commit()
        await _into(session, plan, key, state)
        await session.commit()
        principal = getattr(plan, who).principal
        may = await service.actions_for(session, principal, key)
        for action, call in CALLS.items():
            savepoint = await session.begin_nested()
            try:
                await call(session, principal, key)
                allowed = True
            except (Forbidden, Conflict):
                allowed = False
            await savepoint.rollback()
            await session.refresh(key)
            if action == "set_contracts" and not principal.has_scope(Scope.TENANT_ADMIN):
                allowed = False  # the route asks tenant:admin before the service
            assert getattr(may, action) is allowed, (action, state, who)

    async def test_an_admin_may_deactivate_once_the_rp_has_left_and_not_before(
        self, session: AsyncSession, plan: Plan
    ) -> None:
        key = await new_key(session, plan.rp, "K-LEFT")
        await session.commit()
        assert not (await service.actions_for(session, plan.admin.principal, key)).deactivate
        await _into(session, plan, key, "rp_removed")
        assert key.status is KeyStatus.NEEDS_REPLACEMENT
        assert (await service.actions_for(session, plan.admin.principal, key)).deactivate
        assert not (await service.actions_for(session, plan.viewer.principal, key)).deactivate


class TestDeactivatingTheRpsUser:
    async def test_their_keys_need_replacing_in_every_tenant_audited_and_alerted(
        self, session: AsyncSession, plan: Plan
    ) -> None:
        beta = await make_tenant(session, "beta", "Beta Plans")
        beta_admin = await make_member(session, beta, email="admin@beta.example")
        there = await make_member(session, beta, email="rp@plan.example", role=Role.CASEWORKER)
        await service.add_contract(session, beta_admin.principal, number="H1234")
        here_key = await new_key(session, plan.rp, "K-HERE")
        there_key = await new_key(session, there, "K-THERE")
        await session.commit()
        assert await auth.deactivate_user(session, plan.rp.user, actor=Actor.cli()) == 0
        await session.commit()
        for key in (here_key, there_key):
            await session.refresh(key)
            assert key.status is KeyStatus.NEEDS_REPLACEMENT
            assert key.status_reason == service.USER_DEACTIVATED
        orphaned = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "key.orphaned"))
        ).all()
        assert {e.target_id for e in orphaned} == {str(here_key.id), str(there_key.id)}
        assert all(e.details["reason"] == service.USER_DEACTIVATED for e in orphaned)
        alerted = (await session.scalars(select(Alert))).all()
        assert {str(a.tenant_id) for a in alerted} >= {str(plan.rp.tenant_id), str(beta.id)}

    async def test_they_stop_being_designees_and_their_key_tokens_are_revoked(
        self, session: AsyncSession, plan: Plan
    ) -> None:
        key = await new_key(session, plan.rp, "K-DESIGNEE")
        cw = await make_member(
            session, plan.rp.tenant, email="cw@plan.example", role=Role.CASEWORKER
        )
        await service.set_designees(
            session, plan.rp.principal, key_id=key.id, users=[cw.user.id], tokens=[]
        )
        issued = await auth.issue_token(
            session, user=cw.user, tenant_id=cw.tenant_id,
            scopes=frozenset({Scope.CTM_GATEWAY}), name="gateway", api_key_id=key.id,
        )  # fmt: skip
        await session.commit()
        await auth.deactivate_user(session, cw.user, actor=Actor.cli())
        await session.commit()
        await session.refresh(key)
        assert key.status is KeyStatus.ACTIVE  # its RP is still here
        assert (await service.actions_for(session, plan.rp.principal, key)).rotate
        [view] = await key_views(session, plan.rp.tenant_id, [key])
        assert view.designees.users == []
        token = await session.get(ApiToken, issued.token.id)
        assert token is not None
        await session.refresh(token)
        assert token.revoked_at is not None

    async def test_a_returning_rp_finds_the_key_to_rotate_not_restored_unasked(
        self, session: AsyncSession, plan: Plan
    ) -> None:
        key = await new_key(session, plan.rp, "K-BACK")
        await session.commit()
        await auth.deactivate_user(session, plan.rp.user, actor=Actor.cli())
        await auth.reactivate_user(session, plan.rp.user, actor=Actor.cli())
        await session.commit()
        await session.refresh(key)
        assert key.status is KeyStatus.NEEDS_REPLACEMENT
        may = await service.actions_for(session, plan.rp.principal, key)
        assert may.rotate
        assert may.deactivate
        assert not (await service.actions_for(session, plan.admin.principal, key)).deactivate
