"""Every /api/v1 route, called by tenant B on tenant A's objects, answers 404 (or 403 for a
missing scope) and never shows A's data. Routes are read from the app's route table, so a
route added later without tenant scoping fails here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar.routes import HTTPRoute
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import API_PREFIX, create_app
from hub.auth.models import Role
from hub.core.db import Database
from hub.settings import Settings
from tests.isolation import OBJECT_FACTORIES, OPEN_ROUTES, REQUEST_BODIES
from tests.support import Member, app_client, make_member, make_tenant

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.template)


def api_endpoints(app: Any) -> list[Endpoint]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(API_PREFIX):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(Endpoint(method, route.path))
    return sorted(found, key=lambda e: (e.template, e.method))


@pytest.fixture
async def two_tenants(session: AsyncSession) -> tuple[Member, Member]:
    a = await make_member(session, await make_tenant(session, "tenant-a"), email="a@a.example")
    b = await make_member(session, await make_tenant(session, "tenant-b"), email="b@b.example")
    await session.commit()
    return a, b


async def _call(
    client: httpx.AsyncClient, endpoint: Endpoint, path: str, member: Member
) -> httpx.Response:
    body = REQUEST_BODIES.get((endpoint.method, endpoint.template))
    return await client.request(endpoint.method, path, headers=member.headers, json=body)


class TestTenantIsolation:
    async def test_every_route_declares_its_parameters_and_bodies(
        self, settings: Settings, db: Database, redis: Any
    ) -> None:
        endpoints = api_endpoints(create_app(settings, database=db, redis=redis))
        assert endpoints, "no /api/v1 routes found"
        unknown = {p for e in endpoints for p in e.params} - set(OBJECT_FACTORIES)
        assert not unknown, (
            f"add factories for path parameters {sorted(unknown)} to tests/isolation.py"
        )
        no_body = [
            f"{e.method} {e.template}"
            for e in endpoints
            if e.method in {"POST", "PUT", "PATCH"} and (e.method, e.template) not in REQUEST_BODIES
        ]
        assert not no_body, f"add example bodies for {no_body} to tests/isolation.py"

    async def test_other_tenant_gets_404_on_every_object_route(
        self,
        settings: Settings,
        db: Database,
        redis: Any,
        session: AsyncSession,
        two_tenants: tuple[Member, Member],
    ) -> None:
        a, b = two_tenants
        app = create_app(settings, database=db, redis=redis)
        checked = 0
        async with app_client(app) as client:
            for endpoint in api_endpoints(app):
                if not endpoint.params or (endpoint.method, endpoint.template) in OPEN_ROUTES:
                    continue
                path = endpoint.template
                for param in endpoint.params:
                    ident = await OBJECT_FACTORIES[param](session, a)
                    path = re.sub(r"\{" + param + r"(?::\w+)?\}", str(ident), path)
                await session.commit()
                response = await _call(client, endpoint, path, b)
                assert response.status_code == 404, (
                    f"{endpoint.method} {endpoint.template}: {response.status_code} {response.text}"
                )
                # The owner reaches the same object (whatever the route then decides), so the
                # 404 is about tenancy, not the path.
                own = await _call(client, endpoint, path, a)
                assert own.status_code not in (404, 500), (
                    f"{endpoint.method} {endpoint.template} as owner: {own.status_code} {own.text}"
                )
                checked += 1
        assert checked >= 1

    async def test_collections_never_list_another_tenants_objects(
        self,
        settings: Settings,
        db: Database,
        redis: Any,
        session: AsyncSession,
        two_tenants: tuple[Member, Member],
    ) -> None:
        a, b = two_tenants
        made: list[UUID] = [await factory(session, a) for factory in OBJECT_FACTORIES.values()]
        await session.commit()
        app = create_app(settings, database=db, redis=redis)
        async with app_client(app) as client:
            for endpoint in api_endpoints(app):
                if endpoint.params or endpoint.method != "GET":
                    continue
                response = await _call(client, endpoint, endpoint.template, b)
                assert response.status_code in (200, 403), (
                    f"GET {endpoint.template}: {response.status_code}"
                )
                for ident in [*made, a.tenant.id, a.user.id]:
                    assert str(ident) not in response.text, (
                        f"GET {endpoint.template} shows tenant A's {ident}"
                    )

    async def test_token_without_the_scope_gets_403_not_the_object(
        self,
        settings: Settings,
        db: Database,
        redis: Any,
        session: AsyncSession,
        two_tenants: tuple[Member, Member],
    ) -> None:
        a, _ = two_tenants
        weak = await make_member(
            session, a.tenant, email="weak@a.example", role=Role.VIEWER, scopes=frozenset()
        )
        await session.commit()
        app = create_app(settings, database=db, redis=redis)
        async with app_client(app) as client:
            for endpoint in api_endpoints(app):
                route = next(
                    r
                    for r in app.routes
                    if isinstance(r, HTTPRoute) and r.path == endpoint.template
                )
                handler = next(h for h in route.route_handlers if endpoint.method in h.http_methods)
                if handler.opt.get("scope") == "any":
                    continue
                path = PARAM.sub("00000000-0000-7000-8000-000000000000", endpoint.template)
                response = await _call(client, endpoint, path, weak)
                assert response.status_code == 403, (
                    f"{endpoint.method} {endpoint.template}: {response.status_code}"
                )
