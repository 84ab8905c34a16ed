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
from hub.audit.service import Actor
from hub.auth import service as auth
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


class TestWhoSeesWhichAction:
    async def test_admin_deactivates_a_key_whose_rp_left_and_a_viewer_is_not_offered_it(
        self, world: World, session: AsyncSession
    ) -> None:
        key = await unverified_key(session, world.rp, "LEFT-1")
        await auth.remove_member(
            session, world.admin.principal, membership_id=world.rp.membership.id
        )
        await session.commit()
        path = f"/portal/keys/{key.id}"
        await world.sign_in("viewer@plan.example")
        assert 'data-testid="deactivate"' not in (await world.client.get(path)).text
        csrf = await world.sign_in("admin@plan.example")
        page = await world.client.get(path)
        assert re.search(r'data-testid="key-status">needs replacement<', page.text)
        assert 'data-testid="deactivate"' in page.text
        assert 'data-testid="deactivate-why"' in page.text
        answer = await post_form(world.client, f"{path}/deactivate", csrf)
        assert answer.status_code == 303
        page = await world.client.get(answer.headers["location"])
        assert re.search(r'data-testid="key-status">deactivated<', page.text)
        assert 'data-testid="replace"' in page.text

    @pytest.mark.parametrize("state", ["active", "suspended", "compromised", "deactivated"])
    @pytest.mark.parametrize("who", ["rp", "admin", "viewer"])
    async def test_the_page_offers_exactly_what_the_service_allows(
        self, world: World, session: AsyncSession, state: str, who: str
    ) -> None:
        key = await unverified_key(session, world.rp, f"S-{state}")
        rp = world.rp.principal
        if state == "suspended":
            await service.suspend_key(session, rp, key_id=key.id)
        elif state == "compromised":
            await service.report_compromise(
                session, tenant_id=world.rp.tenant_id, key_id=key.id, actor=Actor.system()
            )
        elif state == "deactivated":
            await service.deactivate_key(session, rp, key_id=key.id)
        await session.commit()
        member = getattr(world, who)
        may = await service.actions_for(session, member.principal, key)
        await world.sign_in(member.user.email)
        page = (await world.client.get(f"/portal/keys/{key.id}")).text
        for action in ("rotate", "deactivate", "suspend", "resume", "compromise"):
            assert (f'data-testid="{action}"' in page) is getattr(may, action), action
        assert ('data-testid="set-contracts"' in page) is may.set_contracts
        assert ('action="/portal/keys/' + f'{key.id}/designees/add"' in page) is (
            may.designees and who == "rp"
        )


class TestReplaceAndContracts:
    async def test_rp_registers_a_replacement_with_a_rotation_date_keeping_the_contracts(
        self, world: World, session: AsyncSession
    ) -> None:
        old = await unverified_key(session, world.rp, "OLD-1")
        await service.report_compromise(
            session, tenant_id=world.rp.tenant_id, key_id=old.id, actor=Actor.system()
        )
        await session.commit()
        csrf = await world.sign_in("rp@plan.example")
        form = await world.client.get(f"/portal/keys/new?replaces={old.id}")
        assert f'<option value="{old.id}" selected>' in form.text
        new = world.sim_key()
        answer = await post_form(
            world.client, "/portal/keys", csrf,
            world.form(new, contracts="", replaces=str(old.id), expected_rotation_on="2027-03-01"),
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        created = await session.get(
            ApiKey, UUID(answer.headers["location"].split("/")[-1].split("?")[0])
        )
        assert created is not None
        await session.refresh(created)
        assert created.replaces_id == old.id
        assert str(created.expected_rotation_on) == "2027-03-01"
        page = await world.client.get(answer.headers["location"])
        assert f'href="/portal/keys/{old.id}"' in page.text
        assert "H1234" in page.text  # the replaced key's contract

    async def test_an_active_key_cannot_be_replaced_and_a_bad_date_is_named(
        self, world: World, session: AsyncSession
    ) -> None:
        live = await unverified_key(session, world.rp, "LIVE-1")
        csrf = await world.sign_in("rp@plan.example")
        form = await world.client.get("/portal/keys/new")
        assert 'data-testid="replaces"' not in form.text  # nothing is replaceable
        new = world.sim_key()
        refused = await post_form(
            world.client, "/portal/keys", csrf, world.form(new, replaces=str(live.id))
        )
        assert refused.status_code == 400
        assert re.search(r'data-testid="error-replaces">[^<]*active', refused.text)
        bad = await post_form(
            world.client, "/portal/keys", csrf, world.form(new, expected_rotation_on="soon")
        )
        assert bad.status_code == 400
        assert 'data-testid="error-expected_rotation_on"' in bad.text

    async def test_admin_sets_a_keys_contracts_and_others_may_not(
        self, world: World, session: AsyncSession
    ) -> None:
        key = await unverified_key(session, world.rp, "CON-1")
        path = f"/portal/keys/{key.id}"
        csrf = await world.sign_in("rp@plan.example")
        assert 'data-testid="set-contracts"' not in (await world.client.get(path)).text
        refused = await post_form(world.client, f"{path}/contracts", csrf, {"contracts": "S5678"})
        assert refused.status_code == 403
        csrf = await world.sign_in("admin@plan.example")
        assert 'data-testid="set-contracts"' in (await world.client.get(path)).text
        wrong = await post_form(world.client, f"{path}/contracts", csrf, {"contracts": "H9999"})
        assert wrong.status_code == 400
        assert re.search(
            r'data-testid="error-contracts">[^<]*not a contract of this tenant', wrong.text
        )
        answer = await post_form(
            world.client, f"{path}/contracts", csrf, {"contracts": "H1234 S5678"}
        )
        assert answer.status_code == 303
        page = await world.client.get(answer.headers["location"])
        assert "contracts are saved" in page.text
        table = re.search(r'data-testid="contracts">(.*?)</table>', page.text, re.S)
        assert table is not None
        assert "S5678" in table.group(1)
