"""A security sweep of every portal and console route, read from the app's route table (so
a page added later without its checks fails here): another tenant's object answers a 404
page and changes nothing; every unsafe route refuses a missing or foreign CSRF token and a
foreign Origin; each form refuses a role the API refuses, by the same scope as the API's
route for the same action; the console is for operators only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar.routes import HTTPRoute
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.auth import service as auth
from hub.auth.guards import ANY_SCOPE, SCOPE_OPT
from hub.auth.models import ROLE_SCOPES, Role, Scope
from hub.core.db import Database
from hub.portal import once
from hub.portal.routes import PREFIXES
from hub.portal.web import PAGE_OPT, Access
from hub.settings import Settings
from tests.isolation import OBJECT_FACTORIES, ObjectFactory
from tests.portal.support import issued_token, sign_in
from tests.support import PASSWORD, Member, app_client, make_member, make_tenant

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
UUIDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NOBODY = "00000000-0000-7000-8000-000000000000"
DETAIL = re.compile(r'data-testid="error-detail">([^<]*)<')
CATCH_ALL = "rest"  # the "no such page" route
# The portal's path parameters that the API names otherwise.
FACTORIES: dict[str, ObjectFactory] = {
    **OBJECT_FACTORIES,
    "complaint_pk": OBJECT_FACTORIES["complaint_id"],
}
# Console routes name tenants and users across tenants: operators see every tenant (that is
# the console), and every console route is for operators only (checked below).
OPERATOR_PARAMS = {"slug", "user_id"}

# Each unsafe portal route → the API route doing the same action (method, path), whose
# scope the page's guard must equal; or None for a portal-only route (sign-in, account).
SAME_ACTION: dict[tuple[str, str], tuple[str, str] | None] = {
    ("POST", "/portal/login"): None,
    ("POST", "/portal/login/code"): None,
    ("POST", "/portal/login/forgot"): None,
    ("POST", "/portal/login/reset"): None,
    ("POST", "/portal/logout"): None,
    ("POST", "/portal/tenants"): None,
    ("POST", "/portal/account/two-step/begin"): None,
    ("POST", "/portal/account/two-step/confirm"): None,
    ("POST", "/portal/account/two-step/disable"): None,
    ("POST", "/portal/account/password"): None,
    ("POST", "/portal/account/sessions/end-others"): None,
    ("POST", "/portal/complaints/beneficiary"): ("POST", "/api/v1/complaints/search"),
    ("POST", "/portal/complaints/{complaint_pk:uuid}/resolutions"): (
        "POST", "/api/v1/complaints/{complaint_id:uuid}/resolutions",
    ),
    ("POST", "/portal/complaints/{complaint_pk:uuid}/resolutions/{resolution_id:uuid}/settle"): (
        "POST", "/api/v1/complaints/{complaint_id:uuid}/resolutions/{resolution_id:uuid}/settle",
    ),
    ("POST", "/portal/keys"): ("POST", "/api/v1/keys"),
    ("POST", "/portal/keys/{key_id:uuid}/rotate"): ("POST", "/api/v1/keys/{key_id:uuid}/rotate"),
    ("POST", "/portal/keys/{key_id:uuid}/compromise"): (
        "POST", "/api/v1/keys/{key_id:uuid}/compromise",
    ),
    ("POST", "/portal/keys/{key_id:uuid}/deactivate"): (
        "POST", "/api/v1/keys/{key_id:uuid}/deactivate",
    ),
    ("POST", "/portal/keys/{key_id:uuid}/suspend"): ("POST", "/api/v1/keys/{key_id:uuid}/suspend"),
    ("POST", "/portal/keys/{key_id:uuid}/resume"): ("POST", "/api/v1/keys/{key_id:uuid}/resume"),
    ("POST", "/portal/keys/{key_id:uuid}/contracts/{contract:str}/restore"): (
        "POST", "/api/v1/keys/{key_id:uuid}/contracts/{contract:str}/restore",
    ),
    ("POST", "/portal/keys/{key_id:uuid}/contracts"): (
        "PUT", "/api/v1/keys/{key_id:uuid}/contracts",
    ),
    ("POST", "/portal/keys/{key_id:uuid}/designees/add"): (
        "PUT", "/api/v1/keys/{key_id:uuid}/designees",
    ),
    ("POST", "/portal/keys/{key_id:uuid}/designees/remove"): (
        "PUT", "/api/v1/keys/{key_id:uuid}/designees",
    ),
    ("POST", "/portal/syncs/schedules/{environment:str}"): (
        "PUT", "/api/v1/syncs/schedules/{environment:str}",
    ),
    ("POST", "/portal/syncs/run"): ("POST", "/api/v1/syncs/run"),
    ("POST", "/portal/alerts/{alert_id:uuid}/acknowledge"): (
        "POST", "/api/v1/alerts/{alert_id:uuid}/acknowledge",
    ),
    ("POST", "/portal/alerts/preferences"): ("PUT", "/api/v1/alerts/preferences"),
    ("POST", "/portal/webhooks"): ("POST", "/api/v1/webhooks/endpoints"),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}"): (
        "PATCH", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/enable"): (
        "PATCH", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/disable"): (
        "PATCH", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/delete"): (
        "DELETE", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/rotate"): (
        "POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/rotate-secret",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/test"): (
        "POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/test",
    ),
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/recover"): (
        "POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/recover",
    ),
    ("POST", "/portal/webhooks/messages/{message_id:uuid}/resend"): (
        "POST", "/api/v1/webhooks/messages/{message_id:uuid}/resend",
    ),
    ("POST", "/portal/members"): None,  # the API has no "add a member" yet: admins only
    ("POST", "/portal/members/{membership_id:uuid}/role"): None,  # likewise
    ("POST", "/portal/members/{membership_id:uuid}/remove"): (
        "DELETE", "/api/v1/members/{membership_id:uuid}",
    ),
    ("POST", "/portal/tokens"): ("POST", "/api/v1/tokens"),
    ("POST", "/portal/tokens/{token_id:uuid}/revoke"): (
        "DELETE", "/api/v1/tokens/{token_id:uuid}",
    ),
}  # fmt: skip
# A valid form where an empty one would be refused before the object is looked up.
FORMS: dict[str, dict[str, str]] = {
    "/portal/members/{membership_id:uuid}/role": {"role": "viewer"},
    "/portal/webhooks/{endpoint_id:uuid}": {"url": "https://receiver.example/x"},
    "/portal/webhooks/{endpoint_id:uuid}/recover": {"since": "2020-01-01T00:00"},
    "/portal/keys/{key_id:uuid}/rotate": {"key_id": "ISO-ROTATED", "secret": "rotated-secret"},
    "/portal/keys/{key_id:uuid}/compromise": {"reason": "probe"},
    "/portal/complaints/{complaint_pk:uuid}/resolutions/{resolution_id:uuid}/settle": {
        "outcome": "accepted"
    },
    "/portal/syncs/schedules/{environment:str}": {"interval_minutes": "30"},
}
# Every form whose answer shows a secret, and the name of the one-time token its page gives
# it (hub/portal/once.py): sent again, it makes nothing.
ACTS_ONCE: dict[tuple[str, str], str] = {
    ("POST", "/portal/tokens"): "tokens.create",
    ("POST", "/portal/members"): "members.add",
    ("POST", "/portal/webhooks"): "webhooks.create",
    ("POST", "/portal/webhooks/{endpoint_id:uuid}/rotate"): "webhooks.rotate",
    ("POST", "/portal/account/two-step/begin"): "two-step.begin",
    ("POST", "/console/tenants/{slug:str}/members"): "console.add-person",
    ("POST", "/console/users/{user_id:uuid}/reset-password"): "console.reset-password",
}
# What a portal-only route's guard must be.
PORTAL_ONLY_GUARD = {
    "/portal/login": Access.PUBLIC,
    "/portal/login/code": Access.PUBLIC,
    "/portal/login/forgot": Access.PUBLIC,
    "/portal/login/reset": Access.PUBLIC,
    "/portal/logout": Access.ENROLLING,
    "/portal/tenants": Access.SIGNED_IN,
    "/portal/account/two-step/begin": Access.ENROLLING,
    "/portal/account/two-step/confirm": Access.ENROLLING,
    "/portal/account/two-step/disable": Access.SIGNED_IN,
    "/portal/account/password": Access.SIGNED_IN,
    "/portal/account/sessions/end-others": Access.SIGNED_IN,
    "/portal/members": Scope.TENANT_ADMIN,
    "/portal/members/{membership_id:uuid}/role": Scope.TENANT_ADMIN,
}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    opt: dict[str, Any]

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.template)

    @property
    def guard(self) -> str:
        return str(self.opt.get(PAGE_OPT))

    @property
    def acts_once(self) -> once.OnceForm | None:
        form = self.opt.get(once.OPT)
        return form if isinstance(form, once.OnceForm) else None


def routes_of(app: Any, prefixes: tuple[str, ...] = PREFIXES) -> list[Route]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(prefixes):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(Route(method, route.path, dict(handler.opt)))
    return sorted(found, key=lambda r: (r.template, r.method))


def unsafe(routes: list[Route]) -> list[Route]:
    return [r for r in routes if r.method not in {"GET", "HEAD", "OPTIONS"}]


@asynccontextmanager
async def signed_in_client(app: Any, email: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with app_client(app) as client:
        yield client, await sign_in(client, email)


async def fill(session: AsyncSession, route: Route, owner: Member) -> str:
    path = route.template
    for param in route.params:
        ident = await FACTORIES[param](session, owner)
        path = re.sub(r"\{" + param + r"(?::\w+)?\}", str(ident), path)
    await session.commit()
    return path


def detail_of(answer: httpx.Response, path: str) -> str:
    found = DETAIL.search(answer.text)
    assert found is not None, answer.text
    return UUIDS.sub("ID", found.group(1))


async def call(client: httpx.AsyncClient, route: Route, path: str, csrf: str) -> httpx.Response:
    if route.method == "GET":
        return await client.get(path)
    form = {"_csrf": csrf, **FORMS.get(route.template, {})}
    if route.acts_once is not None:  # as its page gives it: the sweep is about the rest
        form[once.FIELD] = issued_token(client, route.acts_once.name)
    return await client.request(route.method, path, data=form)


@pytest.fixture
async def two_tenants(session: AsyncSession) -> tuple[Member, Member]:
    a = await make_member(session, await make_tenant(session, "tenant-a"), email="a@a.example")
    b = await make_member(session, await make_tenant(session, "tenant-b"), email="b@b.example")
    await session.commit()
    return a, b


@pytest.fixture
def app(settings: Settings, db: Database, redis: Any) -> Any:
    return create_app(settings, database=db, redis=redis)


class TestEveryRouteIsKnown:
    def test_every_path_parameter_has_a_factory(self, app: Any) -> None:
        params = {p for r in routes_of(app) for p in r.params} - {CATCH_ALL, *OPERATOR_PARAMS}
        unknown = params - set(FACTORIES)
        assert not unknown, f"add factories for portal parameters {sorted(unknown)}"

    def test_every_unsafe_route_names_its_api_action(self, app: Any) -> None:
        missing = [
            f"{r.method} {r.template}"
            for r in unsafe(routes_of(app, ("/portal",)))
            if (r.method, r.template) not in SAME_ACTION
        ]
        assert not missing, f"say in SAME_ACTION which API route does the same: {missing}"


class TestTenantIsolation:
    async def test_another_tenants_object_is_a_404_page_on_every_route(
        self, app: Any, session: AsyncSession, two_tenants: tuple[Member, Member]
    ) -> None:
        a, _ = two_tenants
        checked = []
        async with (
            signed_in_client(app, "b@b.example") as (intruder, b_csrf),
            signed_in_client(app, "a@a.example") as (owner, a_csrf),
        ):
            for route in routes_of(app, ("/portal",)):
                if not route.params or CATCH_ALL in route.params:
                    continue
                path = await fill(session, route, a)
                answer = await call(intruder, route, path, b_csrf)
                where = f"{route.method} {route.template}"
                assert answer.status_code == 404, f"{where}: {answer.status_code}"
                assert "text/html" in answer.headers["content-type"], where
                # Word for word what a made-up id gets: nothing tells that it exists.
                nobody = await call(intruder, route, UUIDS.sub(NOBODY, path), b_csrf)
                assert nobody.status_code == 404, where
                assert detail_of(answer, path) == detail_of(nobody, path), where
                # The owner reaches the same object, so the 404 is about tenancy.
                own = await call(owner, route, path, a_csrf)
                assert own.status_code not in (404, 500), f"{where} as owner: {own.status_code}"
                checked.append(where)
        assert len(checked) >= 20, checked

    async def test_lists_never_show_another_tenants_objects(
        self, app: Any, session: AsyncSession, two_tenants: tuple[Member, Member]
    ) -> None:
        a, _ = two_tenants
        made: list[UUID | str] = [
            await FACTORIES[p](session, a)
            for p in ("key_id", "endpoint_id", "message_id", "alert_id", "complaint_pk", "run_id",
                      "membership_id", "token_id")
        ]  # fmt: skip
        await session.commit()
        async with signed_in_client(app, "b@b.example") as (intruder, _):
            for route in routes_of(app, ("/portal",)):
                if route.params or route.method != "GET":
                    continue
                answer = await intruder.get(route.template)
                assert answer.status_code in (200, 302, 303), f"GET {route.template}"
                for ident in [*made, a.tenant.id, a.user.id, a.user.email, "tenant-a"]:
                    assert str(ident) not in answer.text, f"GET {route.template} shows {ident}"


class TestAuthorisation:
    def test_each_form_is_guarded_by_the_apis_scope_for_the_same_action(self, app: Any) -> None:
        api = {(r.method, r.template): r for r in routes_of(app, ("/api/v1",))}
        for route in routes_of(app, ("/console",)):
            if CATCH_ALL not in route.params:
                assert route.guard == Access.OPERATOR.value, f"{route.method} {route.template}"
        for route in unsafe(routes_of(app, ("/portal",))):
            same = SAME_ACTION.get((route.method, route.template))
            where = f"{route.method} {route.template}"
            if same is None:
                assert route.guard == PORTAL_ONLY_GUARD[route.template].value, where
                continue
            assert same in api, f"{where}: no API route {same}"
            wanted = str(api[same].opt[SCOPE_OPT])
            expected = Access.MEMBER.value if wanted == ANY_SCOPE else wanted
            assert route.guard == expected, f"{where}: {route.guard}, the API {wanted}"

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.CASEWORKER])
    async def test_each_form_refuses_a_role_without_its_scope(
        self, app: Any, session: AsyncSession, two_tenants: tuple[Member, Member], role: Role
    ) -> None:
        a, _ = two_tenants
        await make_member(session, a.tenant, email="weak@a.example", role=role)
        await session.commit()
        refused = 0
        async with signed_in_client(app, "weak@a.example") as (weak, csrf):
            for route in routes_of(app, ("/portal",)):
                if route.guard not in Scope._value2member_map_ or CATCH_ALL in route.params:
                    continue
                if Scope(route.guard) in ROLE_SCOPES[role]:
                    continue
                path = await fill(session, route, a)
                answer = await call(weak, route, path, csrf)
                assert answer.status_code == 403, f"{role} {route.method} {route.template}"
                assert f"Your role ({role.value}) may not" in answer.text
                refused += 1
        assert refused >= 5

    async def test_the_console_is_for_operators_only(
        self, app: Any, session: AsyncSession, two_tenants: tuple[Member, Member]
    ) -> None:
        async with signed_in_client(app, "a@a.example") as (admin, csrf):
            for route in routes_of(app, ("/console",)):
                if CATCH_ALL in route.params:
                    continue
                path = route.template.replace("{slug:str}", "tenant-a")
                path = path.replace("{user_id:uuid}", str(two_tenants[0].user.id))
                answer = await call(admin, route, path, csrf)
                assert answer.status_code == 403, f"{route.method} {route.template}"
                assert "a@a.example" not in answer.text.split("</header>")[-1]


class TestForgedForms:
    """Every unsafe route, signed in, with what a page on another site could send."""

    async def test_every_unsafe_route_refuses_a_missing_or_foreign_token(
        self, app: Any, two_tenants: tuple[Member, Member]
    ) -> None:
        async with signed_in_client(app, "a@a.example") as (client, csrf):
            for route in unsafe(routes_of(app)):
                if route.guard == Access.PUBLIC.value:
                    continue  # the sign-in forms: origin checked below, and grant nothing
                path = PARAM.sub(NOBODY, route.template)
                for form in ({}, {"_csrf": "0" * 64}, {"_csrf": csrf[:-1]}):
                    answer = await client.request(route.method, path, data=form)
                    where = f"{route.method} {route.template} with {form}"
                    assert answer.status_code == 403, f"{where}: {answer.status_code}"
                    assert "did not come from the portal" in answer.text, where
                # The token in a header of another session's is refused too.
                header = {"X-CSRF-Token": "f" * 64}
                answer = await client.request(route.method, path, headers=header)
                assert answer.status_code == 403, f"{route.method} {route.template} (header)"

    async def test_every_unsafe_route_refuses_a_foreign_origin(
        self, app: Any, two_tenants: tuple[Member, Member]
    ) -> None:
        async with signed_in_client(app, "a@a.example") as (client, csrf):
            for route in unsafe(routes_of(app)):
                path = PARAM.sub(NOBODY, route.template)
                for origin in (
                    {"Origin": "https://evil.example"},
                    {"Origin": "null"},
                    {"Origin": "http://hub.test.evil.example"},
                    {"Referer": "https://evil.example/portal/"},
                ):
                    answer = await client.request(
                        route.method, path, data={"_csrf": csrf}, headers=origin
                    )
                    where = f"{route.method} {route.template} from {origin}"
                    assert answer.status_code == 403, f"{where}: {answer.status_code}"
                    assert "came from another site" in answer.text, where


class TestFormsThatActOnce:
    def test_every_form_that_shows_a_secret_acts_once(self, app: Any) -> None:
        declared = {(r.method, r.template): r.acts_once.name for r in routes_of(app) if r.acts_once}
        assert declared == ACTS_ONCE

    async def test_each_refuses_a_missing_or_foreign_form_token_naming_the_field(
        self, app: Any, session: AsyncSession, two_tenants: tuple[Member, Member]
    ) -> None:
        await auth.create_user(
            session, email="ops@vendor.test", password=PASSWORD, is_operator=True
        )
        await session.commit()
        async with (
            signed_in_client(app, "a@a.example") as (member, member_csrf),
            signed_in_client(app, "ops@vendor.test") as (operator, operator_csrf),
        ):
            for route in routes_of(app):
                if route.acts_once is None:
                    continue
                console = route.template.startswith("/console")
                client, csrf = (operator, operator_csrf) if console else (member, member_csrf)
                other = member if console else operator  # another session's token
                path = PARAM.sub(NOBODY, route.template)
                for token in (
                    None,
                    "",
                    "not-a-token",
                    issued_token(client, "another.form"),
                    issued_token(other, route.acts_once.name),
                ):
                    form = {"_csrf": csrf} if token is None else {"_csrf": csrf, once.FIELD: token}
                    answer = await client.request(route.method, path, data=form)
                    where = f"{route.method} {route.template} with {token!r}"
                    assert answer.status_code == 400, f"{where}: {answer.status_code}"
                    detail = DETAIL.search(answer.text)
                    assert detail is not None, where
                    assert detail.group(1).startswith(f"{once.FIELD}: is "), where
                    assert "Nothing was done" in detail.group(1), where
