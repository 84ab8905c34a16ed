"""Review (s5b) of the complaints API and resolutions: each test names a defect it proves."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import utcnow
from hub.keys.models import Environment
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import make_complaint

BASE = "/api/v1/complaints"


class TestPagination:
    async def test_pages_hold_each_complaint_once_across_environments(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid, received = staff.caseworker.tenant_id, utcnow().date() - timedelta(days=1)
        made = set()
        for n in range(60):
            for environment in (Environment.PRODUCTION, Environment.SANDBOX):
                c = await make_complaint(
                    session, tid, complaint_id=f"CTM-{n % 30:04d}", received=received,
                    environment=environment, contract="H1234" if n < 30 else "H5678",
                )  # fmt: skip
                made.add(str(c.id))
        await session.commit()
        seen: list[str] = []
        for limit in (7, 3, 11):
            seen = []
            for offset in range(0, len(made), limit):
                response = await client.get(
                    BASE, params={"limit": limit, "offset": offset},
                    headers=staff.caseworker.headers,
                )  # fmt: skip
                assert response.status_code == 200, response.text
                seen += [c["id"] for c in response.json()]
            assert sorted(seen) == sorted(made), limit
