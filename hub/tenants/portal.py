"""The operator console (`/console`): every tenant's health, onboarding a tenant and its
first people, and the support requests about users (a forgotten password, a lost phone,
someone who left), and the platform's audit chain. Operators see counts, people and the
platform's entries, never a secret, no PHI and no tenant's audit chain."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository as audit_repository
from hub.audit.api import MAX_SEQ
from hub.audit.models import AuditOutcome
from hub.audit.portal import PAGE_SIZE, EntryRow, entry_filter
from hub.audit.service import Actor
from hub.auth import repository as auth_repository
from hub.auth import service as auth
from hub.auth import tokens
from hub.auth.models import Role
from hub.core.db import utcnow
from hub.core.errors import Conflict, Invalid, choice
from hub.core.ids import TenantID
from hub.metrics.tenants import tenant_health
from hub.portal import once
from hub.portal.service import SessionLimits, Signed
from hub.portal.web import Access, form_errors, go, page, render, signed_of
from hub.settings import Settings
from hub.tenants import service
from hub.tenants.models import Tenant

OPERATOR = page(Access.OPERATOR)
# What a user's page says after an action that redirects (`?done=…`): fixed words, never
# text taken from the address.
DONE = {
    "deactivated": "The user was deactivated: signed out everywhere, their tokens stop working.",
    "already-inactive": "The user was already deactivated; nothing changed.",
    "reactivated": "The user was reactivated: they can sign in again.",
    "already-active": "The user was already active; nothing changed.",
    "two-step-off": "Two-step sign-in was turned off: they sign in with a password, then enrol.",
    "two-step-was-off": "Two-step sign-in was not on; nothing changed.",
}


async def _user_made(session: AsyncSession, _: Signed, user_id: UUID) -> once.Made:
    user = await auth.get_user(session, user_id)
    return once.Made(user.email, f"/console/users/{user.id}")


ADD_PERSON = once.OnceForm(
    "console.add-person",
    made="{label} was added to the tenant",
    shown_once="Their new password",
    lost="if you did not copy it, reset their password on their page",
    find=_user_made,
)
RESET_PASSWORD = once.OnceForm(
    "console.reset-password",
    made="a new password for {label} was made",
    shown_once="It",
    lost="if you did not copy it, reset the password again",
    find=_user_made,
)


class TenantForm(msgspec.Struct):
    name: str = ""
    slug: str = ""


class PersonForm(msgspec.Struct):
    email: str = ""
    role: str = Role.ADMIN.value


def _operator(request: Request[Any, Any, Any]) -> Actor:
    signed = signed_of(request)
    assert signed is not None  # the guard: a signed-in operator
    return Actor.operator(signed.user)


@get("/", opt=OPERATOR)
async def console(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    """Every active tenant's figures, what needs attention first at the top."""
    health = await tenant_health(db_session, now=utcnow())
    health.sort(key=lambda tenant: (-len(tenant.attention), tenant.slug))
    return await render(
        request, db_session, "console/index.html", title="Console", tenants=health,
        form=TenantForm(), errors={},
    )  # fmt: skip


@post("/tenants", opt=OPERATOR, status_code=200)
async def create_tenant(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[TenantForm],
) -> Response[Any]:
    try:
        tenant = await service.create_tenant(
            db_session, name=data.name, slug=data.slug, actor=_operator(request)
        )
    except (Invalid, Conflict) as error:
        health = await tenant_health(db_session, now=utcnow())
        return await render(
            request, db_session, "console/index.html", title="Console", status_code=400,
            tenants=health, form=data, errors=form_errors(error, default="name"),
        )  # fmt: skip
    return go(request, f"/console/tenants/{tenant.slug}")


async def _tenant_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    tenant: Tenant,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    found = await tenant_health(session, now=utcnow(), slug=tenant.slug)
    members = await auth_repository.list_members(session, TenantID(tenant.id))
    return await render(
        request, session, "console/tenant.html", title=tenant.name, status_code=status_code,
        tenant=tenant, health=found[0] if found else None, members=members,
        roles=[role.value for role in Role], **{"form": PersonForm(), "errors": {}, **context},
    )  # fmt: skip


@get("/tenants/{slug:str}", opt=OPERATOR)
async def tenant_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    slug: FromPath[str],
) -> Template:
    tenant = await service.get_tenant_by_slug(db_session, slug)
    return await _tenant_page(request, db_session, tenant)


@post(
    "/tenants/{slug:str}/members",
    opt=page(Access.OPERATOR, acts_once=ADD_PERSON),
    status_code=200,
)
async def add_person(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    slug: FromPath[str],
    data: URLEncodedBody[PersonForm],
) -> Template:
    """Add someone to the tenant (its first admin, usually). A new user gets a generated
    password, shown on this page once, to hand over by a channel of the operator's choice."""
    tenant = await service.get_tenant_by_slug(db_session, slug)
    actor = _operator(request)
    password = None
    try:
        # Everything that may refuse is checked before the first write: a refusal answers
        # the form (and commits), so it must leave nothing half done.
        role = choice("role", data.role, Role) or Role.ADMIN
        await service.require_active(db_session, TenantID(tenant.id))
        user = await auth.find_user_by_email(db_session, data.email)
        if user is not None and await auth_repository.find_member_by_user(
            db_session, TenantID(tenant.id), user.id
        ):
            raise Conflict(f"{user.email} is already a member of this tenant", field="email")
        if user is None:
            password = tokens.generate_password()
            user = await auth.create_user(
                db_session, email=data.email, password=password, actor=actor,
                must_change_password=True,
            )  # fmt: skip
        await auth.add_member(
            db_session, tenant_id=TenantID(tenant.id), user=user, role=role, actor=actor
        )
    except (Invalid, Conflict) as error:
        return await _tenant_page(
            request, db_session, tenant, status_code=400, form=data,
            errors=form_errors(error, default="email"),
        )  # fmt: skip
    once.record(request, user.id, shown=password is not None)
    return await _tenant_page(
        request, db_session, tenant, added=user.email, password=password,
        flash=f"{user.email} is now a member ({role.value}).",
    )  # fmt: skip


# Users -----------------------------------------------------------------------------------


@get("/users", opt=OPERATOR)
async def users_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    email: FromQuery[str] = "",
) -> Template:
    """Users whose email contains what was typed (the first ones by email without)."""
    found = await auth.list_users(db_session, email=email[:320])
    return await render(
        request, db_session, "console/users.html", title="Users", users=found, email=email,
        limit=auth.USER_SEARCH_LIMIT,
    )  # fmt: skip


async def _user_page(
    request: Request[Any, Any, Any], session: AsyncSession, user_id: UUID, **context: Any
) -> Template:
    user = await auth.get_user(session, user_id)
    settings: Settings = request.app.state.settings
    overview = await auth.overview_of(
        session, user, idle=SessionLimits.from_settings(settings).idle
    )
    signed = signed_of(request)
    return await render(
        request, session, "console/user.html", title=user.email, overview=overview,
        is_me=signed is not None and signed.user.id == user.id, **context,
    )  # fmt: skip


@get("/users/{user_id:uuid}", opt=OPERATOR)
async def user_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    user_id: FromPath[UUID],
    done: FromQuery[str] = "",
) -> Template:
    """One user: memberships, whether they can sign in, two-step, sessions; the actions."""
    return await _user_page(request, db_session, user_id, done=DONE.get(done))


@post(
    "/users/{user_id:uuid}/reset-password",
    opt=page(Access.OPERATOR, acts_once=RESET_PASSWORD),
    status_code=200,
)
async def reset_password(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    user_id: FromPath[UUID],
) -> Template:
    """A new generated password, shown on the answer once (not behind a redirect, which
    would have to carry it); the user's portal sessions end."""
    user = await auth.get_user(db_session, user_id)
    reset = await auth.reset_password(db_session, user, actor=_operator(request))
    once.record(request, user.id)
    return await _user_page(
        request, db_session, user_id, password=reset.password, sessions_ended=reset.sessions_ended
    )


@post("/users/{user_id:uuid}/deactivate", opt=OPERATOR, status_code=200)
async def deactivate(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    user_id: FromPath[UUID],
) -> Response[Any]:
    user = await auth.get_user(db_session, user_id)
    ended = await auth.deactivate_user(db_session, user, actor=_operator(request))
    done = "already-inactive" if ended is None else "deactivated"
    return go(request, f"/console/users/{user_id}?done={done}")


@post("/users/{user_id:uuid}/reactivate", opt=OPERATOR, status_code=200)
async def reactivate(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    user_id: FromPath[UUID],
) -> Response[Any]:
    user = await auth.get_user(db_session, user_id)
    changed = await auth.reactivate_user(db_session, user, actor=_operator(request))
    return go(
        request, f"/console/users/{user_id}?done={'reactivated' if changed else 'already-active'}"
    )


@post("/users/{user_id:uuid}/reset-two-step", opt=OPERATOR, status_code=200)
async def reset_two_step(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    user_id: FromPath[UUID],
) -> Response[Any]:
    user = await auth.get_user(db_session, user_id)
    was_on = await auth.reset_two_step(db_session, user, actor=_operator(request))
    return go(
        request, f"/console/users/{user_id}?done={'two-step-off' if was_on else 'two-step-was-off'}"
    )


# The platform audit chain ------------------------------------------------------------------

# What an operator is asked about most, as links: (label, filters).
AUDIT_PRESETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("Refused sign-ins", {"action": "user.sign_in", "outcome": AuditOutcome.DENIED.value}),
    ("Password resets", {"action": "user.password_reset"}),
    ("Deactivations", {"action": "user.deactivated"}),
    ("Two-step changes", {"action": "user.two_step_"}),
)


def _audit_href(path: str, filters: dict[str, str], **more: int) -> str:
    query = {name: value for name, value in {**filters, **more}.items() if value}
    return path + (f"?{urlencode(query)}" if query else "")


def _platform_filter(filters: dict[str, str]) -> audit_repository.EntryFilter:
    where = entry_filter(
        filters["action"], filters["actor"], filters["target"], filters["since"], filters["until"]
    )
    return dataclasses.replace(where, outcome=choice("outcome", filters["outcome"], AuditOutcome))


@get("/audit", opt=OPERATOR)
async def audit_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    action: FromQuery[str] = "",
    actor: FromQuery[str] = "",
    target: FromQuery[str] = "",
    outcome: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
    before: FromQuery[int | None] = None,
) -> Template:
    """The platform chain newest first (sign-ins and refusals, users, password resets,
    two-step, master keys), filtered as a tenant's audit page; `before` pages on."""
    filters = {"action": action, "actor": actor, "target": target, "outcome": outcome,
               "since": since, "until": until}  # fmt: skip
    context: dict[str, Any] = {
        "filters": filters, "presets": [(label, _audit_href("/console/audit", preset))
                                        for label, preset in AUDIT_PRESETS],
        "outcomes": [o.value for o in AuditOutcome], "before": before,
    }  # fmt: skip
    try:
        if before is not None and not 0 < before <= MAX_SEQ:
            raise Invalid("before", "is not an entry of this log")
        where = _platform_filter(filters)
    except Invalid as error:
        return await render(
            request, db_session, "console/audit.html", title="Platform audit log",
            status_code=400, rows=[], errors={error.field: error.detail}, **context,
        )  # fmt: skip
    found = await audit_repository.list_platform_newest(
        db_session, where=where, before=before, limit=PAGE_SIZE + 1
    )
    rows = [EntryRow.of(entry) for entry in found[:PAGE_SIZE]]
    older = rows[-1].entry.seq if len(found) > PAGE_SIZE else None
    return await render(
        request, db_session, "console/audit.html", title="Platform audit log", rows=rows,
        errors={}, newest_href=_audit_href("/console/audit", filters),
        older_href=_audit_href("/console/audit", filters, before=older) if older else None,
        csv_href=_audit_href("/console/audit.csv", filters), **context,
    )  # fmt: skip


@get("/audit.csv", opt=OPERATOR)
async def audit_csv(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    action: FromQuery[str] = "",
    actor: FromQuery[str] = "",
    target: FromQuery[str] = "",
    outcome: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
) -> Stream:
    """The platform chain as the page's filters narrow it, as a CSV file; the export is
    itself audited on the platform chain (`audit.exported`) before the file leaves."""
    filters = {"action": action, "actor": actor, "target": target, "outcome": outcome,
               "since": since, "until": until}  # fmt: skip
    return await audit_repository.export_platform_file(
        db_session, request.app.state.db, _operator(request), _platform_filter(filters)
    )


PAGES = [
    console, create_tenant, tenant_page, add_person,
    users_page, user_page, reset_password, deactivate, reactivate, reset_two_step,
    audit_page, audit_csv,
]  # fmt: skip
