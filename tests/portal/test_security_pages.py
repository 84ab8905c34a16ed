"""What reaches the portal's pages: text people and systems typed (a webhook description, a
key label, a member's name, a complaint's field, an alert, an audit detail) is escaped on
every page that shows it; no template marks data safe; no page shows a secret after its one
display, nor PHI where the API would not show it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Role
from hub.portal.templates import TEMPLATE_DIRECTORY
from tests.integration.complaints.support import make_complaint
from tests.integration.webhooks.support import make_endpoint
from tests.isolation import OBJECT_FACTORIES
from tests.portal.support import post_form, post_once, sign_in
from tests.support import make_member, make_tenant

PAYLOAD = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>"
RAW = ("<script>alert(1)", "<img src=x", "alert(2)>")


def assert_escaped(answer: httpx.Response, where: str) -> None:
    assert answer.status_code == 200, f"{where}: {answer.status_code}"
    for raw in RAW:
        assert raw not in answer.text, f"{where} shows {raw!r} unescaped"


class TestEscaping:
    def test_no_template_marks_data_safe(self) -> None:
        marked = [
            f"{path.relative_to(TEMPLATE_DIRECTORY)}: {line.strip()}"
            for path in Path(TEMPLATE_DIRECTORY).rglob("*.html")
            for line in path.read_text().splitlines()
            if re.search(r"\|\s*safe\b|autoescape\s+false|Markup\(", line)
        ]
        assert not marked, marked

    async def test_typed_text_is_escaped_wherever_it_is_shown(
        self, portal: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme", "Acme Health")
        admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        named = await make_member(session, tenant, email="named@acme.test", role=Role.VIEWER)
        named.user.display_name = PAYLOAD
        endpoint, secret = await make_endpoint(
            session, admin, url="https://receiver.example/hook", description=PAYLOAD
        )
        key_id = await OBJECT_FACTORIES["key_id"](session, admin)
        from hub.keys.models import ApiKey

        key = await session.get(ApiKey, key_id)
        assert key is not None
        key.label = PAYLOAD
        complaint = await make_complaint(session, admin.tenant_id, bene=PAYLOAD[:40])
        await OBJECT_FACTORIES["alert_id"](session, admin)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        # An audit detail with the payload: a refused token named by it.
        await post_once(portal, "/portal/tokens", csrf, {"name": PAYLOAD, "scopes": "nope"})
        await post_once(portal, "/portal/tokens", csrf, {"name": PAYLOAD})
        for path in (
            "/portal/",
            "/portal/webhooks",
            f"/portal/webhooks/{endpoint.id}",
            "/portal/keys",
            f"/portal/keys/{key_id}",
            "/portal/members",
            "/portal/tokens",
            "/portal/complaints",
            f"/portal/complaints/{complaint.id}",
            "/portal/alerts",
            "/portal/syncs",
            "/portal/audit",
        ):
            answer = await portal.get(path)
            assert_escaped(answer, path)
            assert secret not in answer.text, f"{path} shows the signing secret"
        shown = "&lt;script&gt;alert(1)&lt;/script&gt;"
        for path in ("/portal/webhooks", "/portal/keys", "/portal/members"):
            assert shown in (await portal.get(path)).text, f"{path} does not show the text"
        await post_form(portal, "/portal/logout", csrf)
        assert_escaped(await portal.get("/portal/login", params={"next": PAYLOAD}), "sign-in")

    async def test_the_csrf_header_attribute_holds_only_the_token(
        self, portal: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        page = (await portal.get("/portal/")).text
        assert f"""hx-headers='{{"X-CSRF-Token": "{csrf}"}}'""" in page
        assert re.fullmatch(r"[0-9a-f]{64}", csrf)


class TestSecretsAndPhi:
    async def test_the_complaints_list_and_audit_show_no_phi(
        self, portal: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        member = await make_member(session, tenant, email="case@acme.test", role=Role.CASEWORKER)
        complaint = await make_complaint(session, member.tenant_id, bene="9ZZ9-ZZ9-ZZ99")
        await session.commit()
        await sign_in(portal, "admin@acme.test")
        detail = await portal.get(f"/portal/complaints/{complaint.id}")
        assert "9ZZ9-ZZ9-ZZ99" in detail.text  # the detail shows it (and audits the read)
        for path in ("/portal/complaints", "/portal/audit", "/portal/", "/portal/syncs"):
            answer = await portal.get(path)
            assert answer.status_code == 200, path
            assert "9ZZ9-ZZ9-ZZ99" not in answer.text, f"{path} shows a beneficiary id"
