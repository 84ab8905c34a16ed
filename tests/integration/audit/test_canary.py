"""A canary secret goes through every audited path; it never reaches the audit log."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import service as audit
from hub.audit.models import AuditChainHead, AuditEntry
from hub.audit.service import Actor, AuditDetailRefused
from hub.auth import service as auth
from hub.core.crypto import service as key_service
from hub.core.crypto.models import KeyPurpose, TenantKey
from hub.core.db import Database
from hub.tenants import keys
from hub.tenants import service as tenants
from tests.support import PASSWORD, make_member, make_tenant
from tests.trust import (
    TEST_MASTER_KEY,
    open_all,
    ring,
    sealed_metadata,
    sealed_table,
    store_secret,
    with_crypto,
)

CANARY = "CANARY-4f9c2e-never-log-me"
NEW_MASTER_KEY = bytes(range(100, 132))


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[Table]:
    async with sealed_table(engine) as created:
        yield created


async def audit_log_text(database: Database) -> str:
    """Every column of every audit row and chain head, as text."""
    async with database.transaction() as session:
        entries = (await session.execute(select(AuditEntry.__table__))).all()
        heads = (await session.execute(select(AuditChainHead.__table__))).all()
    return "\n".join(repr(tuple(row)) for row in [*entries, *heads])


class TestCanary:
    async def test_secrets_never_reach_the_audit_log(
        self, committed_db: Database, table: Table
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme")
            await store_secret(session, tenant.id, "key", CANARY)
            member = await make_member(session, tenant, email="admin@acme.example")
            operator = await auth.create_user(
                session, email="ops@vendor.example", password=PASSWORD, is_operator=True
            )
            stored = await session.scalar(
                select(TenantKey).where(
                    TenantKey.tenant_id == tenant.id, TenantKey.purpose == KeyPurpose.DATA
                )
            )
            assert stored is not None
            assert committed_db.crypto is not None
            # The unwrapped key, only to prove below that its bytes appear nowhere.
            data_key = await key_service._unwrap(committed_db.crypto, stored)
            principal = await auth.authenticate(session, member.token)
            assert principal is not None
            assert principal.token_id is not None
            await auth.revoke_token(session, principal, token_id=principal.token_id)
            with pytest.raises(AuditDetailRefused):
                await audit.record(session, actor=Actor.system(), action="tests.leak",
                                   tenant_id=tenant.id, details={"secret": CANARY})  # fmt: skip
        assert await open_all(committed_db, tenant.id) == {"key": CANARY}

        await keys.rotate_data_key(committed_db, tenant_id=tenant.id, actor=Actor.cli(),
                                   metadata=sealed_metadata, settle_seconds=0)  # fmt: skip
        rotating = with_crypto(
            committed_db, ring(("v2", NEW_MASTER_KEY), ("test1", TEST_MASTER_KEY))
        )
        await keys.rotate_master_key(rotating, actor=Actor.cli())
        async with committed_db.transaction() as session:
            fresh = await tenants.get_tenant_by_slug(session, "acme")
            await tenants.offboard_tenant(session, tenant=fresh, operator=operator)

        text = await audit_log_text(committed_db)
        actions = {line.split("'")[1] for line in text.splitlines() if "tests." in line}
        assert "tests.leak" not in actions
        for needle in (
            CANARY,
            member.token,
            member.token[12:],  # the part after the display prefix
            base64.b64encode(TEST_MASTER_KEY).decode(),
            base64.b64encode(NEW_MASTER_KEY).decode(),
            data_key.hex(),
            base64.b64encode(data_key).decode(),
            PASSWORD,
        ):
            assert needle not in text
        for action in ("token.issued", "token.revoked", "tenant.data_key.rotated",
                       "master_key.rotated", "tenant.offboarded"):  # fmt: skip
            assert action in text
