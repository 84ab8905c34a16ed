"""The keys pages: the tenant's keys without their secrets, and the responsible party's
actions on them, verified against the CTM simulator as the API does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.auth.models import Role
from hub.core.db import Database
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimKey, SimState
from hub.keys import service
from hub.keys.models import ApiKey
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.keys.verify import CtmVerifier
from hub.settings import Settings
from tests.portal.support import post_form, sign_in
from tests.support import Member, app_client, make_member, make_tenant

HTMX = {"HX-Request": "true"}


@dataclass
class World:
    client: httpx.AsyncClient
    sim: RunningSimulator
    rp: Member
    admin: Member
    viewer: Member
    other: Member  # the RP of another tenant

    def sim_key(self) -> SimKey:
        return self.sim.state.add_key(hpms_user="RPUSER01", contracts={"H1234", "S5678"})

    def form(self, key: SimKey, **overrides: str) -> dict[str, str]:
        return {
            "environment": "sandbox",
            "label": "primary",
            "key_id": key.key_id,
            "secret": key.secret,
            "hpms_user_id": "RPUSER01",
            "poc_name": "Toni Tech",
            "poc_email": "toni@plan.example",
            "contracts": "H1234, S5678",
            **overrides,
        }

    async def sign_in(self, email: str) -> str:
        """Sign in as `email` (signed out of whoever was first)."""
        self.client.cookies.clear()
        return await sign_in(self.client, email)

    async def add(self, key: SimKey, csrf: str) -> str:
        """Add `key` through the form; the new key's page path."""
        answer = await post_form(self.client, "/portal/keys", csrf, self.form(key))
        assert answer.status_code == 303, answer.text
        return answer.headers["location"].split("?")[0]


@pytest.fixture
async def world(
    settings: Settings, db: Database, redis: Any, session: AsyncSession
) -> AsyncIterator[World]:
    tenant = await make_tenant(session, "plan", "Plan Health")
    admin = await make_member(session, tenant, email="admin@plan.example", role=Role.ADMIN)
    rp = await make_member(session, tenant, email="rp@plan.example", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="viewer@plan.example", role=Role.VIEWER)
    for number in ("H1234", "S5678"):
        await service.add_contract(session, admin.principal, number=number)
    elsewhere = await make_tenant(session, "other", "Other Plan")
    other = await make_member(session, elsewhere, email="rp@other.example", role=Role.ADMIN)
    await service.add_contract(session, other.principal, number="H1234")
    await session.commit()
    async with running_simulator(SimState(environment="sandbox")) as sim:
        here = settings.model_copy(update={"ctm_sandbox_url": sim.url})
        verifier = CtmVerifier(here)
        app = create_app(here, database=db, redis=redis, ctm_verifier=verifier)
        async with app_client(app) as client:
            yield World(client, sim, rp, admin, viewer, other)
        await verifier.aclose()


async def unverified_key(session: AsyncSession, member: Member, key_id: str) -> ApiKey:
    body = KeyCreate(
        environment="sandbox", key_id=key_id, secret="other-secret-value", hpms_user_id="U1",
        technical_poc=TechnicalPoc("T", "t@other.example"), contracts=["H1234"], verify=False,
    )  # fmt: skip
    key = await service.create_key(session, member.principal, data=body, verifier=None)
    await session.commit()
    return key


class TestKeysList:
    async def test_lists_the_key_with_its_rp_contracts_and_status_never_the_secret(
        self, world: World
    ) -> None:
        key = world.sim_key()
        await world.add(key, await world.sign_in("rp@plan.example"))
        await world.sign_in("viewer@plan.example")
        listed = await world.client.get("/portal/keys")
        assert listed.status_code == 200
        assert key.key_id in listed.text
        assert "rp@plan.example" in listed.text
        assert "H1234, S5678" in listed.text
        assert re.search(r'data-testid="key-status">active<', listed.text)
        assert key.secret not in listed.text
        assert 'href="/portal/keys"' in listed.text  # the menu entry

    async def test_an_empty_tenant_says_how_keys_arrive(self, world: World) -> None:
        await world.sign_in("viewer@plan.example")
        listed = await world.client.get("/portal/keys")
        assert 'data-testid="no-keys"' in listed.text

    async def test_another_tenants_key_is_a_404_page(
        self, world: World, session: AsyncSession
    ) -> None:
        theirs = await unverified_key(session, world.other, "THEIRS-1")
        csrf = await world.sign_in("rp@plan.example")
        assert (await world.client.get(f"/portal/keys/{theirs.id}")).status_code == 404
        compromised = await post_form(world.client, f"/portal/keys/{theirs.id}/compromise", csrf)
        assert compromised.status_code == 404
        assert "THEIRS-1" not in (await world.client.get("/portal/keys")).text


class TestAddKey:
    async def test_rp_adds_a_verified_key_and_sees_it_without_its_secret(
        self, world: World
    ) -> None:
        key = world.sim_key()
        csrf = await world.sign_in("rp@plan.example")
        form = await world.client.get("/portal/keys/new")
        assert 'type="password" name="secret"' in form.text
        answer = await post_form(world.client, "/portal/keys", csrf, world.form(key))
        assert answer.status_code == 303
        detail = await world.client.get(answer.headers["location"])
        assert detail.status_code == 200
        assert "verified with CMS and saved" in detail.text
        assert key.key_id in detail.text
        assert key.secret not in detail.text
        assert re.search(r'data-testid="key-status">active<', detail.text)

    async def test_a_refused_secret_is_named_and_not_echoed(self, world: World) -> None:
        key = world.sim_key()
        csrf = await world.sign_in("rp@plan.example")
        wrong = "wrong-secret-typed-by-the-rp"
        answer = await post_form(world.client, "/portal/keys", csrf, world.form(key, secret=wrong))
        assert answer.status_code == 400
        assert 'data-testid="error-secret"' in answer.text
        assert "CMS refused" in answer.text
        assert wrong not in answer.text
        assert f'value="{key.key_id}"' in answer.text  # what was typed stays
        assert 'data-testid="no-keys"' in (await world.client.get("/portal/keys")).text

    @pytest.mark.parametrize(
        ("override", "field", "says"),
        [
            ({"contracts": "H9999"}, "contracts", "not a contract of this tenant"),
            ({"contracts": "Z12"}, "contracts", "not a contract number"),
            ({"environment": "staging"}, "environment", "sandbox or production"),
            ({"poc_email": "nope"}, "email", "not an email address"),
            ({"hpms_user_id": "RP\x0001"}, "hpms_user_id", "regex"),
        ],
    )
    async def test_validation_errors_name_the_field(
        self, world: World, override: dict[str, str], field: str, says: str
    ) -> None:
        key = world.sim_key()
        csrf = await world.sign_in("rp@plan.example")
        answer = await post_form(world.client, "/portal/keys", csrf, world.form(key, **override))
        assert answer.status_code == 400
        error = re.search(rf'data-testid="error-{field}">([^<]*)<', answer.text)
        assert error is not None, answer.text
        assert says in error.group(1)
        assert key.secret not in answer.text

    async def test_a_form_without_its_csrf_token_is_refused(self, world: World) -> None:
        key = world.sim_key()
        await world.sign_in("rp@plan.example")
        answer = await world.client.post("/portal/keys", data=world.form(key))
        assert answer.status_code == 403
        assert key.secret not in answer.text
        assert 'data-testid="no-keys"' in (await world.client.get("/portal/keys")).text


class TestRpActions:
    async def test_rp_rotates_and_the_new_version_shows_without_secrets(self, world: World) -> None:
        first, second = world.sim_key(), world.sim_key()
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(first, csrf)
        answer = await post_form(
            world.client, f"{path}/rotate", csrf,
            {"key_id": second.key_id, "secret": second.secret},
        )  # fmt: skip
        assert answer.status_code == 303
        detail = await world.client.get(answer.headers["location"])
        assert re.search(rf'data-testid="key-id">{second.key_id}<', detail.text)
        assert "retiring" in detail.text
        assert first.secret not in detail.text
        assert second.secret not in detail.text

    async def test_a_refused_rotation_names_the_secret_and_keeps_the_key_id(
        self, world: World
    ) -> None:
        first, second = world.sim_key(), world.sim_key()
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(first, csrf)
        answer = await post_form(
            world.client, f"{path}/rotate", csrf, {"key_id": second.key_id, "secret": "nope-x"}
        )
        assert answer.status_code == 400
        assert 'data-testid="error-secret"' in answer.text
        assert f'value="{second.key_id}"' in answer.text
        assert "nope-x" not in answer.text

    async def test_only_the_rp_rotates_and_others_see_no_rotate_form(self, world: World) -> None:
        first, second = world.sim_key(), world.sim_key()
        path = await world.add(first, await world.sign_in("rp@plan.example"))
        csrf = await world.sign_in("admin@plan.example")
        detail = await world.client.get(path)
        assert 'data-testid="rotate"' not in detail.text
        assert 'data-testid="deactivate"' not in detail.text
        refused = await post_form(
            world.client, f"{path}/rotate", csrf, {"key_id": second.key_id, "secret": second.secret}
        )
        assert refused.status_code == 403
        assert "responsible party" in refused.text

    async def test_any_member_reports_compromise_through_htmx(self, world: World) -> None:
        path = await world.add(world.sim_key(), await world.sign_in("rp@plan.example"))
        csrf = await world.sign_in("viewer@plan.example")
        answer = await post_form(
            world.client, f"{path}/compromise", csrf, {"reason": "pasted in chat"}, headers=HTMX
        )
        assert answer.status_code == 200
        assert answer.headers["hx-redirect"] == f"{path}?done=compromised"
        detail = await world.client.get(answer.headers["hx-redirect"])
        assert re.search(r'data-testid="key-status">compromised<', detail.text)
        assert "pasted in chat" in detail.text
        assert "Deactivate it in HPMS" in detail.text

    async def test_rp_deactivates_and_the_actions_go(self, world: World) -> None:
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(world.sim_key(), csrf)
        answer = await post_form(world.client, f"{path}/deactivate", csrf)
        assert answer.status_code == 303
        detail = await world.client.get(answer.headers["location"])
        assert re.search(r'data-testid="key-status">deactivated<', detail.text)
        assert 'data-testid="compromise"' not in detail.text
        again = await post_form(world.client, f"{path}/deactivate", csrf)
        assert again.status_code == 409

    async def test_admin_suspends_and_resumes(self, world: World) -> None:
        path = await world.add(world.sim_key(), await world.sign_in("rp@plan.example"))
        csrf = await world.sign_in("admin@plan.example")
        suspended = await post_form(world.client, f"{path}/suspend", csrf)
        page = await world.client.get(suspended.headers["location"])
        assert re.search(r'data-testid="key-status">suspended<', page.text)
        assert 'data-testid="resume"' in page.text
        resumed = await post_form(world.client, f"{path}/resume", csrf)
        page = await world.client.get(resumed.headers["location"])
        assert re.search(r'data-testid="key-status">active<', page.text)

    async def test_a_viewer_may_not_suspend_another_rps_key(self, world: World) -> None:
        path = await world.add(world.sim_key(), await world.sign_in("rp@plan.example"))
        csrf = await world.sign_in("viewer@plan.example")
        assert 'data-testid="suspend"' not in (await world.client.get(path)).text
        assert (await post_form(world.client, f"{path}/suspend", csrf)).status_code == 403

    async def test_rp_adds_and_removes_a_designee(self, world: World) -> None:
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(world.sim_key(), csrf)
        user_id = str(world.viewer.user.id)
        added = await post_form(world.client, f"{path}/designees/add", csrf, {"user_id": user_id})
        assert added.status_code == 303
        page = await world.client.get(path)
        designees = re.search(r'data-testid="designees">(.*?)</ul>', page.text, re.S)
        assert designees is not None
        assert "viewer@plan.example" in designees.group(1)
        removed = await post_form(
            world.client, f"{path}/designees/remove", csrf, {"user_id": user_id}
        )
        assert removed.status_code == 303
        page = await world.client.get(path)
        designees = re.search(r'data-testid="designees">(.*?)</ul>', page.text, re.S)
        assert designees is not None
        assert "viewer@plan.example" not in designees.group(1)

    async def test_a_stranger_as_designee_is_refused_naming_the_field(self, world: World) -> None:
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(world.sim_key(), csrf)
        answer = await post_form(
            world.client, f"{path}/designees/add", csrf, {"user_id": str(world.other.user.id)}
        )
        assert answer.status_code == 400
        assert "not a member of this tenant" in answer.text

    async def test_rp_restores_a_lost_contract(self, world: World, session: AsyncSession) -> None:
        csrf = await world.sign_in("rp@plan.example")
        path = await world.add(world.sim_key(), csrf)
        key_id = path.rsplit("/", 1)[1]
        key = await session.get(ApiKey, UUID(key_id))
        assert key is not None
        await service.mark_access_lost(
            session, tenant_id=world.rp.tenant_id, key_id=key.id, contract="S5678",
            reason="CMS answered 403",
        )  # fmt: skip
        await session.commit()
        page = await world.client.get(path)
        assert 'data-testid="restore-S5678"' in page.text
        restored = await post_form(world.client, f"{path}/contracts/S5678/restore", csrf)
        assert restored.status_code == 303
        page = await world.client.get(restored.headers["location"])
        assert "access is restored" in page.text
        assert 'data-testid="restore-S5678"' not in page.text
