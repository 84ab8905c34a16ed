"""The HPMS key vault through its API and services, against the CTM simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import Alert, AlertKind
from hub.app import create_app
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import ApiToken, Role, Scope
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.errors import EnvironmentMismatch
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimKey, SimState
from hub.events.models import Event
from hub.keys import repository, service
from hub.keys.models import ApiKey, ApiKeyVersion, KeyStatus, VersionState
from hub.keys.verify import CtmVerifier
from hub.settings import Settings
from hub.syncs import probe
from tests.support import Member, RecordingQueue, app_client, bearer, make_member, make_tenant

POC = {"name": "Toni Tech", "email": "toni@plan.example"}


@dataclass
class World:
    client: httpx.AsyncClient
    sim: RunningSimulator
    rp: Member
    admin: Member
    viewer: Member
    settings: Settings

    def sim_key(self, contracts: set[str] | None = None) -> SimKey:
        return self.sim.state.add_key(
            hpms_user="RPUSER01", contracts=contracts or {"H1234", "S5678"}
        )

    def body(self, key: SimKey, **overrides: Any) -> dict[str, Any]:
        body = {
            "environment": "sandbox",
            "label": "primary",
            "key_id": key.key_id,
            "secret": key.secret,
            "hpms_user_id": "RPUSER01",
            "technical_poc": POC,
            "contracts": ["H1234", "S5678"],
        }
        body.update(overrides)
        return body

    async def create(self, key: SimKey, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/keys", headers=self.rp.headers, json=self.body(key, **overrides)
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
async def world(
    settings: Settings, db: Database, redis: Any, session: AsyncSession
) -> AsyncIterator[World]:
    tenant = await make_tenant(session, "plan")
    admin = await make_member(session, tenant, email="admin@plan.example", role=Role.ADMIN)
    rp = await make_member(session, tenant, email="rp@plan.example", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="viewer@plan.example", role=Role.VIEWER)
    for number in ("H1234", "S5678", "R0001"):
        await service.add_contract(session, admin.principal, number=number)
    await session.commit()
    async with running_simulator(SimState(environment="sandbox")) as sim:
        here = settings.model_copy(update={"ctm_sandbox_url": sim.url})
        verifier = CtmVerifier(here)
        app = create_app(here, database=db, redis=redis, ctm_verifier=verifier)
        async with app_client(app) as client:
            yield World(client, sim, rp, admin, viewer, here)
        await verifier.aclose()


async def access_lost_alerts_resolved(session: AsyncSession) -> list[bool]:
    """Whether each `key.access_lost` alert is resolved, as the database has it now."""
    alerts = await session.scalars(
        select(Alert)
        .where(Alert.kind == AlertKind.KEY_ACCESS_LOST)
        .execution_options(populate_existing=True)
    )
    return [alert.resolved_at is not None for alert in alerts]


async def events_of(session: AsyncSession, type_: str) -> list[Event]:
    return list(
        (await session.scalars(select(Event).where(Event.type == type_).order_by(Event.id))).all()
    )


class TestCreateKey:
    async def test_verified_key_is_stored_sealed_and_shown_without_secret(
        self, world: World, session: AsyncSession
    ) -> None:
        key = world.sim_key()
        view = await world.create(key)
        assert view["key_id"] == key.key_id
        assert view["status"] == "active"
        assert [c["number"] for c in view["contracts"]] == ["H1234", "S5678"]
        assert view["responsible_party"]["email"] == "rp@plan.example"
        assert view["versions"][0]["verified_at"] is not None
        assert key.secret not in str(view)
        version = await session.scalar(select(ApiKeyVersion))
        assert version is not None
        assert version.secret is not None
        assert key.secret.encode() not in version.secret.token
        assert len(await events_of(session, "key.created")) == 1

    async def test_every_member_sees_the_key_id_never_the_secret(self, world: World) -> None:
        key = world.sim_key()
        await world.create(key)
        listed = await world.client.get("/api/v1/keys", headers=world.viewer.headers)
        assert listed.status_code == 200
        assert listed.json()[0]["key_id"] == key.key_id
        assert key.secret not in listed.text
        assert "secret" not in listed.json()[0]

    async def test_refused_verification_stores_nothing_and_says_why(self, world: World) -> None:
        key = world.sim_key()
        response = await world.client.post(
            "/api/v1/keys", headers=world.rp.headers, json=world.body(key, secret="wrong-secret")
        )
        assert response.status_code == 400
        assert response.json()["extra"][0]["key"] == "secret"
        assert "CMS refused" in response.json()["detail"]
        assert (await world.client.get("/api/v1/keys", headers=world.rp.headers)).json() == []

    async def test_unreachable_cms_fails_verification_unless_skipped(
        self, world: World, db: Database, redis: Any
    ) -> None:
        closed = world.settings.model_copy(update={"ctm_sandbox_url": "http://127.0.0.1:9"})
        verifier = CtmVerifier(closed)
        app = create_app(closed, database=db, redis=redis, ctm_verifier=verifier)
        async with app_client(app) as client:
            key = world.sim_key()
            response = await client.post(
                "/api/v1/keys", headers=world.rp.headers, json=world.body(key)
            )
            assert response.status_code == 503
            assert "did not answer" in response.json()["detail"]
            skipped = await client.post(
                "/api/v1/keys", headers=world.rp.headers, json=world.body(key, verify=False)
            )
            assert skipped.status_code == 201
            assert skipped.json()["versions"][0]["verified_at"] is None
        await verifier.aclose()

    async def test_sandbox_key_registered_as_production_is_refused(
        self, world: World, db: Database, redis: Any
    ) -> None:
        async with running_simulator(SimState(environment="production")) as production:
            here = world.settings.model_copy(update={"ctm_production_url": production.url})
            verifier = CtmVerifier(here)
            app = create_app(here, database=db, redis=redis, ctm_verifier=verifier)
            async with app_client(app) as client:
                key = world.sim_key()  # a sandbox key
                response = await client.post(
                    "/api/v1/keys", headers=world.rp.headers,
                    json=world.body(key, environment="production"),
                )  # fmt: skip
            await verifier.aclose()
        assert response.status_code == 400
        assert response.json()["extra"][0]["key"] == "secret"

    @pytest.mark.parametrize(
        ("override", "field", "says"),
        [
            ({"contracts": ["H12345"]}, "contracts", "not a contract number"),
            ({"contracts": ["Z1234"]}, "contracts", "not a contract number"),
            ({"contracts": ["H1234", "h1234"]}, "contracts", "listed twice"),
            ({"contracts": ["H9999"]}, "contracts", "not a contract of this tenant"),
            ({"contracts": []}, "contracts", "at least one"),
            ({"secret": "   "}, "secret", "empty or only whitespace"),
            ({"secret": ""}, "secret", "empty or only whitespace"),
            ({"environment": "staging"}, "environment", "sandbox or production"),
            # PostgreSQL cannot store U+0000: refused on every backend, naming the field.
            ({"key_id": "KEY\x00ID"}, "key_id", "matching regex"),
            ({"hpms_user_id": "RP\x0001"}, "hpms_user_id", "matching regex"),
            ({"label": "primary\x00"}, "label", "matching regex"),
            (
                {"technical_poc": {"name": "T", "email": "not-an-email"}},
                "technical_poc.email",
                "email",
            ),
        ],
    )
    async def test_bad_input_names_the_field_and_writes_nothing(
        self, world: World, override: dict[str, Any], field: str, says: str
    ) -> None:
        key = world.sim_key()
        response = await world.client.post(
            "/api/v1/keys", headers=world.rp.headers, json=world.body(key, **override)
        )
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0]["key"] == field
        assert says in response.text
        assert (await world.client.get("/api/v1/keys", headers=world.rp.headers)).json() == []

    async def test_key_cannot_name_another_responsible_party(self, world: World) -> None:
        key = world.sim_key()
        body = world.body(key, responsible_party=str(world.admin.user.id))
        response = await world.client.post("/api/v1/keys", headers=world.rp.headers, json=body)
        assert response.status_code == 400
        assert "responsible_party" in response.text

    async def test_key_id_registered_by_another_tenant_is_a_conflict_that_names_no_tenant(
        self, world: World, session: AsyncSession
    ) -> None:
        key = world.sim_key()
        await world.create(key)
        other = await make_member(
            session, await make_tenant(session, "rival"), email="rp@rival.example"
        )
        await service.add_contract(session, other.principal, number="H1234")
        await session.commit()
        response = await world.client.post(
            "/api/v1/keys",
            headers=other.headers,
            json=world.body(key, contracts=["H1234"], verify=False),
        )
        assert response.status_code == 409
        assert response.json()["extra"][0] == {
            "key": "key_id",  # named once: the message does not repeat it
            "message": "this key ID is already registered in sandbox",
        }
        assert response.json()["detail"].startswith("key_id: ")
        assert "plan" not in response.text.lower().replace("already registered", "")

    async def test_viewer_without_keys_manage_cannot_create(
        self, world: World, session: AsyncSession
    ) -> None:
        reader = await make_member(
            session, world.rp.tenant, email="reader@plan.example", role=Role.VIEWER,
            scopes=frozenset({Scope.KEYS_READ}),
        )  # fmt: skip
        await session.commit()
        response = await world.client.post(
            "/api/v1/keys", headers=reader.headers, json=world.body(world.sim_key())
        )
        assert response.status_code == 403


class TestRotateKey:
    async def test_rotation_swaps_credentials_and_keeps_contracts(
        self, world: World, session: AsyncSession
    ) -> None:
        key = world.sim_key()
        view = await world.create(key)
        reissued = world.sim.state.rotate(key.key_id)
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": reissued.key_id, "secret": reissued.secret},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        rotated = response.json()
        assert rotated["key_id"] == reissued.key_id
        assert rotated["contracts"] == view["contracts"]
        states = {v["key_id"]: v["state"] for v in rotated["versions"]}
        assert states == {key.key_id: "retiring", reissued.key_id: "current"}
        [event] = await events_of(session, "key.rotated")
        assert event.payload["previous_key_id"] == key.key_id
        assert reissued.secret not in str(event.payload)

    async def test_old_secret_is_destroyed_after_the_grace_period(
        self, world: World, session: AsyncSession
    ) -> None:
        key = world.sim_key()
        view = await world.create(key)
        reissued = world.sim.state.rotate(key.key_id)
        await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": reissued.key_id, "secret": reissued.secret},
        )  # fmt: skip
        assert await service.retire_versions(session) == 0, "not before the grace period ends"
        assert await service.retire_versions(session, now=utcnow() + timedelta(hours=25)) == 1
        old = await session.scalar(select(ApiKeyVersion).where(ApiKeyVersion.key_id == key.key_id))
        assert old is not None
        assert old.secret is None
        assert old.state is VersionState.RETIRED
        assert old.secret_destroyed_at is not None

    async def test_only_the_responsible_party_rotates(self, world: World) -> None:
        view = await world.create(world.sim_key())
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.admin.headers,
            json={"key_id": "NEW", "secret": "s", "verify": False},
        )  # fmt: skip
        assert response.status_code == 403
        assert "responsible party" in response.json()["detail"]

    async def test_compromised_key_cannot_be_rotated(self, world: World) -> None:
        view = await world.create(world.sim_key())
        await world.client.post(
            f"/api/v1/keys/{view['id']}/compromise", headers=world.viewer.headers, json={}
        )
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": "NEW", "secret": "s", "verify": False},
        )  # fmt: skip
        assert response.status_code == 409
        assert "register a replacement" in response.json()["detail"]

    async def test_a_nul_in_the_new_key_id_or_a_reason_is_a_400_naming_it(
        self, world: World
    ) -> None:
        view = await world.create(world.sim_key())
        rotated = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": "NEW\x00", "secret": "s", "verify": False},
        )  # fmt: skip
        reported = await world.client.post(
            f"/api/v1/keys/{view['id']}/compromise", headers=world.rp.headers,
            json={"reason": "leaked\x00"},
        )  # fmt: skip
        for response, field in ((rotated, "key_id"), (reported, "reason")):
            assert response.status_code == 400, response.text
            [problem] = response.json()["extra"]
            assert problem["key"] == field
            assert "matching regex" in problem["message"]
        again = await world.client.get(f"/api/v1/keys/{view['id']}", headers=world.rp.headers)
        assert (again.json()["status"], again.json()["key_id"]) == ("active", view["key_id"])

    async def test_rotation_to_the_same_key_id_is_refused(self, world: World) -> None:
        key = world.sim_key()
        view = await world.create(key)
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": key.key_id, "secret": key.secret},
        )  # fmt: skip
        assert response.status_code == 409
        assert response.json()["extra"][0]["key"] == "key_id"


class TestCompromiseAndReplacement:
    async def test_report_suspends_at_once_revokes_tokens_and_tells_the_rp(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        designee = await auth.issue_token(
            session, user=world.rp.user, tenant_id=world.rp.tenant_id,
            scopes=frozenset({Scope.CTM_GATEWAY}), name="gateway",
        )  # fmt: skip
        designee.token.api_key_id = UUID(view["id"])
        await session.commit()
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/compromise", headers=world.viewer.headers,
            json={"reason": "pasted in a ticket"},
        )  # fmt: skip
        assert response.status_code == 200
        assert response.json()["status"] == "compromised"
        token = await session.get(ApiToken, designee.token.id, populate_existing=True)
        assert token is not None
        assert token.revoked_at is not None
        assert (
            await world.client.get("/api/v1/me", headers=bearer(designee.plaintext))
        ).status_code == 401
        [event] = await events_of(session, "key.compromised")
        assert "Deactivate key" in event.payload["next_action"]
        assert "HPMS API Key Management" in event.payload["next_action"]
        key = await session.get(ApiKey, UUID(view["id"]), populate_existing=True)
        assert key is not None
        with pytest.raises(service.KeyNotUsable):
            await service.credentials_for(session, key)

    async def test_rp_confirms_deactivation_then_registers_the_replacement(
        self, world: World, session: AsyncSession
    ) -> None:
        old = await world.create(world.sim_key())
        await world.client.put(
            f"/api/v1/keys/{old['id']}/contracts", headers=world.admin.headers,
            json={"contracts": ["H1234", "S5678", "R0001"]},
        )  # fmt: skip
        await world.client.post(
            f"/api/v1/keys/{old['id']}/compromise", headers=world.admin.headers, json={}
        )
        deactivated = await world.client.post(
            f"/api/v1/keys/{old['id']}/deactivate", headers=world.rp.headers
        )
        assert deactivated.status_code == 200
        assert deactivated.json()["status"] == "deactivated"
        versions = (await session.scalars(select(ApiKeyVersion))).all()
        assert all(v.secret is None for v in versions), "a deactivated key keeps no secret"
        new = world.sim_key({"H1234", "S5678", "R0001"})
        body = world.body(new, replaces=old["id"])
        del body["contracts"]
        replacement = await world.client.post("/api/v1/keys", headers=world.rp.headers, json=body)
        assert replacement.status_code == 201, replacement.text
        assert replacement.json()["replaces"] == old["id"]
        assert [c["number"] for c in replacement.json()["contracts"]] == ["H1234", "R0001", "S5678"]

    async def test_only_a_retired_key_is_replaced(self, world: World) -> None:
        old = await world.create(world.sim_key())
        body = world.body(world.sim_key(), replaces=old["id"])
        response = await world.client.post("/api/v1/keys", headers=world.rp.headers, json=body)
        assert response.status_code == 409
        assert response.json()["extra"][0]["key"] == "replaces"

    async def test_only_the_rp_deactivates(self, world: World) -> None:
        view = await world.create(world.sim_key())
        response = await world.client.post(
            f"/api/v1/keys/{view['id']}/deactivate", headers=world.admin.headers
        )
        assert response.status_code == 403

    async def test_once_the_rp_has_left_a_tenant_admin_deactivates(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        path = f"/api/v1/keys/{view['id']}/deactivate"
        narrow = await make_member(
            session, world.admin.tenant, email="ops-script@plan.example", role=Role.ADMIN,
            scopes=frozenset({Scope.KEYS_MANAGE}),
        )  # fmt: skip
        await session.commit()
        left = await world.client.delete(
            f"/api/v1/members/{world.rp.membership.id}", headers=world.admin.headers
        )
        assert left.status_code == 200, left.text
        refused = await world.client.post(path, headers=narrow.headers)
        assert refused.status_code == 403, "an admin's narrow token is not enough"
        assert "tenant:admin" in refused.text
        done = await world.client.post(path, headers=world.admin.headers)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "deactivated"
        secrets = (
            await session.scalars(
                select(ApiKeyVersion.secret)
                .where(ApiKeyVersion.api_key_id == UUID(view["id"]))
                .execution_options(populate_existing=True)
            )
        ).all()
        assert secrets == [None], "its secret is destroyed"
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "key.deactivated", AuditEntry.target_id == view["id"]
            )
        )
        assert entry is not None
        assert entry.actor_label == world.admin.user.email


class TestWhatCmsAndPeopleDo:
    async def test_token_403_marks_the_key_for_replacement(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        await service.mark_invalid(
            session,
            tenant_id=world.rp.tenant_id,
            key_id=UUID(view["id"]),
            reason="token exchange answered 403",
        )
        await session.commit()
        got = (
            await world.client.get(f"/api/v1/keys/{view['id']}", headers=world.rp.headers)
        ).json()
        assert got["status"] == "needs_replacement"
        assert len(await events_of(session, "key.invalid")) == 1
        # A valid rotation brings it back.
        new = world.sim.state.rotate(got["key_id"])
        rotated = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": new.key_id, "secret": new.secret},
        )  # fmt: skip
        assert rotated.json()["status"] == "active"

    async def test_contract_403_marks_only_that_mapping(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        await service.mark_access_lost(
            session,
            tenant_id=world.rp.tenant_id,
            key_id=UUID(view["id"]),
            contract="S5678",
            reason="403",
        )
        await session.commit()
        got = (
            await world.client.get(f"/api/v1/keys/{view['id']}", headers=world.rp.headers)
        ).json()
        assert got["status"] == "active"
        lost = {c["number"]: c["access_lost_at"] is not None for c in got["contracts"]}
        assert lost == {"H1234": False, "S5678": True}
        [event] = await events_of(session, "key.access_lost")
        assert event.payload["contract"] == "S5678"
        key = await session.get(ApiKey, UUID(view["id"]))
        assert key is not None
        assert (await service.credentials_for(session, key)).contracts == frozenset({"H1234"})

    async def test_access_restored_clears_the_mark_resolves_the_alert_and_syncs_the_pair(
        self, world: World, session: AsyncSession, queue: RecordingQueue
    ) -> None:
        view = await world.create(world.sim_key())
        key_id = UUID(view["id"])
        await service.mark_access_lost(
            session, tenant_id=world.rp.tenant_id, key_id=key_id, contract="S5678", reason="403"
        )
        await session.commit()
        path = f"/api/v1/keys/{view['id']}/contracts/s5678/restore"
        assert (await world.client.post(path, headers=world.viewer.headers)).status_code == 403
        restored = await world.client.post(path, headers=world.rp.headers)
        assert restored.status_code == 200, restored.text
        assert all(c["access_lost_at"] is None for c in restored.json()["contracts"])
        [event] = await events_of(session, "key.access_restored")
        assert event.payload["contract"] == "S5678"
        assert await access_lost_alerts_resolved(session) == [True]
        sync_jobs = [j for j in queue.sent if j.function == "syncs.sync_contract"]
        assert [(j.args[1], j.args[2], j.args[3]) for j in sync_jobs] == [
            (view["id"], "S5678", "manual")
        ]
        key = await session.get(ApiKey, key_id)
        assert key is not None
        await session.refresh(key)
        assert (await service.credentials_for(session, key)).contracts == frozenset(
            {"H1234", "S5678"}
        )
        again = await world.client.post(path, headers=world.rp.headers)
        assert again.status_code == 409
        assert again.json()["extra"][0]["key"] == "contract"
        uncovered = await world.client.post(
            f"/api/v1/keys/{view['id']}/contracts/R0001/restore", headers=world.admin.headers
        )
        assert uncovered.status_code == 404
        assert "does not cover contract R0001" in uncovered.text

    async def test_a_refusal_of_a_version_since_replaced_changes_nothing(
        self, world: World, session: AsyncSession
    ) -> None:
        """A job read the old credentials, the RP entered CMS's reissued ones, then the job's
        403 came back: it speaks of the old version, not of the key as it is now."""
        view = await world.create(world.sim_key())
        old_key_id = view["key_id"]
        new = world.sim.state.rotate(old_key_id)
        rotated = await world.client.post(
            f"/api/v1/keys/{view['id']}/rotate", headers=world.rp.headers,
            json={"key_id": new.key_id, "secret": new.secret},
        )  # fmt: skip
        assert rotated.json()["status"] == "active"
        key = await service.mark_invalid(
            session, tenant_id=world.rp.tenant_id, key_id=UUID(view["id"]), reason="403",
            refused_key_id=old_key_id,
        )  # fmt: skip
        assert key.status is KeyStatus.ACTIVE
        assert key.last_failure_at is None
        lost = await service.mark_access_lost(
            session, tenant_id=world.rp.tenant_id, key_id=UUID(view["id"]), contract="S5678",
            reason="403", refused_key_id=old_key_id,
        )  # fmt: skip
        assert lost is None
        await session.commit()
        got = (
            await world.client.get(f"/api/v1/keys/{view['id']}", headers=world.rp.headers)
        ).json()
        assert got["status"] == "active"
        assert all(c["access_lost_at"] is None for c in got["contracts"])
        assert await events_of(session, "key.invalid") == []
        # The current version refused: that counts.
        current = await service.mark_invalid(
            session, tenant_id=world.rp.tenant_id, key_id=UUID(view["id"]), reason="403",
            refused_key_id=new.key_id,
        )  # fmt: skip
        assert current.status is KeyStatus.NEEDS_REPLACEMENT

    async def test_a_contract_unmapped_meanwhile_is_nothing_to_mark(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        lost = await service.mark_access_lost(
            session, tenant_id=world.rp.tenant_id, key_id=UUID(view["id"]), contract="R9999",
            reason="403",
        )  # fmt: skip
        assert lost is None
        assert await events_of(session, "key.access_lost") == []

    async def test_rp_leaving_the_tenant_orphans_their_keys(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        response = await world.client.delete(
            f"/api/v1/members/{world.rp.membership.id}", headers=world.admin.headers
        )
        assert response.status_code == 200
        got = (
            await world.client.get(f"/api/v1/keys/{view['id']}", headers=world.admin.headers)
        ).json()
        assert got["status"] == "needs_replacement"
        assert got["responsible_party"]["email"] == "rp@plan.example", "never transferred"
        assert len(await events_of(session, "key.orphaned")) == 1


class TestUse:
    async def test_suspended_key_is_never_used_by_the_ctm_client(
        self, world: World, session: AsyncSession
    ) -> None:
        sim_key = world.sim_key()
        view = await world.create(sim_key)
        world.sim.state.requests.clear()
        suspended = await world.client.post(
            f"/api/v1/keys/{view['id']}/suspend", headers=world.rp.headers
        )
        assert suspended.json()["status"] == "suspended"
        key = await session.get(ApiKey, UUID(view["id"]), populate_existing=True)
        assert key is not None
        with pytest.raises(service.KeyNotUsable):
            await service.credentials_for(session, key)
        assert [r for r in world.sim.state.requests if r.key_id == sim_key.key_id] == []
        resumed = await world.client.post(
            f"/api/v1/keys/{view['id']}/resume", headers=world.rp.headers
        )
        assert resumed.json()["status"] == "active"
        await session.refresh(key)
        credentials = await service.credentials_for(session, key)
        async with CtmClient.for_environment(world.settings, CtmEnvironment.SANDBOX) as client:
            assert await client.token(credentials)

    async def test_client_of_the_other_environment_refuses_the_key(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        key = await session.get(ApiKey, UUID(view["id"]))
        assert key is not None
        credentials = await service.credentials_for(session, key)
        async with CtmClient.for_environment(
            world.settings, CtmEnvironment.PRODUCTION
        ) as production:
            with pytest.raises(EnvironmentMismatch):
                await production.token(credentials)


class TestContracts:
    async def test_contracts_are_validated_upper_cased_and_unique(self, world: World) -> None:
        ok = await world.client.post(
            "/api/v1/contracts", headers=world.admin.headers, json={"number": " e0001 "}
        )
        assert ok.status_code == 201
        assert ok.json()["number"] == "E0001"
        again = await world.client.post(
            "/api/v1/contracts", headers=world.admin.headers, json={"number": "E0001"}
        )
        assert again.status_code == 409
        bad = await world.client.post(
            "/api/v1/contracts", headers=world.admin.headers, json={"number": "Q1234"}
        )
        assert bad.status_code == 400
        assert bad.json()["extra"][0]["key"] == "number"
        by_rp = await world.client.post(
            "/api/v1/contracts", headers=world.rp.headers, json={"number": "X0001"}
        )
        assert by_rp.status_code == 403

    async def test_serving_key_is_the_oldest_active_one_and_conflicts_are_reported(
        self, world: World
    ) -> None:
        first = await world.create(world.sim_key({"H1234"}), contracts=["H1234"])
        second = await world.create(world.sim_key({"H1234"}), contracts=["H1234"])
        contracts = (
            await world.client.get("/api/v1/contracts", headers=world.viewer.headers)
        ).json()
        h1234 = next(c for c in contracts if c["number"] == "H1234")
        assert h1234["serving"] == [
            {"environment": "sandbox", "key": first["id"], "also_claimed_by": [second["id"]]}
        ]
        await world.client.post(
            f"/api/v1/keys/{first['id']}/compromise", headers=world.rp.headers, json={}
        )
        contracts = (
            await world.client.get("/api/v1/contracts", headers=world.viewer.headers)
        ).json()
        h1234 = next(c for c in contracts if c["number"] == "H1234")
        assert h1234["serving"] == [
            {"environment": "sandbox", "key": second["id"], "also_claimed_by": []}
        ]

    async def test_designees_must_be_members(self, world: World, session: AsyncSession) -> None:
        view = await world.create(world.sim_key())
        ok = await world.client.put(
            f"/api/v1/keys/{view['id']}/designees", headers=world.rp.headers,
            json={"users": [str(world.viewer.user.id)]},
        )  # fmt: skip
        assert ok.status_code == 200
        assert ok.json()["designees"]["users"] == [str(world.viewer.user.id)]
        stranger = await make_member(
            session, await make_tenant(session, "else"), email="x@else.example"
        )
        await session.commit()
        bad = await world.client.put(
            f"/api/v1/keys/{view['id']}/designees", headers=world.rp.headers,
            json={"users": [str(stranger.user.id)]},
        )  # fmt: skip
        assert bad.status_code == 400
        assert bad.json()["extra"][0]["key"] == "users"
        by_admin = await world.client.put(
            f"/api/v1/keys/{view['id']}/designees", headers=world.admin.headers, json={"users": []}
        )
        assert by_admin.status_code == 403


class TestCanary:
    async def test_secret_appears_nowhere_across_a_full_lifecycle(
        self, world: World, session: AsyncSession, capfd: pytest.CaptureFixture[str]
    ) -> None:
        from hub.core.logging import configure_logging

        configure_logging("DEBUG", "json")
        canary = "CANARY-7f3a9e-SECRET"
        first = world.sim.state.add_key(hpms_user="RPUSER01", contracts={"H1234"}, secret=canary)
        seen: list[str] = []
        created = await world.client.post(
            "/api/v1/keys", headers=world.rp.headers, json=world.body(first, contracts=["H1234"])
        )
        seen.append(created.text)
        key_id = created.json()["id"]
        rotated_canary = canary + "-ROTATED"
        reissued = world.sim.state.rotate(first.key_id)
        reissued.secret = rotated_canary
        for response in [
            await world.client.post(
                f"/api/v1/keys/{key_id}/rotate", headers=world.rp.headers,
                json={"key_id": reissued.key_id, "secret": rotated_canary},
            ),
            await world.client.post(
                f"/api/v1/keys/{key_id}/compromise", headers=world.viewer.headers, json={}
            ),
            await world.client.post(f"/api/v1/keys/{key_id}/deactivate", headers=world.rp.headers),
            await world.client.get(f"/api/v1/keys/{key_id}", headers=world.admin.headers),
            await world.client.get("/api/v1/keys", headers=world.admin.headers),
            await world.client.get("/api/v1/audit", headers=world.admin.headers),
            await world.client.get("/api/v1/events", headers=world.admin.headers),
        ]:  # fmt: skip
            assert response.status_code < 400, response.text
            seen.append(response.text)
        replacement = world.sim.state.add_key(
            hpms_user="RPUSER01", contracts={"H1234"}, secret=canary + "-NEW"
        )
        body = world.body(replacement, replaces=key_id)
        del body["contracts"]
        seen.append(
            (await world.client.post("/api/v1/keys", headers=world.rp.headers, json=body)).text
        )
        from hub.audit.models import AuditEntry

        audit_rows = (await session.scalars(select(AuditEntry))).all()
        assert audit_rows
        seen += [repr((a.action, a.details, a.target_id)) for a in audit_rows]
        seen += [repr(e.payload) for e in (await session.scalars(select(Event))).all()]
        logs = capfd.readouterr()
        seen += [logs.out, logs.err]
        everything = "\n".join(seen)
        assert canary not in everything
        assert "key.compromised" in everything, "the check looked at real content"


class TestServiceEdges:
    async def test_report_by_an_operator_and_twice_is_idempotent(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        tenant = TenantID(world.rp.tenant.id)
        operator = Actor.system("operator-console")
        first = await service.report_compromise(
            session, tenant_id=tenant, key_id=UUID(view["id"]), actor=operator
        )
        again = await service.report_compromise(
            session, tenant_id=tenant, key_id=UUID(view["id"]), actor=operator
        )
        assert first.status is again.status is KeyStatus.COMPROMISED
        assert len(await events_of(session, "key.compromised")) == 1

    async def test_versions_and_contracts_queries_are_tenant_scoped(
        self, world: World, session: AsyncSession
    ) -> None:
        view = await world.create(world.sim_key())
        other = await make_tenant(session, "elsewhere")
        assert await repository.key_contracts(session, TenantID(other.id), [UUID(view["id"])]) == []
        assert await repository.key_versions(session, TenantID(other.id), [UUID(view["id"])]) == []


class TestAccessProbe:
    """The daily probe notices, by itself, a lost contract CMS serves to its key again."""

    async def test_restores_once_cms_serves_the_contract_again(
        self, world: World, db: Database, redis: Any, session: AsyncSession,
        queue: RecordingQueue,
    ) -> None:  # fmt: skip
        sim_key = world.sim_key({"H1234"})  # HPMS serves this key H1234 only
        view = await world.create(sim_key)
        key_id = UUID(view["id"])
        await service.mark_access_lost(
            session, tenant_id=world.rp.tenant_id, key_id=key_id, contract="S5678", reason="403"
        )
        await session.commit()
        clients = {
            CtmEnvironment.SANDBOX: CtmClient(CtmEnvironment.SANDBOX, base_url=world.sim.url)
        }
        try:
            still = await probe.probe_lost_access(db, clients, redis, now=utcnow())
            assert (still.restored, still.still_lost) == (0, 1)
            assert await events_of(session, "key.access_restored") == []
            sim_key.contracts.add("S5678")  # HPMS fixed the association
            probed = await probe.probe_lost_access(db, clients, redis, now=utcnow())
        finally:
            await clients[CtmEnvironment.SANDBOX].aclose()
        assert (probed.restored, probed.still_lost) == (1, 0)
        [event] = await events_of(session, "key.access_restored")
        assert event.payload["contract"] == "S5678"
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "key.access_restored")
        )
        assert entry is not None
        assert entry.actor_label == "access-probe"
        assert await access_lost_alerts_resolved(session) == [True]
        sync_jobs = [j for j in queue.sent if j.function == "syncs.sync_contract"]
        assert [(j.args[1], j.args[2]) for j in sync_jobs] == [(view["id"], "S5678")]
        # Nothing is lost any more: the next day's probe asks CMS nothing.
        before = len(world.sim.state.requests)
        nothing = await probe.probe_lost_access(db, {}, redis, now=utcnow())
        assert (nothing.restored, nothing.still_lost, nothing.skipped) == (0, 0, 0)
        assert len(world.sim.state.requests) == before
