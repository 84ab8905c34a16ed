"""The webhooks pages: endpoints and their signing secret shown once, edit, enable and
disable, rotate, test, messages and attempts, resend and recover; admins only; other
tenants' endpoints as 404."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.settings import Settings
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage
from tests.portal.support import (
    LOOPBACK_RECEIVERS,
    csrf_of,
    form_token_of,
    post_form,
    post_once,
    sign_in,
)
from tests.support import make_member, make_tenant

URL = "http://127.0.0.1:9/hook"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    # Loopback receivers allowed, as the webhook integration tests allow them.
    return settings.model_copy(update=LOOPBACK_RECEIVERS)


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    await make_member(session, tenant, email="cw@acme.test", role=Role.CASEWORKER)
    await session.commit()
    return tenant


async def create(client: httpx.AsyncClient, csrf: str, **fields: str) -> tuple[UUID, str]:
    form = {"url": URL, "event_types": "complaint.*, key.*", "description": "CRM", **fields}
    answer = await post_once(client, "/portal/webhooks", csrf, form)
    assert answer.status_code == 200, answer.text
    found = SECRET.search(answer.text)
    assert found is not None
    endpoint_id = re.search(
        r'/portal/webhooks/([0-9a-f-]{36})" data-testid="secret-saved"', answer.text
    )
    assert endpoint_id is not None
    return UUID(endpoint_id.group(1)), found.group(0)


class TestEndpoints:
    async def test_create_shows_the_secret_once(self, portal: httpx.AsyncClient, acme: Any) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, secret = await create(portal, csrf)
        detail = await portal.get(f"/portal/webhooks/{endpoint_id}")
        assert detail.status_code == 200
        assert URL in detail.text
        assert "complaint.*, key.*" in detail.text
        assert "whsec_" not in detail.text
        listing = await portal.get("/portal/webhooks")
        assert URL in listing.text
        assert "whsec_" not in listing.text
        assert secret not in listing.text

    async def test_validation_names_the_field_and_keeps_the_input(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        bad_url = await post_once(
            portal, "/portal/webhooks", csrf,
            {"url": "ftp://nowhere.test/x", "event_types": "*", "description": "Kept text"},
        )  # fmt: skip
        assert bad_url.status_code == 400
        assert 'data-testid="error-url">url:' in bad_url.text
        assert 'value="Kept text"' in bad_url.text
        bad_event = await post_once(
            portal, "/portal/webhooks", csrf, {"url": URL, "event_types": "complaint.*, nope.x"}
        )
        assert bad_event.status_code == 400
        assert "event_types[1]: nope.x is no event type" in bad_event.text
        bad_number = await post_once(
            portal, "/portal/webhooks", csrf,
            {"url": URL, "event_types": "*", "max_concurrency": "500"},
        )  # fmt: skip
        assert 'data-testid="error-max_concurrency">max_concurrency:' in bad_number.text
        assert (await session.scalars(select(WebhookEndpoint))).all() == []

    async def test_edit_saves_and_include_phi_is_audited(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        answer = await post_form(
            portal, f"/portal/webhooks/{endpoint_id}", csrf,
            {"url": URL, "event_types": "*", "contracts": "h1234 H5678", "include_phi": "on",
             "description": "CRM two", "max_concurrency": "4", "rate_limit_per_second": "10"},
        )  # fmt: skip
        assert answer.status_code == 303
        detail = await portal.get(answer.headers["location"])
        assert "The endpoint is saved." in detail.text
        assert "H1234, H5678" in detail.text
        assert 'data-testid="include-phi">included' in detail.text
        actions = await session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == str(endpoint_id))
        )
        assert "webhook.include_phi_enabled" in list(actions)

    async def test_an_edit_error_keeps_what_was_typed(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        answer = await post_form(
            portal, f"/portal/webhooks/{endpoint_id}", csrf,
            {"url": URL, "event_types": "*", "contracts": "Z1234", "description": "typed"},
        )  # fmt: skip
        assert answer.status_code == 400
        assert "contracts[0]: must be a contract number like H1234" in answer.text
        assert 'value="typed"' in answer.text

    async def test_disable_and_enable(self, portal: httpx.AsyncClient, acme: Any) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        off = await post_form(portal, f"/portal/webhooks/{endpoint_id}/disable", csrf)
        detail = await portal.get(off.headers["location"])
        assert 'data-testid="endpoint-state">disabled' in detail.text
        assert "disabled by a tenant member" in detail.text
        on = await post_form(portal, f"/portal/webhooks/{endpoint_id}/enable", csrf)
        detail = await portal.get(on.headers["location"])
        assert 'data-testid="endpoint-state">enabled' in detail.text

    async def test_rotate_shows_the_new_secret_once_and_the_grace(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, first = await create(portal, csrf)
        answer = await post_once(portal, f"/portal/webhooks/{endpoint_id}/rotate", csrf)
        assert answer.status_code == 200
        found = SECRET.search(answer.text)
        assert found is not None
        assert found.group(0) != first
        assert "The previous secret stays valid" in answer.text
        detail = await portal.get(f"/portal/webhooks/{endpoint_id}")
        assert "whsec_" not in detail.text
        assert "valid until" in detail.text

    async def test_delete(self, portal: httpx.AsyncClient, acme: Any) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        answer = await post_form(
            portal, f"/portal/webhooks/{endpoint_id}/delete", csrf, headers={"HX-Request": "true"}
        )
        assert answer.headers["hx-redirect"] == "/portal/webhooks?done=deleted"
        listing = await portal.get("/portal/webhooks?done=deleted")
        assert "The endpoint is deleted" in listing.text
        assert URL not in listing.text
        assert (await portal.get(f"/portal/webhooks/{endpoint_id}")).status_code == 404


class TestMessages:
    async def test_a_test_event_is_listed_with_its_attempts_and_resent(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        sent = await post_form(portal, f"/portal/webhooks/{endpoint_id}/test", csrf)
        detail = await portal.get(sent.headers["location"])
        assert "A webhook.test event is on its way" in detail.text
        assert "webhook.test" in detail.text
        message = await session.scalar(select(WebhookMessage))
        assert message is not None
        pending = await post_form(portal, f"/portal/webhooks/messages/{message.id}/resend", csrf)
        assert pending.status_code == 409
        message.status, message.attempts, message.last_error = MessageStatus.FAILED, 1, "HTTP 500"
        session.add(
            WebhookAttempt(
                tenant_id=acme.id, message_id=message.id, endpoint_id=endpoint_id, number=1,
                status_code=500, duration_ms=42, response_body="x" * 300 + "TAIL",
                error_class="HttpStatus", is_success=False,
            )
        )  # fmt: skip
        await session.commit()
        failed = await portal.get(f"/portal/webhooks/{endpoint_id}", params={"status": "failed"})
        assert "webhook.test" in failed.text
        page = await portal.get(f"/portal/webhooks/messages/{message.id}")
        assert "42 ms" in page.text
        assert "HttpStatus" in page.text
        assert "x" * 200 in page.text
        assert "TAIL" not in page.text
        again = await post_form(portal, f"/portal/webhooks/messages/{message.id}/resend", csrf)
        shown = await portal.get(again.headers["location"])
        assert "being sent again" in shown.text
        assert 'data-testid="message-status">pending' in shown.text

    async def test_recover_sends_failed_ones_again(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        endpoint_id, _ = await create(portal, csrf)
        await post_form(portal, f"/portal/webhooks/{endpoint_id}/test", csrf)
        message = await session.scalar(select(WebhookMessage))
        assert message is not None
        message.status = MessageStatus.FAILED
        await session.commit()
        missing = await post_form(portal, f"/portal/webhooks/{endpoint_id}/recover", csrf)
        assert missing.status_code == 400
        assert 'data-testid="error-since">since:' in missing.text
        answer = await post_form(
            portal, f"/portal/webhooks/{endpoint_id}/recover", csrf, {"since": "2026-01-01T00:00"}
        )
        assert answer.headers["location"].endswith("?done=recovered&n=1")
        shown = await portal.get(answer.headers["location"])
        assert "1 failed message(s) are being sent again." in shown.text


class TestWhoMay:
    async def test_a_caseworker_gets_403_and_no_menu_entry(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "cw@acme.test")
        assert (await portal.get("/portal/webhooks")).status_code == 403
        overview = await portal.get("/portal/")
        assert 'href="/portal/webhooks"' not in overview.text.split("<main")[0]

    async def test_another_tenants_endpoint_is_a_404(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        other = await make_tenant(session, "other")
        await make_member(session, other, email="admin@other.test", role=Role.ADMIN)
        await session.commit()
        csrf = await sign_in(portal, "admin@other.test")
        endpoint_id, _ = await create(portal, csrf)
        await post_form(portal, "/portal/logout", csrf)
        csrf = await sign_in(portal, "admin@acme.test")
        assert (await portal.get(f"/portal/webhooks/{endpoint_id}")).status_code == 404
        # The rotate form's token, as the page of one of acme's own endpoints gives it.
        own_id, _ = await create(portal, csrf)
        token = form_token_of(await portal.get(f"/portal/webhooks/{own_id}"))
        for action in ("disable", "delete", "rotate", "test"):
            answer = await post_form(
                portal, f"/portal/webhooks/{endpoint_id}/{action}", csrf, {"_form_token": token}
            )
            assert answer.status_code == 404, action
            assert "whsec_" not in answer.text
        # The refusal claimed nothing: the token still rotates acme's own endpoint.
        own = await post_form(
            portal, f"/portal/webhooks/{own_id}/rotate", csrf, {"_form_token": token}
        )
        assert own.status_code == 200
        assert SECRET.search(own.text) is not None

    async def test_a_form_without_the_csrf_token_is_refused(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.post("/portal/webhooks", data={"url": URL, "event_types": "*"})
        assert answer.status_code == 403
        assert (await session.scalars(select(WebhookEndpoint))).all() == []
        page = await portal.get("/portal/webhooks/new")
        assert csrf_of(page)
