"""Forms whose answer shows a secret act once: sent again with the same form token (a
reload re-sends the POST), they make nothing and answer 409 naming what the first made;
without a token they make nothing (400 naming the field); each new token acts again."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import mfa, tokens
from hub.auth import service as auth
from hub.auth.models import ApiToken, Role, User
from hub.core import crypto
from hub.portal import once
from hub.settings import Settings
from hub.webhooks import service as webhooks
from hub.webhooks.models import WebhookEndpoint
from hub.webhooks.schemas import EndpointCreate
from tests.portal.support import LOOPBACK_RECEIVERS, form_token_of, post_form, sign_in
from tests.support import PASSWORD, Member, make_member, make_tenant

URL = "http://127.0.0.1:9/hook"
OPS = "ops@vendor.test"
DETAIL = re.compile(r'data-testid="error-detail">([^<]*)<')
SHOWN_ONCE = "was shown once and cannot be shown again"


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=LOOPBACK_RECEIVERS)


@dataclass
class World:
    admin: Member
    ann: Member  # a caseworker, whose password an operator resets
    operator: User
    endpoint_id: UUID  # an endpoint of acme's, to rotate the secret of

    def path(self, template: str) -> str:
        return template.format(endpoint=self.endpoint_id, ann=self.ann.user.id)


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    ann = await make_member(session, tenant, email="ann@acme.test", role=Role.CASEWORKER)
    operator = await auth.create_user(session, email=OPS, password=PASSWORD, is_operator=True)
    endpoint, _ = await webhooks.create_endpoint(
        session, admin.principal, data=EndpointCreate(url=URL, event_types=["*"]),
        rules=webhooks.UrlRules.from_settings(settings),
    )  # fmt: skip
    await session.commit()
    return World(admin, ann, operator, endpoint.id)


async def _count(session: AsyncSession, statement: Any) -> int:
    return int(await session.scalar(statement.execution_options(populate_existing=True)) or 0)


async def _audited(session: AsyncSession, action: str, target: UUID) -> int:
    return await _count(
        session,
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == action, AuditEntry.target_id == str(target)),
    )


async def _users_like(session: AsyncSession, pattern: str) -> int:
    return await _count(
        session, select(func.count()).select_from(User).where(User.email.like(pattern))
    )


async def _current_signing_secret(session: AsyncSession, world: World, secret: str) -> bool:
    endpoint = await session.get(WebhookEndpoint, world.endpoint_id, populate_existing=True)
    assert endpoint is not None
    cipher = await crypto.cipher_for(session, endpoint.tenant_id)
    return cipher.open(endpoint.secret, field=webhooks.SECRET_FIELD, row=endpoint.id) == secret


async def _current_password(session: AsyncSession, world: World, password: str) -> bool:
    user = await session.get(User, world.ann.user.id, populate_existing=True)
    assert user is not None
    return tokens.verify_password(user.password_hash, password)


async def _current_two_step_key(session: AsyncSession, world: World, secret: str) -> bool:
    user = await session.get(User, world.admin.user.id, populate_existing=True)
    assert user is not None
    waiting = await mfa.pending(session, user)
    return waiting is not None and waiting.secret == secret


@dataclass(frozen=True)
class Form:
    """One form that makes a secret, and how to tell what it made."""

    id: str
    who: str  # who sends it
    page: str  # the page that gives it its token ({endpoint}, {ann}: the world's ids)
    action: str
    data: Callable[[int], dict[str, str]]  # the n-th sending's fields
    label: str  # how the answer to a second sending names what the first made
    secret: re.Pattern[str]  # the secret on the first answer
    # How many it made (or changed), counted in the database (None: a two-step key in
    # waiting is replaced in place; `in_force` tells which one it is).
    made: Callable[[AsyncSession, World], Awaitable[int]] | None
    # For a form that replaces a secret: whether this one is the one in force.
    in_force: Callable[[AsyncSession, World, str], Awaitable[bool]] | None = None


FORMS = [
    Form(
        "api-token", "admin@acme.test", "/portal/tokens", "/portal/tokens",
        lambda n: {"name": "ci-bot", "scopes": "complaints:read", "expires_in": "30d"},
        "ci-bot", re.compile(r'data-testid="token-secret">([^<]+)<'),
        lambda s, w: _count(
            s, select(func.count()).select_from(ApiToken).where(ApiToken.name == "ci-bot")
        ),
    ),
    Form(
        "member", "admin@acme.test", "/portal/members", "/portal/members",
        lambda n: {"email": f"new{n}@acme.test", "role": "viewer"},
        "new0@acme.test", re.compile(r'data-testid="new-password">([^<]+)<'),
        lambda s, w: _users_like(s, "new%@acme.test"),
    ),
    Form(
        "webhook-endpoint", "admin@acme.test", "/portal/webhooks/new", "/portal/webhooks",
        lambda n: {"url": f"{URL}/{n}", "event_types": "*"},
        f"{URL}/0", re.compile(r'data-testid="secret">([^<]+)<'),
        lambda s, w: _count(
            s,
            select(func.count()).select_from(WebhookEndpoint).where(
                WebhookEndpoint.url.like(f"{URL}/%")
            ),
        ),
    ),
    Form(
        "webhook-rotation", "admin@acme.test", "/portal/webhooks/{endpoint}",
        "/portal/webhooks/{endpoint}/rotate", lambda n: {},
        URL, re.compile(r'data-testid="secret">([^<]+)<'),
        lambda s, w: _audited(s, "webhook.secret_rotated", w.endpoint_id),
        _current_signing_secret,
    ),
    Form(
        "two-step-key", "admin@acme.test", "/portal/account/two-step",
        "/portal/account/two-step/begin", lambda n: {},
        "admin@acme.test", re.compile(r'data-testid="two-step-secret">([^<]+)<'),
        None, _current_two_step_key,
    ),
    Form(
        "console-person", OPS, "/console/tenants/acme", "/console/tenants/acme/members",
        lambda n: {"email": f"person{n}@acme.test", "role": "admin"},
        "person0@acme.test", re.compile(r'class="secret">([^<]+)<'),
        lambda s, w: _users_like(s, "person%@acme.test"),
    ),
    Form(
        "console-password-reset", OPS, "/console/users/{ann}",
        "/console/users/{ann}/reset-password", lambda n: {},
        "ann@acme.test", re.compile(r'class="secret">([^<]+)<'),
        lambda s, w: _audited(s, auth.USER_PASSWORD_RESET, w.ann.user.id),
        _current_password,
    ),
]  # fmt: skip


async def _open(client: httpx.AsyncClient, world: World, form: Form) -> tuple[str, str]:
    """Sign in as the form's sender and open its page: the CSRF token and the form token."""
    csrf = await sign_in(client, form.who)
    page = await client.get(world.path(form.page))
    assert page.status_code == 200, page.text
    return csrf, form_token_of(page)


async def _send(
    client: httpx.AsyncClient, world: World, form: Form, csrf: str, token: str | None, n: int = 0
) -> httpx.Response:
    fields = form.data(n) if token is None else {once.FIELD: token, **form.data(n)}
    return await post_form(client, world.path(form.action), csrf, fields)


def _secret(form: Form, answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    found = form.secret.search(answer.text)
    assert found is not None, answer.text
    return html.unescape(found.group(1))


def _detail(answer: httpx.Response) -> str:
    found = DETAIL.search(answer.text)
    assert found is not None, answer.text
    return html.unescape(found.group(1))


@pytest.mark.parametrize("form", FORMS, ids=[form.id for form in FORMS])
class TestEachForm:
    async def test_sent_twice_with_one_token_it_acts_once_and_names_what_it_made(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession, form: Form
    ) -> None:
        csrf, token = await _open(portal, world, form)
        first = _secret(form, await _send(portal, world, form, csrf, token))
        again = await _send(portal, world, form, csrf, token)
        assert again.status_code == 409
        detail = _detail(again)
        assert detail.startswith("This form was already sent, and "), detail
        assert f'"{form.label}"' in detail, detail
        assert SHOWN_ONCE in detail
        assert first not in again.text  # the secret is not shown a second time
        assert 'data-testid="made-link"' in again.text
        if form.made is not None:
            assert await form.made(session, world) == 1
        if form.in_force is not None:  # the secret handed over is still the one in use
            assert await form.in_force(session, world, first)

    async def test_without_its_token_it_makes_nothing_and_names_the_field(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession, form: Form
    ) -> None:
        csrf, _ = await _open(portal, world, form)
        answer = await _send(portal, world, form, csrf, None)
        assert answer.status_code == 400
        assert _detail(answer).startswith(f"{once.FIELD}: is missing")
        assert 'class="secret"' not in answer.text
        if form.made is not None:
            assert await form.made(session, world) == 0
        if form.id == "two-step-key":
            assert await mfa.find(session, world.admin.user.id) is None

    async def test_two_tokens_act_twice(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession, form: Form
    ) -> None:
        csrf, token = await _open(portal, world, form)
        first = _secret(form, await _send(portal, world, form, csrf, token, n=0))
        again = form_token_of(await portal.get(world.path(form.page)))  # the page opened again
        assert again != token
        second = _secret(form, await _send(portal, world, form, csrf, again, n=1))
        assert second != first
        if form.made is not None:
            assert await form.made(session, world) == 2
        if form.in_force is not None:
            assert await form.in_force(session, world, second)
            assert not await form.in_force(session, world, first)


API_TOKEN, MEMBER, ENDPOINT, _, _, _, RESET = FORMS


class TestWhatTheSecondAnswerSays:
    async def test_a_second_token_form_says_which_token_was_made_and_what_to_do(
        self, portal: httpx.AsyncClient, world: World
    ) -> None:
        csrf, token = await _open(portal, world, API_TOKEN)
        await _send(portal, world, API_TOKEN, csrf, token)
        again = await _send(portal, world, API_TOKEN, csrf, token)
        assert again.status_code == 409
        assert "<h1>Already sent</h1>" in again.text
        assert _detail(again) == (
            'This form was already sent, and the token "ci-bot" was made then. Its secret was '
            "shown once and cannot be shown again: if you did not copy it, revoke it and make "
            "another."
        )
        assert 'href="/portal/tokens" data-testid="made-link"' in again.text

    async def test_an_existing_user_added_again_is_named_without_a_secret(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession
    ) -> None:
        csrf, token = await _open(portal, world, MEMBER)
        fields = {once.FIELD: token, "email": OPS, "role": "viewer"}  # a user already
        added = await post_form(portal, "/portal/members", csrf, fields)
        assert added.status_code == 200
        assert 'data-testid="new-password"' not in added.text
        again = await post_form(portal, "/portal/members", csrf, fields)
        assert again.status_code == 409
        assert _detail(again) == (
            f'This form was already sent, and the member "{OPS}" was added then. Nothing was '
            "done a second time."
        )

    async def test_an_object_deleted_since_is_said_to_be_gone(
        self, portal: httpx.AsyncClient, world: World
    ) -> None:
        csrf, token = await _open(portal, world, ENDPOINT)
        made = await _send(portal, world, ENDPOINT, csrf, token)
        endpoint_id = re.search(
            r'/portal/webhooks/([0-9a-f-]{36})" data-testid="secret-saved"', made.text
        )
        assert endpoint_id is not None
        deleted = await post_form(portal, f"/portal/webhooks/{endpoint_id.group(1)}/delete", csrf)
        assert deleted.status_code == 303
        again = await _send(portal, world, ENDPOINT, csrf, token)
        assert again.status_code == 409
        assert "the endpoint (no longer found) was made then" in _detail(again)
        assert 'data-testid="made-link"' not in again.text

    async def test_through_htmx_the_refusal_is_a_message_in_the_page(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession
    ) -> None:
        csrf, token = await _open(portal, world, RESET)
        htmx = {"HX-Request": "true"}
        path = world.path(RESET.action)
        first = await post_form(portal, path, csrf, {once.FIELD: token}, headers=htmx)
        assert first.status_code == 200
        assert first.text.lstrip().startswith('<div id="user-page">')
        again = await post_form(portal, path, csrf, {once.FIELD: token}, headers=htmx)
        # htmx swaps only a 2xx answer: the message goes to the page's message area, and
        # the form's own hx-select (its part of the user page) does not apply to it.
        assert again.status_code == 200
        assert again.headers["hx-retarget"] == "#flash"
        assert again.headers["hx-reselect"] == "unset"
        message = html.unescape(again.text)
        assert (
            'This form was already sent, and a new password for "ann@acme.test" was made' in message
        )
        assert f'href="/console/users/{world.ann.user.id}"' in again.text
        assert 'class="secret"' not in again.text
        assert await RESET.made(session, world) == 1
        missing = await post_form(portal, path, csrf, headers=htmx)
        assert missing.headers["hx-retarget"] == "#flash"
        assert f"{once.FIELD}: is missing" in html.unescape(missing.text)
        assert await RESET.made(session, world) == 1


class TestTheClaim:
    async def test_a_refused_form_made_nothing_so_its_token_still_acts(
        self, portal: httpx.AsyncClient, world: World, session: AsyncSession
    ) -> None:
        csrf, token = await _open(portal, world, API_TOKEN)
        fields = {once.FIELD: token, "scopes": "complaints:read", "expires_in": "30d"}
        refused = await post_form(portal, "/portal/tokens", csrf, fields)  # no name
        assert refused.status_code == 400
        assert 'data-testid="error-name"' in refused.text
        fixed = await post_form(portal, "/portal/tokens", csrf, {**fields, "name": "ci-bot"})
        assert fixed.status_code == 200
        assert await API_TOKEN.made(session, world) == 1
        again = await post_form(portal, "/portal/tokens", csrf, {**fields, "name": "ci-bot"})
        assert again.status_code == 409

    async def test_redis_keeps_the_objects_id_never_its_secret_nor_an_email(
        self, portal: httpx.AsyncClient, world: World, redis: Any, settings: Settings
    ) -> None:
        csrf, token = await _open(portal, world, MEMBER)
        answer = await _send(portal, world, MEMBER, csrf, token)
        password = _secret(MEMBER, answer)
        keys = [key async for key in redis.scan_iter(match="hub:portal:once:*")]
        assert len(keys) == 1
        value = (await redis.get(keys[0])).decode()
        assert password not in value
        assert "new0@acme.test" not in value
        assert value.startswith('{"id": "')
        ttl = await redis.ttl(keys[0])
        assert 0 < ttl <= settings.portal_session_hours * 3600  # while the session lives
