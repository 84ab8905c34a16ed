"""A security review of the portal's sign-in and answers: the two-step sign-in cannot be
gone around, every answer (errors and redirects too) is kept by no cache and carries the
CSP, cookies are `__Host-` and Secure over https, and nothing secret is in a URL or a log."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.auth.models import Role
from hub.core.db import Database
from hub.portal.web import PAGE_HEADERS
from hub.settings import Settings
from tests.portal.support import csrf_of, post_form, post_once, sign_in
from tests.portal.test_two_step import SECRET, code_at, password_step, turn_on
from tests.support import PASSWORD, app_client, captured_logs, make_member, make_tenant


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    member = await make_member(session, tenant, email="case@acme.test", role=Role.CASEWORKER)
    await session.commit()
    return member


@pytest.fixture
def app(settings: Settings, db: Database, redis: Any) -> Any:
    return create_app(settings, database=db, redis=redis)


def assert_page_headers(answer: httpx.Response, where: str) -> None:
    for name, value in PAGE_HEADERS.items():
        assert answer.headers.get(name) == value, f"{where}: {name} {answer.headers.get(name)}"


class TestTwoStep:
    async def test_the_password_step_alone_opens_no_page(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await turn_on(portal)
        assert (await password_step(portal)).headers["location"] == "/portal/login/code"
        for path in ("/portal/", "/portal/complaints", "/portal/account", "/portal/tenants"):
            answer = await portal.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/portal/login?"), path

    async def test_the_step_cookie_opens_nothing_after_it_was_used(
        self, app: Any, acme: Any
    ) -> None:
        async with app_client(app) as portal:
            secret = await turn_on(portal)
            await password_step(portal)
            step = dict(portal.cookies)
            done = await portal.post("/portal/login/code", data={"code": code_at(secret)})
            assert done.status_code == 303
            assert done.headers["location"] == "/portal/"
        async with app_client(app) as replay:
            for name, value in step.items():
                if "step" in name:
                    replay.cookies.set(name, value)
            again = await replay.post("/portal/login/code", data={"code": code_at(secret, 1)})
            assert again.headers["location"] == "/portal/login"
            assert (await replay.get("/portal/")).status_code == 303

    async def test_a_locked_email_takes_no_code_in_any_pending_sign_in(
        self, app: Any, acme: Any
    ) -> None:
        """Each right password starts a sign-in with five codes of its own: without the
        lockout at the code step, someone holding the password could start as many as they
        like and try five codes in each."""
        async with app_client(app) as setup:
            secret = await turn_on(setup)
        attempts = []
        for _ in range(2):
            client = app_client(app)
            await client.__aenter__()
            assert (await password_step(client)).status_code == 303
            attempts.append(client)
        first, second = attempts
        try:
            for _ in range(5):  # five wrong codes: the attempt ends, and the email is locked
                await first.post("/portal/login/code", data={"code": "000000"})
            right = await second.post("/portal/login/code", data={"code": code_at(secret)})
            assert right.status_code == 429, right.status_code
            assert "Too many failed sign-ins" in right.text
            assert "hub_session" not in right.headers.get("set-cookie", "")
            assert (await second.get("/portal/")).status_code == 303
        finally:
            for client in attempts:
                await client.__aexit__(None, None, None)

    async def test_turning_it_on_signs_out_ones_other_sessions(self, app: Any, acme: Any) -> None:
        """A session opened with the password alone (by whoever had it) does not pass for a
        two-step one once the user turns two-step sign-in on."""
        async with app_client(app) as other, app_client(app) as mine:
            await sign_in(other, "case@acme.test")
            csrf = await sign_in(mine, "case@acme.test")
            began = await post_once(mine, "/portal/account/two-step/begin", csrf)
            found = SECRET.search(began.text)
            assert found is not None
            confirmed = await post_form(
                mine, "/portal/account/two-step/confirm", csrf, {"code": code_at(found.group(1))}
            )
            assert "Two-step sign-in is on." in confirmed.text
            assert (await mine.get("/portal/")).status_code == 200
            left = await other.get("/portal/")
            assert left.status_code == 303
            assert left.headers["location"].startswith("/portal/login")


class TestAnswers:
    async def test_every_kind_of_answer_is_not_cached_and_has_the_csp(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        signed_out = {
            "GET /portal/": await portal.get("/portal/"),
            "GET /portal/login": await portal.get("/portal/login"),
            "GET /portal/login/code": await portal.get("/portal/login/code"),
            "POST /portal/login wrong": await portal.post(
                "/portal/login", data={"email": "case@acme.test", "password": "nope"}
            ),
            "POST /portal/login foreign": await portal.post(
                "/portal/login", data={"email": "x"}, headers={"Origin": "https://evil.example"}
            ),
            "POST /portal/login right": await portal.post(
                "/portal/login", data={"email": "case@acme.test", "password": PASSWORD}
            ),
        }
        csrf = csrf_of(await portal.get("/portal/"))
        signed = {
            "GET unknown": await portal.get("/portal/no/such/page"),
            "GET 403": await portal.get("/portal/members"),
            "GET 404 object": await portal.get(
                "/portal/complaints/00000000-0000-7000-8000-000000000000"
            ),
            "GET 400": await portal.get("/portal/complaints?offset=-1"),
            "GET csv": await portal.get("/portal/reports/timeliness.csv"),
            "POST no token": await portal.post("/portal/logout"),
            "POST htmx error": await post_form(
                portal, "/portal/members", csrf, headers={"HX-Request": "true"}
            ),
            "POST redirect": await post_form(portal, "/portal/logout", csrf),
        }
        for where, answer in {**signed_out, **signed}.items():
            assert_page_headers(answer, where)

    async def test_a_wrong_method_is_not_cached_either(self, portal: httpx.AsyncClient) -> None:
        assert_page_headers(await portal.get("/portal/logout"), "GET /portal/logout")

    async def test_cookies_are_host_only_and_secure_over_https(
        self, settings: Settings, db: Database, redis: Any, acme: Any
    ) -> None:
        here = settings.model_copy(update={"public_url": "https://hub.test"})
        app = create_app(here, database=db, redis=redis)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://hub.test") as client:
            answer = await client.post(
                "/portal/login", data={"email": "case@acme.test", "password": PASSWORD}
            )
            cookie = answer.headers["set-cookie"]
            assert cookie.startswith("__Host-hub_session="), cookie
            assert re.search(r"(?i);\s*secure", cookie)
            assert re.search(r"(?i);\s*httponly", cookie)
            assert re.search(r"(?i);\s*path=/(;|$)", cookie)
            assert "domain" not in cookie.lower()
            assert (await client.get("/portal/")).status_code == 200

    async def test_a_wrong_password_reaches_no_log_and_no_url(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        with captured_logs() as logs:
            answer = await portal.post(
                "/portal/login", data={"email": "case@acme.test", "password": "Hunter2-secret!"}
            )
            assert answer.status_code == 401
            signed = await portal.post(
                "/portal/login", data={"email": "case@acme.test", "password": PASSWORD}
            )
        assert "Hunter2-secret!" not in answer.text
        assert "Hunter2-secret!" not in str(logs)
        assert PASSWORD not in str(logs)
        assert "?" not in signed.headers["location"]

    @pytest.mark.parametrize(
        "target",
        [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/portal/",
            "/portal\\..\\\\evil.example",
            "/portal/\r\nLocation: https://evil.example",
            "/\tportal",
            "javascript:alert(1)",
        ],
    )
    async def test_next_never_leaves_the_hub(
        self, portal: httpx.AsyncClient, acme: Any, target: str
    ) -> None:
        answer = await portal.post(
            "/portal/login", data={"email": "case@acme.test", "password": PASSWORD, "next": target}
        )
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith("/")
        assert not location.startswith(("//", "/\\"))
        again = await portal.get("/portal/login", params={"next": target})
        assert again.headers["location"] == "/portal/"

    async def test_unknown_email_wrong_password_and_deactivated_user_say_the_same(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        gone = await make_member(session, acme.tenant, email="gone@acme.test")
        gone.user.is_active = False
        await session.commit()
        answers = [
            await portal.post("/portal/login", data={"email": email, "password": password})
            for email, password in (
                ("nobody@acme.test", PASSWORD),
                ("case@acme.test", "wrong password"),
                ("gone@acme.test", PASSWORD),
            )
        ]
        assert {a.status_code for a in answers} == {401}
        sentences = {re.sub(r'value="[^"]*"', "", a.text) for a in answers}
        assert len(sentences) == 1
