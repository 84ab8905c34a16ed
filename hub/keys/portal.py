"""The keys pages of the portal: the tenant's HPMS API keys, and what their responsible
party does with them (add, rotate, report compromised, deactivate, suspend, resume,
designees, restore a lost contract). No page ever shows a secret; the services decide who
may do what, exactly as for the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.service import Actor
from hub.auth import repository as auth_repository
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import Conflict, Invalid, Unavailable
from hub.keys import repository, service
from hub.keys.api import key_views
from hub.keys.models import KeyStatus
from hub.keys.schemas import KeyCompromise, KeyContractsPut, KeyCreate, KeyRotate, KeyView
from hub.portal import forms
from hub.portal.web import go, page, principal_of, render

# What a key page says after an action (the `done` query value; nothing else is echoed).
DONE = {
    "created": "The key was verified with CMS and saved. Its secret is stored sealed and is "
    "never shown again.",
    "rotated": "The new key ID and secret are in use; the previous ones retire after the "
    "grace period.",
    "compromised": "The key is reported compromised and no longer used. Deactivate it in HPMS "
    "API Key Management now, then register its replacement here.",
    "deactivated": "The key is deactivated; every secret it held is destroyed.",
    "suspended": "The key is suspended: it is not used until it is resumed.",
    "resumed": "The key is active again.",
    "restored": "The contract's access is restored; it is being synced now.",
    "designees": "The designees are saved.",
    "contracts": "The key's contracts are saved.",
}
STATUS_PILL = {
    KeyStatus.ACTIVE.value: "ok",
    KeyStatus.SUSPENDED.value: "warn",
    KeyStatus.NEEDS_REPLACEMENT.value: "bad",
    KeyStatus.COMPROMISED.value: "bad",
    KeyStatus.DEACTIVATED.value: "",
}
T = TypeVar("T")
NOTHING = service.KeyActions(*([False] * len(service.KeyActions.__slots__)))


class KeyForm(msgspec.Struct):
    """A new key as the RP types it. `secret` is never rendered back."""

    environment: str = "sandbox"
    label: str = ""
    key_id: str = ""
    secret: str = ""
    hpms_user_id: str = ""
    poc_name: str = ""
    poc_email: str = ""
    contracts: str = ""
    expected_rotation_on: str = ""
    replaces: str = ""

    def kept(self) -> dict[str, str]:
        """What the form shows again after a refusal: everything but the secret."""
        return {f: getattr(self, f) for f in self.__struct_fields__ if f != "secret"}


class RotateForm(msgspec.Struct):
    key_id: str = ""
    secret: str = ""


class ContractsForm(msgspec.Struct):
    contracts: str = ""


class CompromiseForm(msgspec.Struct):
    reason: str = ""


class DesigneeForm(msgspec.Struct):
    user_id: str = ""


def _errors(error: Invalid | Conflict | Unavailable) -> dict[str, str]:
    """The refusal as the form shows it: the message beside its field ("" for the form)."""
    field = getattr(error, "field", None) or ""
    reason = error.detail.removeprefix(f"{field}: ") if field else error.detail
    return {field.split("[", 1)[0].removeprefix("technical_poc."): reason}


async def _view(session: AsyncSession, principal: Principal, key_id: UUID) -> KeyView:
    key = await repository.get_key(session, principal.tenant, key_id)
    return (await key_views(session, principal.tenant, [key]))[0]


async def _people(session: AsyncSession, principal: Principal) -> dict[UUID, str]:
    """The tenant's members by user id, with their emails (for designees)."""
    members = await auth_repository.list_members(session, principal.tenant)
    return {m.user_id: m.user.email for m in members}


def _replaces(raw: str) -> UUID | None:
    if not raw.strip():
        return None
    try:
        return UUID(raw.strip())
    except ValueError:
        raise Invalid("replaces", "choose a key of this tenant to replace") from None


def _user_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise Invalid("user_id", "choose a member of this tenant") from None


@get("/keys", opt=page(Scope.KEYS_READ))
async def keys_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    """Every key of the tenant with its status, RP, contracts and rotation date."""
    principal = principal_of(request)
    views = await key_views(
        db_session, principal.tenant, await repository.list_keys(db_session, principal.tenant)
    )
    return await render(
        request, db_session, "keys/list.html", title="HPMS API keys",
        keys=views, pills=STATUS_PILL, may_add=Scope.KEYS_MANAGE in principal.scopes,
    )  # fmt: skip


async def _new_form(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    principal = principal_of(request)
    contracts = await repository.list_contracts(session, principal.tenant)
    replaceable = await service.replaceable_keys(session, principal)
    return await render(
        request, session, "keys/new.html", title="Add a key", status_code=status_code,
        form=form, errors=errors or {}, contracts=[c.number for c in contracts],
        replaceable=replaceable,
    )  # fmt: skip


@get("/keys/new", opt=page(Scope.KEYS_MANAGE))
async def new_key_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    replaces: FromQuery[str] = "",
) -> Template:
    """The form; `replaces` (from a retired key's page) preselects the key it replaces."""
    return await _new_form(request, db_session, form=KeyForm(replaces=replaces).kept())


@post("/keys", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def add_key(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[KeyForm],
) -> Response[Any]:
    """The signed-in member registers a key as its RP; CMS verifies it first (as the API)."""
    principal = principal_of(request)
    try:
        created = forms.api_body(
            KeyCreate,
            {
                "environment": data.environment, "key_id": data.key_id, "secret": data.secret,
                "hpms_user_id": data.hpms_user_id, "label": data.label,
                "technical_poc": {"name": data.poc_name, "email": data.poc_email},
                # Left empty with `replaces`: the replaced key's contracts (as the API).
                "contracts": forms.words(data.contracts) or None,
                "expected_rotation_on": forms.day(
                    "expected_rotation_on", data.expected_rotation_on
                ),
                "replaces": _replaces(data.replaces),
            },
        )  # fmt: skip
        key = await service.create_key(
            db_session, principal, data=created, verifier=request.app.state.get("ctm_verifier")
        )
    except (Invalid, Conflict, Unavailable) as error:
        return await _new_form(
            request, db_session, form=data.kept(), errors=_errors(error), status_code=400
        )
    return go(request, f"/portal/keys/{key.id}?done=created")


async def _detail(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    key_id: UUID,
    *,
    done: str = "",
    errors: dict[str, str] | None = None,
    rotate: dict[str, str] | None = None,
    contracts_form: str = "",
    status_code: int = 200,
) -> Template:
    principal = principal_of(request)
    key = await repository.get_key(session, principal.tenant, key_id)
    view = (await key_views(session, principal.tenant, [key]))[0]
    may = await service.actions_for(session, principal, key)
    people = await _people(session, principal)
    designated = set(view.designees.users)
    message = DONE.get(done, "")
    return await render(
        request, session, "keys/detail.html", title=view.label, status_code=status_code,
        key=view, pills=STATUS_PILL, people=people, errors=errors or {},
        rotate=rotate or {"key_id": ""}, flash=message or None,
        may=may if Scope.KEYS_MANAGE in principal.scopes else NOTHING,
        is_rp=view.responsible_party.user_id == principal.user_id,
        may_add=Scope.KEYS_MANAGE in principal.scopes,
        contracts_form=contracts_form or ", ".join(c.number for c in view.contracts),
        replaceable=view.status in {s.value for s in service.REPLACEABLE},
        candidates=sorted(
            (email, uid) for uid, email in people.items()
            if uid not in designated and uid != view.responsible_party.user_id
        ),
    )  # fmt: skip


@get("/keys/{key_id:uuid}", opt=page(Scope.KEYS_READ))
async def key_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    done: FromQuery[str] = "",
) -> Template:
    """One key: its contracts (lost ones with the restore action), designees, versions."""
    return await _detail(request, db_session, key_id, done=done)


@post("/keys/{key_id:uuid}/rotate", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def rotate_key(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    data: URLEncodedBody[RotateForm],
) -> Response[Any]:
    """The RP enters CMS's reissued key ID and secret (verified when CMS answers, as the API)."""
    principal = principal_of(request)
    try:
        await service.rotate_key(
            db_session, principal, key_id=key_id,
            data=forms.api_body(KeyRotate, {"key_id": data.key_id, "secret": data.secret}),
            verifier=request.app.state.get("ctm_verifier"),
            grace=timedelta(hours=request.app.state.settings.key_version_grace_hours),
        )  # fmt: skip
    except (Invalid, Unavailable) as error:
        return await _detail(
            request, db_session, key_id, errors=_errors(error),
            rotate={"key_id": data.key_id}, status_code=400,
        )  # fmt: skip
    except Conflict as error:
        if error.field != "key_id":
            raise
        return await _detail(
            request, db_session, key_id, errors=_errors(error),
            rotate={"key_id": data.key_id}, status_code=400,
        )  # fmt: skip
    return go(request, f"/portal/keys/{key_id}?done=rotated")


@post("/keys/{key_id:uuid}/compromise", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def report_compromise(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    data: URLEncodedBody[CompromiseForm],
) -> Response[Any]:
    """Any member holding keys:manage reports (as the API); the key is unusable at once."""
    principal = principal_of(request)
    reason = forms.api_body(KeyCompromise, {"reason": data.reason[:500]}).reason
    await service.report_compromise(
        db_session, tenant_id=principal.tenant, key_id=key_id,
        actor=Actor.of_principal(principal), reason=reason,
    )  # fmt: skip
    return go(request, f"/portal/keys/{key_id}?done=compromised")


@post("/keys/{key_id:uuid}/deactivate", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def deactivate_key(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
) -> Response[Any]:
    await service.deactivate_key(db_session, principal_of(request), key_id=key_id)
    return go(request, f"/portal/keys/{key_id}?done=deactivated")


@post("/keys/{key_id:uuid}/suspend", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def suspend_key(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
) -> Response[Any]:
    await service.suspend_key(db_session, principal_of(request), key_id=key_id)
    return go(request, f"/portal/keys/{key_id}?done=suspended")


@post("/keys/{key_id:uuid}/resume", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def resume_key(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
) -> Response[Any]:
    await service.resume_key(db_session, principal_of(request), key_id=key_id)
    return go(request, f"/portal/keys/{key_id}?done=resumed")


@post(
    "/keys/{key_id:uuid}/contracts/{contract:str}/restore",
    opt=page(Scope.KEYS_MANAGE),
    status_code=200,
)
async def restore_access(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    contract: FromPath[str],
) -> Response[Any]:
    await service.restore_access(
        db_session, principal_of(request), key_id=key_id, contract=contract
    )
    return go(request, f"/portal/keys/{key_id}?done=restored")


@post("/keys/{key_id:uuid}/contracts", opt=page(Scope.TENANT_ADMIN), status_code=200)
async def set_contracts(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    data: URLEncodedBody[ContractsForm],
) -> Response[Any]:
    """A tenant admin sets the contracts CMS associated with the key (the API's PUT)."""
    try:
        await service.set_contracts(
            db_session, principal_of(request), key_id=key_id,
            numbers=forms.api_body(KeyContractsPut, {"contracts": forms.words(data.contracts)})
            .contracts,
        )  # fmt: skip
    except (Invalid, Conflict) as error:
        return await _detail(
            request, db_session, key_id, errors=_errors(error),
            contracts_form=data.contracts, status_code=400,
        )  # fmt: skip
    return go(request, f"/portal/keys/{key_id}?done=contracts")


async def _set_designees(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    key_id: UUID,
    change: DesigneeForm,
    *,
    add: bool,
) -> Response[Any]:
    """Add or take off one member; the key's token designees stay as they are."""
    principal = principal_of(request)
    try:
        user_id = _user_id(change.user_id)
        view = await _view(session, principal, key_id)
        users = [u for u in view.designees.users if u != user_id] + ([user_id] if add else [])
        await service.set_designees(
            session, principal, key_id=key_id, users=users, tokens=view.designees.tokens
        )
    except Invalid as error:
        return await _detail(request, session, key_id, errors=_errors(error), status_code=400)
    return go(request, f"/portal/keys/{key_id}?done=designees")


@post("/keys/{key_id:uuid}/designees/add", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def add_designee(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    data: URLEncodedBody[DesigneeForm],
) -> Response[Any]:
    return await _set_designees(request, db_session, key_id, data, add=True)


@post("/keys/{key_id:uuid}/designees/remove", opt=page(Scope.KEYS_MANAGE), status_code=200)
async def remove_designee(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    key_id: FromPath[UUID],
    data: URLEncodedBody[DesigneeForm],
) -> Response[Any]:
    return await _set_designees(request, db_session, key_id, data, add=False)


PAGES: list[Any] = [
    keys_page,
    new_key_page,
    add_key,
    key_page,
    rotate_key,
    report_compromise,
    deactivate_key,
    suspend_key,
    resume_key,
    restore_access,
    set_contracts,
    add_designee,
    remove_designee,
]
