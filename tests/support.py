"""Test helpers: a queue that records jobs, and factories for tenants, members and tokens."""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from structlog._config import BoundLoggerLazyProxy

from hub.auth import service as auth
from hub.auth.models import ROLE_SCOPES, Membership, Role, Scope, User
from hub.auth.principal import Principal, member_principal
from hub.core.ids import TenantID
from hub.core.jobs import Job
from hub.tenants import service as tenants
from hub.tenants.models import Tenant

PASSWORD = "correct horse battery staple"


@dataclass
class RecordingQueue:
    """A JobQueue that keeps what it was sent and, like arq, ignores a repeated job id."""

    sent: list[Job] = field(default_factory=list)

    async def send(self, job: Job) -> bool:
        if job.job_id is not None and any(j.job_id == job.job_id for j in self.sent):
            return False
        self.sent.append(job)
        return True

    def functions(self) -> list[str]:
        return [job.function for job in self.sent]


@dataclass
class Member:
    tenant: Tenant
    user: User
    membership: Membership
    token: str  # a bearer token with every scope the role allows

    @property
    def tenant_id(self) -> TenantID:
        return TenantID(self.tenant.id)

    @property
    def principal(self) -> Principal:
        """The member as a verified caller with every scope of their role."""
        return member_principal(
            user_id=self.user.id,
            email=self.user.email,
            tenant_id=self.tenant.id,
            role=self.membership.role,
            scopes=ROLE_SCOPES[self.membership.role],
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_tenant(session: AsyncSession, slug: str, name: str | None = None) -> Tenant:
    return await tenants.create_tenant(session, name=name or slug.title(), slug=slug)


async def make_member(
    session: AsyncSession,
    tenant: Tenant,
    *,
    email: str,
    role: Role = Role.ADMIN,
    scopes: frozenset[Scope] | None = None,
) -> Member:
    user = await auth.find_user_by_email(session, email)
    if user is None:
        user = await auth.create_user(session, email=email, password=PASSWORD)
    membership = await auth.add_member(session, tenant_id=TenantID(tenant.id), user=user, role=role)
    issued = await auth.issue_token(
        session,
        user=user,
        tenant_id=TenantID(tenant.id),
        scopes=scopes if scopes is not None else ROLE_SCOPES[role],
        name="test",
    )
    return Member(tenant=tenant, user=user, membership=membership, token=issued.plaintext)


def app_client(app: Any) -> httpx.AsyncClient:
    """An HTTP client that calls `app` in the test's own event loop (the database
    connection of the test's transaction is bound to that loop)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """`structlog.testing.capture_logs`, whatever ran before: `configure_logging` (any test
    that builds the app or runs the CLI) makes each module's logger cache its pipeline on
    first use, which capturing cannot reach. Each hub and worker module's `log` is a fresh,
    uncached logger meanwhile."""
    swapped: list[tuple[Any, Any]] = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in {"hub", "workers"}:
            continue
        if isinstance(getattr(module, "log", None), BoundLoggerLazyProxy):
            swapped.append((module, module.log))
            setattr(module, "log", structlog.get_logger(name))  # noqa: B010 - any module
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        for module, cached in swapped:
            module.log = cached
