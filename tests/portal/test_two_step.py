"""Two-step sign-in: turning it on (the key shown once, confirmed by a code), the code asked
after a right password (once per code, five tries), turning it off, the hub-wide
requirement, and the secrets' place in the master key ring."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import mfa
from hub.auth.models import Role, UserTotp
from hub.core.db import Database, utcnow
from hub.portal import throttle
from hub.settings import Settings
from hub.tenants import keys
from tests.portal.support import csrf_of, post_form, post_once, sign_in
from tests.support import PASSWORD, app_client, make_member, make_tenant
from tests.trust import TEST_MASTER_KEY, ring, with_crypto

SECRET = re.compile(r'data-testid="two-step-secret">([A-Z2-7]{32})<')


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    member = await make_member(session, tenant, email="case@acme.test", role=Role.CASEWORKER)
    await session.commit()
    return member


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The code of the step `steps_ahead` from now (a code is taken once: the next step's
    code is the one a person would type half a minute later)."""
    moment = utcnow() + timedelta(seconds=30 * steps_ahead)
    return pyotp.TOTP(secret).at(moment)


async def turn_on(portal: httpx.AsyncClient) -> str:
    """Sign in, turn two-step sign-in on; the secret."""
    csrf = await sign_in(portal, "case@acme.test")
    began = await post_once(portal, "/portal/account/two-step/begin", csrf)
    assert began.status_code == 200
    found = SECRET.search(began.text)
    assert found is not None
    # The previous step's code (still taken): the steps after it stay free for the test.
    confirmed = await post_form(
        portal, "/portal/account/two-step/confirm", csrf, {"code": code_at(found.group(1), -1)}
    )
    assert "Two-step sign-in is on." in confirmed.text
    await post_form(portal, "/portal/logout", csrf)
    return found.group(1)


async def password_step(portal: httpx.AsyncClient) -> httpx.Response:
    return await portal.post(
        "/portal/login", data={"email": "case@acme.test", "password": PASSWORD}
    )


class TestTurningOn:
    async def test_the_key_is_shown_with_its_qr_code_then_confirmed(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "case@acme.test")
        page = await portal.get("/portal/account/two-step")
        assert "Two-step sign-in is <b>off</b>" in page.text
        began = await post_once(portal, "/portal/account/two-step/begin", csrf)
        assert 'src="data:image/svg+xml' in began.text
        found = SECRET.search(began.text)
        assert found is not None
        wrong = await post_form(
            portal, "/portal/account/two-step/confirm", csrf, {"code": "000000"}
        )
        assert wrong.status_code == 400
        assert "current code: check the phone" in wrong.text
        assert found.group(1) in wrong.text  # the same key, to try again
        right = await post_form(
            portal, "/portal/account/two-step/confirm", csrf, {"code": code_at(found.group(1))}
        )
        assert right.status_code == 200
        assert found.group(1) not in right.text
        assert found.group(1) not in (await portal.get("/portal/account/two-step")).text
        stored = await session.scalar(select(UserTotp).where(UserTotp.user_id == acme.user.id))
        assert stored is not None
        assert found.group(1).encode() not in stored.wrapped_secret
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "user.two_step_enabled")
        )
        assert entry is not None
        assert entry.actor_label == "case@acme.test"


class TestSigningIn:
    async def test_a_right_password_then_the_code(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        secret = await turn_on(portal)
        first = await password_step(portal)
        assert first.headers["location"] == "/portal/login/code"
        assert "hub_session" not in portal.cookies
        assert (await portal.get("/portal/")).status_code == 303  # no session yet
        wrong = await portal.post("/portal/login/code", data={"code": "123456"})
        assert wrong.status_code == 401
        assert "not the current code" in wrong.text
        right = await portal.post("/portal/login/code", data={"code": code_at(secret)})
        assert right.status_code == 303
        assert "Acme Health" in (await portal.get("/portal/")).text
        entries = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "user.sign_in"))
        )
        assert [e.details.get("step") for e in entries if e.outcome.value == "denied"] == ["code"]
        assert any(e.details.get("two_step") is True for e in entries)

    async def test_a_code_opens_once(self, portal: httpx.AsyncClient, acme: Any) -> None:
        secret = await turn_on(portal)
        code = code_at(secret)
        await password_step(portal)
        assert (await portal.post("/portal/login/code", data={"code": code})).status_code == 303
        csrf = csrf_of(await portal.get("/portal/"))
        await post_form(portal, "/portal/logout", csrf)
        await password_step(portal)
        again = await portal.post("/portal/login/code", data={"code": code})
        assert again.status_code == 401

    async def test_five_wrong_codes_end_the_attempt(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        secret = await turn_on(portal)
        await password_step(portal)
        for _ in range(4):
            answer = await portal.post("/portal/login/code", data={"code": "000000"})
            assert answer.status_code == 401
        last = await portal.post("/portal/login/code", data={"code": "000000"})
        assert "Too many wrong codes" in last.text
        late = await portal.post("/portal/login/code", data={"code": code_at(secret)})
        assert late.status_code == 303
        assert late.headers["location"] == "/portal/login"
        assert "hub_session" not in portal.cookies

    async def test_the_code_page_needs_a_right_password_first(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        answer = await portal.get("/portal/login/code")
        assert answer.headers["location"] == "/portal/login"
        posted = await portal.post("/portal/login/code", data={"code": "123456"})
        assert posted.headers["location"] == "/portal/login"


class TestTurningOff:
    async def test_needs_the_password_and_a_code(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        secret = await turn_on(portal)
        await password_step(portal)
        await portal.post("/portal/login/code", data={"code": code_at(secret)})
        csrf = csrf_of(await portal.get("/portal/account/two-step"))
        no = await post_form(
            portal, "/portal/account/two-step/disable", csrf,
            {"password": "wrong password!", "code": code_at(secret, 1)},
        )  # fmt: skip
        assert no.status_code == 400
        assert "is not your password" in no.text
        off = await post_form(
            portal, "/portal/account/two-step/disable", csrf,
            {"password": PASSWORD, "code": code_at(secret, 1)},
        )  # fmt: skip
        assert off.status_code == 303
        assert not await mfa.is_enabled(session, acme.user.id)
        assert (await password_step(portal)).headers["location"] == "/portal/"

    async def test_guesses_count_toward_the_lockout(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        secret = await turn_on(portal)
        await password_step(portal)
        await portal.post("/portal/login/code", data={"code": code_at(secret)})
        csrf = csrf_of(await portal.get("/portal/account/two-step"))
        for _ in range(throttle.EMAIL_LIMIT):
            wrong = await post_form(
                portal, "/portal/account/two-step/disable", csrf,
                {"password": "not my password", "code": "000000"},
            )  # fmt: skip
            assert wrong.status_code == 400
        locked = await post_form(
            portal, "/portal/account/two-step/disable", csrf,
            {"password": PASSWORD, "code": code_at(secret, 1)},
        )  # fmt: skip
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.text
        assert await mfa.is_enabled(session, acme.user.id)

    async def test_an_operator_turns_it_off_for_a_lost_phone(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await turn_on(portal)
        assert await mfa.disable(session, acme.user, actor=Actor.system("operator"))
        await session.commit()
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "user.two_step_disabled")
        )
        assert entry is not None
        assert entry.details == {"by_self": False}
        assert (await password_step(portal)).headers["location"] == "/portal/"


class TestRequired:
    @pytest.fixture
    async def strict(self, settings: Settings, db: Database, redis: Any) -> Any:
        app = create_app(
            settings.model_copy(update={"portal_require_two_step": True}),
            database=db,
            redis=redis,
        )
        async with app_client(app) as client:
            yield client

    async def test_nothing_opens_until_it_is_on(self, strict: httpx.AsyncClient, acme: Any) -> None:
        answer = await strict.post(
            "/portal/login", data={"email": "case@acme.test", "password": PASSWORD}
        )
        assert answer.status_code == 303
        for path in ("/portal/", "/portal/complaints", "/portal/tenants"):
            refused = await strict.get(path)
            assert refused.headers["location"] == "/portal/account/two-step"
        page = await strict.get("/portal/account/two-step")
        assert "This hub requires two-step sign-in" in page.text
        csrf = csrf_of(page)
        began = await post_once(strict, "/portal/account/two-step/begin", csrf)
        found = SECRET.search(began.text)
        assert found is not None
        await post_form(
            strict, "/portal/account/two-step/confirm", csrf, {"code": code_at(found.group(1))}
        )
        assert (await strict.get("/portal/")).status_code == 200
        off = await post_form(
            strict, "/portal/account/two-step/disable", csrf,
            {"password": PASSWORD, "code": code_at(found.group(1), 1)},
        )  # fmt: skip
        assert off.status_code == 409


class TestMasterKeyRing:
    async def test_rotation_rewraps_two_step_secrets(
        self, committed_db: Database, settings: Settings
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme")
            member = await make_member(session, tenant, email="case@acme.test")
            enrollment = await mfa.begin(session, member.user)
            await mfa.confirm(session, member.user, code_at(enrollment.secret))
        new_key = os.urandom(32)
        rotating = with_crypto(committed_db, ring(("v2", new_key), ("test1", TEST_MASTER_KEY)))
        await keys.rotate_master_key(rotating, actor=Actor.system("tests"))
        only_new = with_crypto(committed_db, ring(("v2", new_key)))
        async with only_new.transaction() as session:
            await mfa.check_ring(session)
            assert await mfa.verify(session, member.user.id, code_at(enrollment.secret, 1))
        only_old = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        async with only_old.transaction(read_only=True) as session:
            with pytest.raises(mfa.TotpKeyUnavailable, match="two-step secret"):
                await mfa.check_ring(session)
            with pytest.raises(mfa.TotpKeyUnavailable):
                await mfa.count_to_rewrap(session)
