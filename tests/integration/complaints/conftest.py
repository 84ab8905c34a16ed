"""A tenant with a caseworker, a viewer and an admin for the complaints API tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Role
from tests.support import Member, make_member, make_tenant


@dataclass
class Staff:
    caseworker: Member
    viewer: Member
    other: Member  # a caseworker of another tenant


@pytest.fixture
async def staff(session: AsyncSession) -> Staff:
    tenant = await make_tenant(session, "plan-a")
    caseworker = await make_member(
        session, tenant, email="case@plan-a.example", role=Role.CASEWORKER
    )
    viewer = await make_member(session, tenant, email="view@plan-a.example", role=Role.VIEWER)
    other_tenant = await make_tenant(session, "plan-b")
    other = await make_member(
        session, other_tenant, email="case@plan-b.example", role=Role.CASEWORKER
    )
    await session.commit()
    return Staff(caseworker, viewer, other)
