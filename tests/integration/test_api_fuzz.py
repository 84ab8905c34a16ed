"""Property-based tests of the whole HTTP API, driven by the OpenAPI schema the hub serves.

For every operation, schemathesis generates requests from the schema, valid ones (positive)
and ones that break it (negative), sent in-process as a tenant admin of a seeded tenant (the
most powerful tenant role), and valid ones without a token and as a viewer. Whatever the
input: no 5xx; every answer's status code, content type, headers and body are the ones the
schema documents; invalid input is refused with a 4xx; and every 4xx is a JSON error in the
hub's shape saying what was wrong. Examples are few per operation and derandomized, so a run
is quick and the same on every machine. A failure prints the request as a curl command.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from functools import cache
from http import HTTPStatus

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.app import API_PREFIX, create_app
from hub.core.crypto import Crypto
from hub.core.db import Database
from hub.core.redis import connect
from hub.settings import Settings
from tests.integration.api_fuzz_support import World, clear_error, hub_with_cms, seed_world, send
from tests.isolation import OPEN_ROUTES
from tests.support import RecordingQueue, app_client


def is_open(method: str, path: str) -> bool:
    """A route that takes no bearer token (OpenAPI paths name no parameter types)."""
    return any(
        method.upper() == m and re.sub(r"\{(\w+):\w+\}", r"{\1}", template) == path
        for m, template in OPEN_ROUTES
    )


SCHEMA_PATH = "/schema/openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 8  # per operation and generation mode
CALLER_EXAMPLES = 2  # per operation, for each caller who may not call it
FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,
    # The seeded tenant is made once per module; each example changes it like a real caller.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@cache
def operations() -> dict[str, bool]:
    """Every operation of the schema the hub serves (read once, at collection), and whether
    it takes any input that invalid data could be sent in."""
    schema = create_app(Settings()).openapi_schema.to_schema()
    return {
        f"{method.upper()} {path}": bool(spec.get("parameters") or spec.get("requestBody"))
        for path, item in schema["paths"].items()
        for method, spec in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "operation" not in metafunc.fixturenames:
        return
    if "mode" not in metafunc.fixturenames:
        metafunc.parametrize("operation", list(operations()))
        return
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    metafunc.parametrize(
        ("operation", "mode"),
        [(label, mode) for label, has_input in operations().items() for mode in modes
         if has_input or mode is GenerationMode.POSITIVE],
        ids=str,
    )  # fmt: skip


@pytest.fixture(scope="module")
async def api_schema(settings: Settings) -> schemathesis.BaseSchema:
    """The schema as served at /schema/openapi.json."""
    async with app_client(create_app(settings)) as client:
        served = await client.get(SCHEMA_PATH)
    assert served.status_code == 200
    return schemathesis.openapi.from_dict(served.json(), config=schemathesis.Config())


@pytest.fixture(scope="module")
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection for the module, in a transaction rolled back at its end."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield connection
        finally:
            await outer.rollback()


@pytest.fixture(scope="module")
async def world(
    engine: AsyncEngine, connection: AsyncConnection, settings: Settings, redis_url: str
) -> AsyncIterator[tuple[World, httpx.AsyncClient]]:
    """The seeded tenant, made once, and the hub the requests go to."""
    db = Database(engine, RecordingQueue(), bind=connection, crypto=Crypto.from_settings(settings))
    async with db.transaction() as session:
        world = await seed_world(session, settings)
    redis = await connect(redis_url)
    try:
        async with hub_with_cms(settings, db, redis) as client:
            yield world, client
    finally:
        await redis.aclose()


@pytest.fixture
async def seeded(
    connection: AsyncConnection, world: tuple[World, httpx.AsyncClient]
) -> AsyncIterator[tuple[World, httpx.AsyncClient]]:
    """The seeded tenant as it was made: what one operation's requests change is undone
    before the next operation's."""
    savepoint = await connection.begin_nested()
    try:
        yield world
    finally:
        await savepoint.rollback()


def test_every_served_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    served = sorted(result.ok().label for result in api_schema.get_all_operations())
    assert served == sorted(operations())


@settings(FUZZ, max_examples=EXAMPLES)
@given(data=st.data())
async def test_no_input_gets_a_5xx_or_an_unclear_error(
    seeded: tuple[World, httpx.AsyncClient],
    api_schema: schemathesis.BaseSchema,
    operation: str,
    mode: GenerationMode,
    data: st.DataObject,
) -> None:
    world, hub = seeded
    method, path = operation.split(" ", 1)
    api_operation = api_schema[path][method]
    # Valid requests reach the seeded objects half the time (a random id only finds a 404).
    path_ids = None
    if mode is GenerationMode.POSITIVE and data.draw(st.booleans(), label="seeded ids"):
        path_ids = {name: world.path_ids[name] for name in world.path_ids if f"{{{name}}}" in path}
    strategy = api_operation.as_strategy(
        mode, headers={"Authorization": f"Bearer {world.admin.token}"}, path_parameters=path_ids
    )
    case = data.draw(strategy, label="case")
    response = await send(hub, case)
    case.validate_response(response, checks=CHECKS, additional_checks=[clear_error])


@pytest.mark.parametrize("caller", ["no token", "viewer"])
@settings(FUZZ, max_examples=CALLER_EXAMPLES)
@given(data=st.data())
async def test_callers_without_a_token_or_a_scope_get_clear_errors(
    seeded: tuple[World, httpx.AsyncClient],
    api_schema: schemathesis.BaseSchema,
    operation: str,
    caller: str,
    data: st.DataObject,
) -> None:
    """Valid requests from no one (401 on every API route) and from a viewer (403 where the
    scope is missing), answered as documented and as clearly as any other error."""
    world, hub = seeded
    method, path = operation.split(" ", 1)
    token = {"Authorization": f"Bearer {world.viewer.token}"} if caller == "viewer" else None
    case = data.draw(api_schema[path][method].as_strategy(headers=token), label="case")
    if caller == "no token":
        case.headers.pop("Authorization", None)
    response = await send(hub, case)
    case.validate_response(response, checks=CHECKS, additional_checks=[clear_error])
    if caller == "no token" and path.startswith(API_PREFIX) and not is_open(method, path):
        assert response.status_code == HTTPStatus.UNAUTHORIZED
