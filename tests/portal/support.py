"""Portal test helpers: sign in through the login form, read the CSRF token off a page, and
post forms as the browser does."""

from __future__ import annotations

import re
from typing import Any

import httpx

from hub.portal import once, service
from tests.support import PASSWORD

CSRF = re.compile(r'name="_csrf" value="([0-9a-f]{64})"')
# Settings under which webhook receivers on this machine are allowed (the pages' tests send
# to loopback addresses, as the webhook integration tests do).
LOOPBACK_RECEIVERS = {
    "webhook_allow_private_networks": True,
    "webhook_allow_http_hosts": "127.0.0.1,localhost",
}


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


FORM_TOKEN = re.compile(r'name="_form_token" value="([^"]+)"')
# The page that gives a form that acts once its token, by the form's action.
ONCE_PAGES = (
    (re.compile(r"^/portal/webhooks$"), "/portal/webhooks/new"),
    (re.compile(r"^(/console/tenants/[^/]+)/members$"), r"\1"),
    (re.compile(r"^(.*)/(rotate|reset-password|begin)$"), r"\1"),
)


def form_token_of(page: httpx.Response) -> str:
    found = FORM_TOKEN.search(page.text)
    assert found is not None, "the page gives no form a one-time token"
    return found.group(1)


def page_of(action: str) -> str:
    for pattern, page in ONCE_PAGES:
        if pattern.match(action):
            return pattern.sub(page, action)
    return action


async def post_once(
    client: httpx.AsyncClient, path: str, csrf: str, data: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    """Post a form that makes a secret as the browser does: with the one-time token its
    page (opened first) gave it."""
    token = form_token_of(await client.get(page_of(path)))
    return await post_form(client, path, csrf, {"_form_token": token, **(data or {})}, **kw)


def issued_token(client: httpx.AsyncClient, form: str) -> str:
    """A one-time token for the form named `form`, as a page would give the client's session
    one: for a form whose page the test cannot open (another tenant's object, an unknown id,
    a form the page does not show)."""
    cookie = client.cookies.get("hub_session")
    assert cookie, "sign in first"
    return once.issue(service.form_key(cookie), form)
