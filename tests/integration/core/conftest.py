"""Fixtures of the core tests."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support import Member, make_member, make_tenant


@pytest.fixture
async def admin(session: AsyncSession) -> Member:
    """A tenant admin of tenant `acme`, committed."""
    member = await make_member(session, await make_tenant(session, "acme"), email="a@acme.example")
    await session.commit()
    return member
