"""Portal test helpers: sign in through the login form, read the CSRF token off a page, and
post forms as the browser does."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support import PASSWORD

CSRF = re.compile(r'name="_csrf" value="([0-9a-f]{64})"')


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in (the client keeps the cookie); the session's CSRF token."""
    answer = await client.post("/portal/login", data={"email": email, "password": password})
    assert answer.status_code == 303, answer.text
    landing = await client.get(answer.headers["location"])
    assert landing.status_code == 200, landing.text
    return csrf_of(landing)


async def post_form(
    client: httpx.AsyncClient, path: str, csrf: str, data: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    return await client.post(path, data={"_csrf": csrf, **(data or {})}, **kw)


NEW_PASSWORD = "a passphrase only I know"


async def sign_in_first_time(client: httpx.AsyncClient, email: str, given: str) -> str:
    """Sign in with a password someone else was given (it must be replaced first), then
    set `NEW_PASSWORD`; the session's CSRF token."""
    landing = await sign_in(client, email, given)
    changed = await post_form(
        client,
        "/portal/account/password",
        landing,
        {"current": given, "password": NEW_PASSWORD, "repeated": NEW_PASSWORD},
    )
    assert changed.status_code == 303, changed.text
    return csrf_of(await client.get(changed.headers["location"]))
