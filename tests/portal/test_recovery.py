"""Forgot your password? The same answer for every email, a one-time link by email (a real
SMTP server) that sets a new password once, within 30 minutes, signing the user out
everywhere; throttled per email and per address; the token in no log, no job, no URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
from arq import Retry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import Role, User
from hub.core.db import Database
from hub.portal import recovery, throttle
from hub.settings import Settings
from tests.integration.alerts.support import Received, Sink, free_port, smtp_sink
from tests.portal.support import sign_in
from tests.portal.test_two_step import code_at, turn_on
from tests.support import (
    PASSWORD,
    RecordingQueue,
    app_client,
    captured_logs,
    make_member,
    make_tenant,
)
from workers import alerts as alert_jobs
from workers import portal as portal_jobs
from workers.context import WorkerContext
from workers.settings import functions

HUB = "http://hub.test"
NEW = "my own new passphrase"
EMAIL = "case@acme.test"
LINK = re.compile(r"https?://[^/\s]+/portal/login/reset\?token=([A-Za-z0-9_-]{43})")


@pytest.fixture
def mail() -> Iterator[tuple[Sink, str]]:
    with smtp_sink() as found:
        yield found


@pytest.fixture
def mailing(settings: Settings, mail: tuple[Sink, str]) -> Settings:
    return settings.model_copy(update={"smtp_url": mail[1], "public_url": HUB})


@pytest.fixture
async def hub(mailing: Settings, db: Database, redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The portal of a hub that sends email."""
    async with app_client(create_app(mailing, database=db, redis=redis)) as client:
        yield client


@pytest.fixture
async def acme(session: AsyncSession) -> User:
    tenant = await make_tenant(session, "acme", "Acme Health")
    member = await make_member(session, tenant, email=EMAIL, role=Role.CASEWORKER)
    gone = await auth.create_user(session, email="gone@acme.test", password=PASSWORD)
    await auth.deactivate_user(session, gone, actor=Actor.cli())
    await session.commit()
    return member.user


def worker_context(settings: Settings, db: Database, redis: Any) -> WorkerContext:
    ctx: dict[str, Any] = {"db": db, "redis": redis, "job_try": 1, "settings": settings}
    alert_jobs.start(ctx, settings)
    return cast("WorkerContext", ctx)


async def run_jobs(settings: Settings, db: Database, redis: Any, queue: RecordingQueue) -> None:
    """What the worker does with the queued reset emails (then their ids are free again)."""
    ctx = worker_context(settings, db, redis)
    for job in [j for j in queue.sent if j.function == recovery.JOB]:
        await portal_jobs.send_password_reset(ctx, *cast("tuple[str]", job.args))
    queue.sent.clear()


def browser(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Another browser on the same hub (its own cookies)."""
    return httpx.AsyncClient(transport=client._transport, base_url=client.base_url)


async def ask(client: httpx.AsyncClient, email: str = EMAIL) -> httpx.Response:
    return await client.post("/portal/login/forgot", data={"email": email})


def link_in(received: Received) -> str:
    found = LINK.search(received.part("plain"))
    assert found is not None, received.part("plain")
    assert f'href="{found.group(0)}"' in received.part("html")
    return found.group(0)


async def emailed_link(
    hub: httpx.AsyncClient, sink: Sink, ctx: tuple[Settings, Database, Any, RecordingQueue]
) -> str:
    answer = await ask(hub)
    assert answer.status_code == 200
    await run_jobs(*ctx)
    return link_in(sink.to(EMAIL)[-1])


async def choose(client: httpx.AsyncClient, link: str, password: str = NEW) -> httpx.Response:
    opened = await client.get(link)
    assert opened.status_code == 303, opened.text
    form = await client.get(opened.headers["location"])
    assert form.status_code == 200, form.text
    return await client.post(
        "/portal/login/reset", data={"password": password, "repeated": password}
    )


@pytest.fixture
def jobs_of(
    mailing: Settings, db: Database, redis: Any, queue: RecordingQueue
) -> tuple[Settings, Database, Any, RecordingQueue]:
    return mailing, db, redis, queue


class TestAsking:
    async def test_a_known_email_gets_a_link_that_opens_the_form(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        queue: RecordingQueue,
    ) -> None:  # fmt: skip
        answer = await ask(hub)
        assert answer.status_code == 200
        assert recovery.SENT in answer.text
        [job] = queue.sent
        assert job.args == (str(acme.id),), "the job carries the user's id only, no token"
        await run_jobs(*jobs_of)
        [received] = mail[0].to(EMAIL)
        assert received.subject == "[CTM Hub] Set a new password"
        assert link_in(received).startswith(f"{HUB}/portal/login/reset?token="), "HUB_PUBLIC_URL"
        opened = await hub.get(link_in(received))
        assert opened.status_code == 303
        form = await hub.get(opened.headers["location"])
        assert form.status_code == 200
        assert 'name="repeated"' in form.text

    async def test_unknown_and_inactive_emails_answer_the_same_and_send_nothing(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        queue: RecordingQueue,
    ) -> None:  # fmt: skip
        known = await ask(hub)
        unknown = await ask(hub, "nobody@acme.test")
        inactive = await ask(hub, "gone@acme.test")
        malformed = await ask(hub, "not an email")
        assert [a.status_code for a in (known, unknown, inactive, malformed)] == [200] * 4
        assert unknown.text == known.text == inactive.text == malformed.text
        assert [j.args for j in queue.sent] == [(str(acme.id),)]
        await run_jobs(*jobs_of)
        assert [r.recipients for r in mail[0].received] == [[EMAIL]]

    async def test_the_sign_in_page_links_to_it(self, hub: httpx.AsyncClient, acme: User) -> None:
        assert 'href="/portal/login/forgot"' in (await hub.get("/portal/login")).text
        page = await hub.get("/portal/login/forgot")
        assert page.status_code == 200
        assert 'action="/portal/login/forgot"' in page.text

    async def test_without_smtp_the_page_says_to_ask_an_operator(
        self, portal: httpx.AsyncClient, acme: User, queue: RecordingQueue
    ) -> None:
        page = await portal.get("/portal/login/forgot")
        assert "hub users reset-password" in page.text
        assert 'action="/portal/login/forgot"' not in page.text
        answer = await ask(portal)
        assert answer.status_code == 200
        assert "hub users reset-password" in answer.text
        assert queue.sent == []

    async def test_an_email_gets_three_links_an_hour_and_the_same_answer_after(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        redis: Any,
    ) -> None:  # fmt: skip
        answers = []
        for _ in range(recovery.EMAIL_LIMIT + 2):
            answers.append(await ask(hub, "  Case@ACME.test "))
            await run_jobs(*jobs_of)
        assert len(mail[0].to(EMAIL)) == recovery.EMAIL_LIMIT
        assert {a.status_code for a in answers} == {200}
        assert len({a.text for a in answers}) == 1, "being throttled is not told (nor existence)"
        key = recovery._count_keys(EMAIL, "")[0]
        assert 3590 <= await redis.ttl(key) <= 3600

    async def test_one_address_is_refused_after_its_limit_whatever_the_emails(
        self, hub: httpx.AsyncClient, acme: User, queue: RecordingQueue,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        monkeypatch.setattr(recovery, "ADDRESS_LIMIT", 2)
        assert (await ask(hub, "a@elsewhere.test")).status_code == 200
        assert (await ask(hub, "b@elsewhere.test")).status_code == 200
        refused = await ask(hub)
        assert refused.status_code == 429
        assert recovery.TOO_MANY in refused.text
        assert queue.sent == []

    async def test_a_form_from_another_site_is_refused(
        self, hub: httpx.AsyncClient, acme: User, queue: RecordingQueue
    ) -> None:
        for path, form in (
            ("/portal/login/forgot", {"email": EMAIL}),
            ("/portal/login/reset", {"password": NEW, "repeated": NEW}),
        ):
            answer = await hub.post(path, data=form, headers={"Origin": "https://evil.example"})
            assert answer.status_code == 403, path
            assert "came from another site" in answer.text
        assert queue.sent == []


class TestResetting:
    async def test_the_whole_flow_sets_the_password_once_and_ends_every_session(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        session: AsyncSession, redis: Any,
    ) -> None:  # fmt: skip
        async with browser(hub) as other:
            await sign_in(other, EMAIL)
            for _ in range(throttle.EMAIL_LIMIT):  # and someone guessed until it locked
                await throttle.failed(redis, email=EMAIL, address="203.0.113.9")
            acme.must_change_password = True
            await session.commit()
            link = await emailed_link(hub, mail[0], jobs_of)
            done = await choose(hub, link)
            assert done.status_code == 200
            assert 'data-testid="reset-done"' in done.text
            left = await other.get("/portal/")
            assert left.status_code == 303
            assert left.headers["location"].startswith("/portal/login")

        old = await hub.post("/portal/login", data={"email": EMAIL, "password": PASSWORD})
        assert old.status_code == 401
        new = await hub.post("/portal/login", data={"email": EMAIL, "password": NEW})
        assert new.status_code == 303
        assert new.headers["location"] == "/portal/", "no forced change, no lockout"

        again = await hub.get(link)
        expired = await hub.get(again.headers["location"])
        assert expired.status_code == 200
        assert recovery.EXPIRED in expired.text
        assert 'href="/portal/login/forgot"' in expired.text

        session.expire_all()
        user = await session.scalar(select(User).where(User.email == EMAIL))
        assert user is not None
        assert not user.must_change_password
        [entry] = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.password_reset")
        )
        assert entry.actor_id == acme.id
        assert entry.details["via"] == "email"
        assert entry.details["sessions_ended"] == 1

    async def test_a_link_is_good_for_30_minutes_then_says_so(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        redis: Any,
    ) -> None:  # fmt: skip
        link = await emailed_link(hub, mail[0], jobs_of)
        token = LINK.fullmatch(link).group(1)  # type: ignore[union-attr]
        key = recovery._token_key(recovery._digest(token))
        assert 1790 <= await redis.ttl(key) <= 1800
        assert await redis.get(key) == str(acme.id).encode()
        await redis.delete(key)  # as Redis does when the 30 minutes are over
        answer = await choose_expired(hub, link)
        assert recovery.EXPIRED in answer.text
        refused = await hub.post("/portal/login/reset", data={"password": NEW, "repeated": NEW})
        assert refused.status_code == 400
        assert recovery.EXPIRED in refused.text
        assert (
            await hub.post("/portal/login", data={"email": EMAIL, "password": NEW})
        ).status_code == 401

    async def test_an_unknown_token_says_so(self, hub: httpx.AsyncClient, acme: User) -> None:
        answer = await choose_expired(hub, f"{HUB}/portal/login/reset?token=made-up")
        assert 'data-testid="reset-expired"' in answer.text
        bare = await httpx_get_fresh(hub, "/portal/login/reset")
        assert recovery.EXPIRED in bare.text

    async def test_a_newer_link_replaces_the_older(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any
    ) -> None:
        first = await emailed_link(hub, mail[0], jobs_of)
        second = await emailed_link(hub, mail[0], jobs_of)
        assert first != second
        assert recovery.EXPIRED in (await choose_expired(hub, first)).text
        async with browser(hub) as other:
            assert (await choose(other, second)).status_code == 200

    async def test_a_short_or_mistyped_password_keeps_the_link(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any
    ) -> None:
        link = await emailed_link(hub, mail[0], jobs_of)
        short = await choose(hub, link, "too short")
        assert short.status_code == 400
        assert 'data-testid="error-password"' in short.text
        differ = await hub.post(
            "/portal/login/reset", data={"password": NEW, "repeated": NEW + "!"}
        )
        assert differ.status_code == 400
        assert 'data-testid="error-repeated"' in differ.text
        done = await hub.post("/portal/login/reset", data={"password": NEW, "repeated": NEW})
        assert 'data-testid="reset-done"' in done.text

    async def test_two_step_sign_in_still_applies(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any
    ) -> None:
        secret = await turn_on(hub)
        link = await emailed_link(hub, mail[0], jobs_of)
        assert (await choose(hub, link)).status_code == 200
        step = await hub.post("/portal/login", data={"email": EMAIL, "password": NEW})
        assert step.headers["location"] == "/portal/login/code"
        signed = await hub.post("/portal/login/code", data={"code": code_at(secret)})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/portal/"

    async def test_a_user_deactivated_since_the_email_sets_nothing(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any,
        session: AsyncSession,
    ) -> None:  # fmt: skip
        link = await emailed_link(hub, mail[0], jobs_of)
        opened = await hub.get(link)
        await hub.get(opened.headers["location"])
        await auth.deactivate_user(session, acme, actor=Actor.cli())
        await session.commit()
        answer = await hub.post("/portal/login/reset", data={"password": NEW, "repeated": NEW})
        assert answer.status_code == 400
        assert recovery.EXPIRED in answer.text
        assert not await session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "user.password_reset")
        )


class TestTheTokenDoesNotLeak:
    async def test_it_leaves_the_address_bar_for_a_cookie_of_the_reset_page_only(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any
    ) -> None:
        link = await emailed_link(hub, mail[0], jobs_of)
        token = link.rpartition("=")[2]
        opened = await hub.get(link)
        assert opened.headers["location"] == "/portal/login/reset"
        # The address with the token in it is sent on to nobody, not even the hub's pages.
        assert opened.headers["referrer-policy"] == "no-referrer"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"{recovery.COOKIE}={token};")
        assert "Path=/portal/login/reset" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        form = await hub.get("/portal/login/reset")
        assert token not in form.text
        assert "default-src 'none'" in form.headers["content-security-policy"]
        done = await hub.post("/portal/login/reset", data={"password": NEW, "repeated": NEW})
        assert token not in done.text
        assert f'{recovery.COOKIE}="";' in done.headers["set-cookie"]

    async def test_no_log_line_holds_it(
        self, hub: httpx.AsyncClient, acme: User, mail: tuple[Sink, str], jobs_of: Any
    ) -> None:
        with captured_logs() as logs:
            link = await emailed_link(hub, mail[0], jobs_of)
            await choose(hub, link)
            await hub.get(link)
        token = link.rpartition("=")[2]
        assert any(e.get("event") == "password reset email sent" for e in logs)
        assert token not in str(logs)
        assert NEW not in str(logs)


class TestTheJob:
    def test_the_worker_runs_it(self) -> None:
        assert recovery.JOB in {f.name for f in functions()}

    async def test_a_mail_server_down_retries_later(
        self, mailing: Settings, db: Database, redis: Any, acme: User
    ) -> None:
        down = mailing.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
        ctx = worker_context(down, db, redis)
        with pytest.raises(Retry):
            await portal_jobs.send_password_reset(ctx, str(acme.id))

    async def test_a_user_deactivated_since_asking_gets_nothing(
        self, mailing: Settings, db: Database, redis: Any, acme: User, mail: tuple[Sink, str],
        session: AsyncSession,
    ) -> None:  # fmt: skip
        await auth.deactivate_user(session, acme, actor=Actor.cli())
        await session.commit()
        ctx = worker_context(mailing, db, redis)
        assert await portal_jobs.send_password_reset(ctx, str(acme.id)) == "nothing to send"
        assert mail[0].received == []


async def choose_expired(client: httpx.AsyncClient, link: str) -> httpx.Response:
    opened = await client.get(link)
    assert opened.status_code == 303
    answer = await client.get(opened.headers["location"])
    assert answer.status_code == 200
    assert 'data-testid="reset-expired"' in answer.text
    assert 'name="repeated"' not in answer.text
    return answer


async def httpx_get_fresh(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """A GET from a browser that never opened a link (no cookie)."""
    async with browser(client) as fresh:
        return await fresh.get(path)
