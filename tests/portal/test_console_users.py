"""The console's users: find someone, see where they are a member and whether they can sign
in, and answer the support requests (a forgotten password, a lost phone, someone who left):
operators only, every action audited, no secret on the page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import mfa
from hub.auth import service as auth
from hub.auth.models import Role, User
from hub.core.db import utcnow
from hub.core.errors import Conflict
from tests.portal.support import issued_token, post_form, post_once, sign_in
from tests.support import PASSWORD, Member, bearer, make_member, make_tenant

OPS = "ops@vendor.test"
ACTIONS = ("reset-password", "deactivate", "reactivate", "reset-two-step")


@pytest.fixture
async def operator(session: AsyncSession) -> User:
    user = await auth.create_user(session, email=OPS, password=PASSWORD, is_operator=True)
    await session.commit()
    return user


@pytest.fixture
async def ann(session: AsyncSession) -> Member:
    """A caseworker of Acme, with an API token, and a viewer of Beta."""
    acme = await make_tenant(session, "acme", "Acme Health")
    beta = await make_tenant(session, "beta", "Beta Plans")
    member = await make_member(session, acme, email="ann@acme.test", role=Role.CASEWORKER)
    await make_member(session, beta, email="ann@acme.test", role=Role.VIEWER)
    await session.commit()
    return member


@asynccontextmanager
async def browser_of(portal: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser (its own cookies) on the same hub."""
    async with httpx.AsyncClient(transport=portal._transport, base_url=portal.base_url) as other:
        yield other


async def fresh(session: AsyncSession, user: User) -> User:
    await session.refresh(user)
    return user


async def audited(session: AsyncSession, action: str, user: User) -> list[AuditEntry]:
    return list(
        await session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == action, AuditEntry.target_id == str(user.id)
            )
        )
    )


async def turn_on_two_step(session: AsyncSession, user: User) -> None:
    await mfa.begin(session, user)
    row = await mfa.find(session, user.id)
    assert row is not None
    row.enabled_at = utcnow()
    await session.commit()


class TestFindingUsers:
    async def test_search_by_part_of_the_email_links_each_user(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        await auth.create_user(session, email="bob@beta.test", password=PASSWORD)
        await session.commit()
        await sign_in(portal, OPS)
        assert 'href="/console/users"' in (await portal.get("/console/")).text
        everyone = await portal.get("/console/users")
        assert everyone.status_code == 200
        for user in ("ann@acme.test", "bob@beta.test", OPS):
            assert f">{user}</a>" in everyone.text
        found = await portal.get("/console/users", params={"email": "ACME"})
        assert f'href="/console/users/{ann.user.id}">ann@acme.test</a>' in found.text
        assert "bob@beta.test" not in found.text
        none = await portal.get("/console/users", params={"email": "%"})
        assert "No user whose email contains" in none.text  # a LIKE wildcard is a character

    async def test_the_tenant_page_links_its_members_to_their_page(
        self, portal: httpx.AsyncClient, operator: User, ann: Member
    ) -> None:
        await sign_in(portal, OPS)
        tenant = await portal.get("/console/tenants/acme")
        assert f'<a href="/console/users/{ann.user.id}">ann@acme.test</a>' in tenant.text

    async def test_a_user_page_shows_memberships_state_two_step_and_sessions(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        await turn_on_two_step(session, ann.user)
        await sign_in(portal, OPS)
        before = await portal.get(f"/console/users/{ann.user.id}")
        assert before.status_code == 200
        assert 'data-testid="live-sessions">0 signed in now' in before.text
        assert 'data-testid="last-sign-in">—' in before.text
        assert 'data-testid="two-step">on' in before.text
        assert ">Acme Health</a></td><td>caseworker<" in before.text
        assert ">Beta Plans</a></td><td>viewer<" in before.text
        await mfa.disable(session, ann.user, actor=Actor.system())
        await session.commit()
        async with browser_of(portal) as other:
            await sign_in(other, "ann@acme.test")
            after = await portal.get(f"/console/users/{ann.user.id}")
        assert 'data-testid="live-sessions">1 signed in now' in after.text
        assert 'data-testid="two-step">off' in after.text
        assert 'data-testid="last-sign-in">—' not in after.text
        assert "argon2" not in after.text  # no password hash
        assert ann.user.password_hash is not None
        assert ann.user.password_hash not in after.text
        assert ann.token not in after.text

    async def test_an_unknown_user_is_a_404_page(
        self, portal: httpx.AsyncClient, operator: User
    ) -> None:
        await sign_in(portal, OPS)
        answer = await portal.get("/console/users/0190f1c2-0000-7000-8000-000000000000")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")


class TestOperatorsOnly:
    async def test_a_tenant_admin_may_not_open_or_post(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        acme = ann.tenant
        await make_member(session, acme, email="admin@acme.test", role=Role.ADMIN)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        assert (await portal.get("/console/users")).status_code == 403
        assert (await portal.get(f"/console/users/{ann.user.id}")).status_code == 403
        for action in ACTIONS:
            answer = await post_form(portal, f"/console/users/{ann.user.id}/{action}", csrf)
            assert answer.status_code == 403, action
            assert "for platform operators" in answer.text
        assert (await fresh(session, ann.user)).is_active
        assert await audited(session, auth.USER_PASSWORD_RESET, ann.user) == []

    @pytest.mark.parametrize("action", ACTIONS)
    async def test_every_action_needs_the_session_token(
        self,
        portal: httpx.AsyncClient,
        operator: User,
        ann: Member,
        session: AsyncSession,
        action: str,
    ) -> None:
        await sign_in(portal, OPS)
        answer = await portal.post(f"/console/users/{ann.user.id}/{action}", data={})
        assert answer.status_code == 403
        assert "This form has expired" in answer.text
        wrong = await portal.post(
            f"/console/users/{ann.user.id}/{action}", data={"_csrf": "0" * 64}
        )
        assert wrong.status_code == 403
        assert (await fresh(session, ann.user)).is_active
        assert list(await session.scalars(select(AuditEntry).where(
            AuditEntry.target_id == str(ann.user.id),
            AuditEntry.action.in_([auth.USER_PASSWORD_RESET, auth.USER_DEACTIVATED]),
        ))) == []  # fmt: skip

    async def test_a_form_from_another_site_is_refused(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, OPS)
        answer = await post_form(
            portal, f"/console/users/{ann.user.id}/deactivate", csrf,
            headers={"Origin": "https://evil.example"},
        )  # fmt: skip
        assert answer.status_code == 403
        assert (await fresh(session, ann.user)).is_active


class TestResetPassword:
    async def test_a_new_password_shown_once_signs_the_user_out_everywhere(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        async with browser_of(portal) as anns:
            await sign_in(anns, "ann@acme.test")
            csrf = await sign_in(portal, OPS)
            answer = await post_once(portal, f"/console/users/{ann.user.id}/reset-password", csrf)
            assert answer.status_code == 200
            assert "1 portal session(s) of theirs were signed out" in answer.text
            new = answer.text.split('class="secret">')[1].split("<")[0]
            assert len(new) >= 20
            assert new not in (await portal.get(f"/console/users/{ann.user.id}")).text
            kicked = await anns.get("/portal/")
            assert kicked.status_code == 303
            assert kicked.headers["location"].startswith("/portal/login")
        old = await portal.post(
            "/portal/login", data={"email": "ann@acme.test", "password": PASSWORD}
        )
        assert old.status_code != 303
        async with browser_of(portal) as anns:
            await sign_in(anns, "ann@acme.test", new)
        [entry] = await audited(session, auth.USER_PASSWORD_RESET, ann.user)
        assert (entry.tenant_id, entry.actor_label, entry.actor_id) == (None, OPS, operator.id)
        assert entry.details == {"generated": True, "sessions_ended": 1}

    async def test_through_htmx_the_page_part_comes_back_with_the_password(
        self, portal: httpx.AsyncClient, operator: User, ann: Member
    ) -> None:
        csrf = await sign_in(portal, OPS)
        answer = await post_once(
            portal, f"/console/users/{ann.user.id}/reset-password", csrf,
            headers={"HX-Request": "true"},
        )  # fmt: skip
        assert answer.status_code == 200
        assert answer.text.lstrip().startswith('<div id="user-page">')  # the part, no layout
        assert "<html" not in answer.text
        assert 'class="secret">' in answer.text

    async def test_an_operator_resets_their_own_on_the_account_page(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, OPS)
        page = await portal.get(f"/console/users/{operator.id}")
        assert "/reset-password" not in page.text
        assert 'href="/portal/account"' in page.text
        # With a token as a page would give one: the form is not on their page.
        answer = await post_form(
            portal, f"/console/users/{operator.id}/reset-password", csrf,
            {"_form_token": issued_token(portal, "console.reset-password")},
        )  # fmt: skip
        assert answer.status_code == 409
        assert "change your own password on your account page" in answer.text
        assert await audited(session, auth.USER_PASSWORD_RESET, operator) == []

    async def test_an_unknown_user_is_a_404(
        self, portal: httpx.AsyncClient, operator: User
    ) -> None:
        csrf = await sign_in(portal, OPS)
        answer = await post_form(
            portal, "/console/users/0190f1c2-0000-7000-8000-000000000000/reset-password", csrf,
            {"_form_token": issued_token(portal, "console.reset-password")},
        )  # fmt: skip
        assert answer.status_code == 404


class TestDeactivate:
    async def test_a_deactivated_user_is_signed_out_and_their_tokens_stop(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        assert (await portal.get("/api/v1/me", headers=bearer(ann.token))).status_code == 200
        async with browser_of(portal) as anns:
            await sign_in(anns, "ann@acme.test")
            csrf = await sign_in(portal, OPS)
            page = await portal.get(f"/console/users/{ann.user.id}")
            assert 'data-testid="deactivate"' in page.text
            answer = await post_form(portal, f"/console/users/{ann.user.id}/deactivate", csrf)
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/console/users/{ann.user.id}?done=deactivated"
            shown = await portal.get(answer.headers["location"])
            assert "The user was deactivated" in shown.text
            assert 'data-testid="state">deactivated' in shown.text
            assert 'data-testid="reactivate"' in shown.text
            assert (await anns.get("/portal/")).status_code == 303
        assert not (await fresh(session, ann.user)).is_active
        assert (await portal.get("/api/v1/me", headers=bearer(ann.token))).status_code == 401
        async with browser_of(portal) as anns:
            refused = await anns.post(
                "/portal/login", data={"email": "ann@acme.test", "password": PASSWORD}
            )
            assert refused.status_code != 303
        tenant = await portal.get("/console/tenants/acme")
        assert 'ann@acme.test</a> <span class="pill bad">deactivated' in tenant.text
        [entry] = await audited(session, auth.USER_DEACTIVATED, ann.user)
        assert (entry.tenant_id, entry.actor_label) == (None, OPS)
        assert entry.details == {"email": "ann@acme.test", "sessions_ended": 1}

    async def test_the_keys_they_are_rp_of_need_replacing_and_an_admin_may_retire_them(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        from hub.keys import service as keys
        from hub.keys.models import KeyStatus
        from hub.keys.schemas import KeyCreate, TechnicalPoc

        admin = await make_member(session, ann.tenant, email="boss@acme.test", role=Role.ADMIN)
        await keys.add_contract(session, admin.principal, number="H1234")
        body = KeyCreate(
            environment="sandbox", key_id="ANN-KEY-1", secret="ann-secret-value",
            hpms_user_id="ANN1", technical_poc=TechnicalPoc("T", "t@acme.test"),
            contracts=["H1234"], verify=False,
        )  # fmt: skip
        key = await keys.create_key(session, ann.principal, data=body, verifier=None)
        await session.commit()
        csrf = await sign_in(portal, OPS)
        await post_form(portal, f"/console/users/{ann.user.id}/deactivate", csrf)
        await session.refresh(key)
        assert key.status is KeyStatus.NEEDS_REPLACEMENT
        assert key.status_reason == keys.USER_DEACTIVATED
        [orphaned] = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "key.orphaned")
        )
        assert (orphaned.actor_label, orphaned.target_id) == (OPS, str(key.id))
        portal.cookies.clear()
        csrf = await sign_in(portal, "boss@acme.test")
        page = await portal.get(f"/portal/keys/{key.id}")
        assert "account was deactivated" in page.text
        assert 'data-testid="deactivate"' in page.text
        answer = await post_form(portal, f"/portal/keys/{key.id}/deactivate", csrf)
        assert answer.status_code == 303
        await session.refresh(key)
        assert key.status is KeyStatus.DEACTIVATED

    async def test_reactivating_lets_them_in_again_with_their_tokens(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, OPS)
        await post_form(portal, f"/console/users/{ann.user.id}/deactivate", csrf)
        again = await post_form(portal, f"/console/users/{ann.user.id}/deactivate", csrf)
        assert again.headers["location"].endswith("?done=already-inactive")
        answer = await post_form(portal, f"/console/users/{ann.user.id}/reactivate", csrf)
        assert answer.status_code == 303
        assert answer.headers["location"].endswith("?done=reactivated")
        assert "The user was reactivated" in (await portal.get(answer.headers["location"])).text
        assert (await fresh(session, ann.user)).is_active
        assert (await portal.get("/api/v1/me", headers=bearer(ann.token))).status_code == 200
        async with browser_of(portal) as anns:
            await sign_in(anns, "ann@acme.test")
        assert len(await audited(session, auth.USER_DEACTIVATED, ann.user)) == 1
        assert len(await audited(session, auth.USER_REACTIVATED, ann.user)) == 1
        twice = await post_form(portal, f"/console/users/{ann.user.id}/reactivate", csrf)
        assert twice.headers["location"].endswith("?done=already-active")

    async def test_an_operator_cannot_deactivate_themselves(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, OPS)
        answer = await post_form(portal, f"/console/users/{operator.id}/deactivate", csrf)
        assert answer.status_code == 409
        assert "you cannot deactivate yourself" in answer.text
        assert (await fresh(session, operator)).is_active
        assert (await portal.get("/console/")).status_code == 200  # still signed in

    async def test_another_operator_may_be_deactivated_but_never_the_last(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        other = await auth.create_user(
            session, email="ops2@vendor.test", password=PASSWORD, is_operator=True
        )
        await session.commit()
        csrf = await sign_in(portal, OPS)
        answer = await post_form(portal, f"/console/users/{other.id}/deactivate", csrf)
        assert answer.headers["location"].endswith("?done=deactivated")
        # The console's operator is never the target (refused above), so the last-operator
        # rule is reached from the shell (tests/integration/test_cli_users.py) or a service.
        with pytest.raises(Conflict, match="last active operator"):
            await auth.deactivate_user(session, await fresh(session, operator), actor=Actor.cli())
        assert (await fresh(session, operator)).is_active


class TestResetTwoStep:
    async def test_a_lost_phone_turns_two_step_off_and_they_sign_in_with_a_password(
        self, portal: httpx.AsyncClient, operator: User, ann: Member, session: AsyncSession
    ) -> None:
        await turn_on_two_step(session, ann.user)
        async with browser_of(portal) as anns:
            asked = await anns.post(
                "/portal/login", data={"email": "ann@acme.test", "password": PASSWORD}
            )
            assert asked.headers["location"] == "/portal/login/code"
        csrf = await sign_in(portal, OPS)
        page = await portal.get(f"/console/users/{ann.user.id}")
        assert 'data-testid="reset-two-step"' in page.text
        answer = await post_form(portal, f"/console/users/{ann.user.id}/reset-two-step", csrf)
        assert answer.headers["location"].endswith("?done=two-step-off")
        shown = await portal.get(answer.headers["location"])
        assert 'data-testid="two-step">off' in shown.text
        assert 'data-testid="reset-two-step"' not in shown.text
        assert not await mfa.is_enabled(session, ann.user.id)
        async with browser_of(portal) as anns:
            await sign_in(anns, "ann@acme.test")  # straight in, no code asked
        [entry] = await audited(session, "user.two_step_disabled", ann.user)
        assert (entry.actor_label, entry.details) == (OPS, {"by_self": False})
        twice = await post_form(portal, f"/console/users/{ann.user.id}/reset-two-step", csrf)
        assert twice.headers["location"].endswith("?done=two-step-was-off")

    async def test_an_operators_own_goes_through_the_account_page(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, OPS)
        await turn_on_two_step(session, operator)
        answer = await post_form(portal, f"/console/users/{operator.id}/reset-two-step", csrf)
        assert answer.status_code == 409
        assert await mfa.is_enabled(session, operator.id)
