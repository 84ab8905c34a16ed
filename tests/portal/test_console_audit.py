"""The console's platform audit log: the entries that belong to no tenant (sign-ins and their
refusals, users, password resets, two-step, master keys), newest first, filtered and paged,
with presets for what support is asked most, and a CSV export that is itself on record;
operators only, no tenant's entries, no secret."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository as audit_repository
from hub.audit import service as audit
from hub.audit.models import PLATFORM_CHAIN, ActorKind, AuditEntry, AuditOutcome
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import Role, User
from tests.portal.support import sign_in
from tests.support import PASSWORD, make_member, make_tenant

OPS = "ops@vendor.test"
WRONG = "Not-the-password-7731"  # typed at a refused sign-in: never shown anywhere
HOSTILE = '"><script>alert(1)</script>@evil.test'
SEQS = re.compile(r'data-testid="entry-(\d+)"')


@pytest.fixture
async def operator(session: AsyncSession) -> User:
    user = await auth.create_user(session, email=OPS, password=PASSWORD, is_operator=True)
    await session.commit()
    return user


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    """A tenant with an admin, and an entry on the tenant's own chain the console must not show."""
    tenant = await make_tenant(session, "acme", "Acme Health")
    await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    await audit.record(
        session, actor=Actor.system("tests"), action="tests.tenant_only", tenant_id=tenant.id,
        target_type="thing", target_id="acme-thing", details={"marker": "acme-only"},
    )  # fmt: skip
    await session.commit()
    return tenant


async def refuse_sign_in(portal: httpx.AsyncClient, email: str) -> None:
    answer = await portal.post("/portal/login", data={"email": email, "password": WRONG})
    assert answer.status_code in (400, 401, 403, 429), answer.status_code


async def platform(session: AsyncSession, action: str) -> list[AuditEntry]:
    statement = select(AuditEntry).where(
        AuditEntry.chain_id == PLATFORM_CHAIN, AuditEntry.action == action
    )
    return list(await session.scalars(statement.order_by(AuditEntry.seq)))


def seqs(page: httpx.Response) -> list[int]:
    return [int(seq) for seq in SEQS.findall(page.text)]


class TestPlatformAuditLog:
    async def test_shows_the_platform_chain_newest_first_and_no_tenants_entries(
        self, portal: httpx.AsyncClient, operator: User, acme: Any, session: AsyncSession
    ) -> None:
        await refuse_sign_in(portal, "ann@acme.test")
        await sign_in(portal, OPS)
        answer = await portal.get("/console/audit")
        assert answer.status_code == 200
        text = answer.text
        shown = seqs(answer)
        assert shown == sorted(shown, reverse=True)
        everything = await audit_repository.list_platform_newest(
            session, where=audit_repository.EntryFilter(), limit=1000
        )
        assert shown == [entry.seq for entry in everything]
        # user.created (the operator), the refusal, then the operator's own sign-in
        assert text.index("user.sign_in") < text.index("user.created")
        assert "tests.tenant_only" not in text
        assert "acme-only" not in text
        assert "acme-thing" not in text
        assert "tenant.created" not in text  # on Acme's chain, not the platform's

    async def test_a_refused_sign_in_shows_the_email_address_and_never_the_password(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        await refuse_sign_in(portal, "Ann@Acme.test")
        [refusal] = [e for e in await platform(session, "user.sign_in") if e.outcome == "denied"]
        assert refusal.ip
        await sign_in(portal, OPS)
        text = (await portal.get("/console/audit")).text
        row = text.split(f'data-testid="entry-{refusal.seq}">')[1].split("</tr>")[0]
        assert 'portal <span class="muted">system</span>' in row
        assert "&#34;email&#34;: &#34;ann@acme.test&#34;" in row
        assert "&#34;locked&#34;: false" in row
        assert '<span class="pill bad">denied</span>' in row
        assert f"<td>{refusal.ip}</td>" in row
        assert WRONG not in text
        assert WRONG.lower() not in text
        assert PASSWORD not in text

    async def test_a_refused_sign_in_targets_the_account_of_its_email_when_there_is_one(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        """An operator asked "who tried to get into Ann's account?" finds every attempt by
        the account's id (from the user's page), whatever case the email was typed in; an
        email with no account has no target. The actor stays the portal: whoever typed the
        email is not known."""
        ann = await auth.create_user(session, email="ann@acme.test", password=PASSWORD)
        await session.commit()
        await refuse_sign_in(portal, " Ann@ACME.test")
        await refuse_sign_in(portal, "nobody@acme.test")
        refusals = [e for e in await platform(session, "user.sign_in") if e.outcome == "denied"]
        by_email = {e.details["email"]: e for e in refusals}
        assert by_email["ann@acme.test"].target_id == str(ann.id)
        assert by_email["nobody@acme.test"].target_id is None
        assert {e.actor_label for e in refusals} == {"portal"}
        await sign_in(portal, OPS)
        page = (await portal.get(f"/console/users/{ann.id}")).text
        link = page.split('data-testid="refused-sign-ins" href="')[1].split('"')[0]
        answer = await portal.get(link.replace("&amp;", "&"))
        assert answer.status_code == 200, answer.text
        assert set(seqs(answer)) == {by_email["ann@acme.test"].seq}

    async def test_a_hostile_email_is_escaped(
        self, portal: httpx.AsyncClient, operator: User
    ) -> None:
        await refuse_sign_in(portal, HOSTILE)
        await sign_in(portal, OPS)
        text = (await portal.get("/console/audit")).text
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;@evil.test" in text
        # and as a filter value, typed back into the form
        typed = await portal.get("/console/audit", params={"actor": HOSTILE})
        assert "<script>alert(1)</script>" not in typed.text
        assert 'value="&#34;&gt;&lt;script&gt;' in typed.text

    async def test_filters_by_action_actor_target_and_outcome(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        ann = await auth.create_user(session, email="ann@acme.test", password=PASSWORD)
        await auth.reset_password(session, ann, actor=Actor.operator(operator))
        await session.commit()
        await refuse_sign_in(portal, "bob@beta.test")
        await sign_in(portal, OPS)
        [reset] = await platform(session, "user.password_reset")
        [created_ann] = [e for e in await platform(session, "user.created") if e.target_id
                         == str(ann.id)]  # fmt: skip
        [refusal] = [e for e in await platform(session, "user.sign_in") if e.outcome == "denied"]
        [signed_in] = [e for e in await platform(session, "user.sign_in") if e.outcome == "success"]

        async def shown(**params: str) -> set[int]:
            answer = await portal.get("/console/audit", params=params)
            assert answer.status_code == 200, answer.text
            return set(seqs(answer))

        assert await shown(action="user.password_") == {reset.seq}
        assert await shown(action="user.sign_in", outcome="denied") == {refusal.seq}
        assert await shown(action="user.sign_in", outcome="success") == {signed_in.seq}
        assert await shown(target=str(ann.id)) == {reset.seq, created_ann.seq}
        by_operator = await shown(actor=OPS)
        assert {reset.seq, signed_in.seq} <= by_operator
        assert refusal.seq not in by_operator
        assert await shown(actor=str(operator.id)) == by_operator
        assert await shown(action="user.%") == set()  # a LIKE wildcard is a character

    async def test_filters_by_days(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        await sign_in(portal, OPS)
        today = datetime.now(UTC).date()
        day = timedelta(days=1)
        within = await portal.get(
            "/console/audit", params={"since": str(today - day), "until": str(today + day)}
        )
        assert len(seqs(within)) == 2  # the operator created, and signed in
        later = await portal.get("/console/audit", params={"since": str(today + day)})
        assert seqs(later) == []
        assert 'data-testid="audit-empty">No entries match these filters' in later.text
        earlier = await portal.get("/console/audit", params={"until": str(today - day)})
        assert seqs(earlier) == []

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"since": "yesterday"}, "since"),
            ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
            ({"outcome": "maybe"}, "outcome"),
            ({"action": "x" * 321}, "action"),
            ({"before": "0"}, "before"),
        ],
    )
    async def test_a_bad_filter_is_named(
        self, portal: httpx.AsyncClient, operator: User, params: dict[str, str], field: str
    ) -> None:
        await sign_in(portal, OPS)
        answer = await portal.get("/console/audit", params=params)
        assert answer.status_code == 400
        assert f'data-testid="error-{field}"' in answer.text
        assert seqs(answer) == []

    async def test_the_presets_link_refusals_resets_deactivations_and_two_step(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        ann = await auth.create_user(session, email="ann@acme.test", password=PASSWORD)
        await auth.deactivate_user(session, ann, actor=Actor.operator(operator))
        await session.commit()
        await refuse_sign_in(portal, "ann@acme.test")
        await sign_in(portal, OPS)
        presets = (await portal.get("/console/audit")).text.split('data-testid="audit-presets"')[1]
        hrefs = dict(
            (label, href.replace("&amp;", "&"))
            for href, label in re.findall(
                r'<a href="([^"]+)">([^<]+)</a>', presets.split("</p>")[0]
            )
        )
        assert hrefs == {
            "Refused sign-ins": "/console/audit?action=user.sign_in&outcome=denied",
            "Password resets": "/console/audit?action=user.password_reset",
            "Deactivations": "/console/audit?action=user.deactivated",
            "Two-step changes": "/console/audit?action=user.two_step_",
        }
        refused = await portal.get(hrefs["Refused sign-ins"])
        [refusal] = [e for e in await platform(session, "user.sign_in") if e.outcome == "denied"]
        assert seqs(refused) == [refusal.seq]
        [deactivation] = await platform(session, "user.deactivated")
        assert seqs(await portal.get(hrefs["Deactivations"])) == [deactivation.seq]

    async def test_pages_older_entries(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        for n in range(53):
            await audit.record(
                session, actor=Actor.system("tests"), action="tests.paged", tenant_id=None,
                target_type="many", target_id=f"many-{n:02d}",
            )  # fmt: skip
        await session.commit()
        paged = await platform(session, "tests.paged")
        await sign_in(portal, OPS)
        first = await portal.get("/console/audit", params={"action": "tests.paged"})
        assert seqs(first) == [e.seq for e in reversed(paged)][:50]
        older = first.text.split('data-testid="older" href="')[1].split('"')[0]
        assert older == f"/console/audit?action=tests.paged&amp;before={paged[3].seq}"
        rest = await portal.get(older.replace("&amp;", "&"))
        assert seqs(rest) == [paged[2].seq, paged[1].seq, paged[0].seq]
        assert 'data-testid="older"' not in rest.text
        assert 'href="/console/audit?action=tests.paged">Newest</a>' in rest.text


class TestWhoMaySeeIt:
    async def test_a_tenant_admin_gets_403_and_no_menu_entry(
        self, portal: httpx.AsyncClient, operator: User, acme: Any
    ) -> None:
        await refuse_sign_in(portal, "someone@acme.test")
        await sign_in(portal, "admin@acme.test")
        for path in ("/console/audit", "/console/audit.csv"):
            answer = await portal.get(path)
            assert answer.status_code == 403, path
            assert "someone@acme.test" not in answer.text
        assert 'href="/console/audit"' not in (await portal.get("/portal/")).text

    async def test_an_operator_has_it_in_the_menu_and_on_the_console(
        self, portal: httpx.AsyncClient, operator: User
    ) -> None:
        await sign_in(portal, OPS)
        home = (await portal.get("/console/")).text
        nav = home.split("</nav>")[0]
        assert '<a href="/console/audit"' in nav
        assert 'data-testid="audit-link"' in home


class TestExport:
    async def test_the_csv_is_the_filtered_platform_chain_and_is_on_record(
        self, portal: httpx.AsyncClient, operator: User, acme: Any, session: AsyncSession
    ) -> None:
        await refuse_sign_in(portal, "ann@acme.test")
        await sign_in(portal, OPS)
        page = await portal.get("/console/audit", params={"action": "user.sign_in",
                                                          "outcome": "denied"})  # fmt: skip
        href = page.text.split('data-testid="download-csv"')[0].rsplit('href="', 1)[1]
        href = href.split('"')[0].replace("&amp;", "&")
        assert href == "/console/audit.csv?action=user.sign_in&outcome=denied"
        answer = await portal.get(href)
        assert answer.status_code == 200
        assert answer.headers["content-disposition"].startswith(
            'attachment; filename="audit-platform-'
        )
        rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert [(r["action"], r["outcome"], r["actor_label"]) for r in rows] == [
            ("user.sign_in", "denied", "portal")
        ]
        assert '"email": "ann@acme.test"' in rows[0]["details"]
        assert WRONG not in answer.text
        everything = (await portal.get("/console/audit.csv")).text
        assert "tests.tenant_only" not in everything
        assert "acme-only" not in everything
        [first, second] = await platform(session, audit_repository.EXPORTED)
        assert first.actor_kind == ActorKind.OPERATOR
        assert first.actor_label == OPS
        assert first.tenant_id is None
        assert first.outcome == AuditOutcome.SUCCESS
        assert first.details["filters"] == {"action": "user.sign_in", "outcome": "denied"}
        assert first.details["rows"] == 1
        assert second.details["filters"] == {}

    async def test_a_bad_filter_refuses_the_download(
        self, portal: httpx.AsyncClient, operator: User, session: AsyncSession
    ) -> None:
        await sign_in(portal, OPS)
        assert (await portal.get("/console/audit.csv?outcome=maybe")).status_code == 400
        assert (await portal.get("/console/audit.csv?since=someday")).status_code == 400
        assert await platform(session, audit_repository.EXPORTED) == []
