"""The HPMS API key lifecycle CMS describes: create, rotate, report a compromise, deactivate,
replace; contract mapping and designees. Every state change is audited and emits an event
in the caller's transaction. The secret is sealed at once and opened only for CMS."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules as alert_rules
from hub.audit.service import Actor
from hub.audit.service import record as audit
from hub.auth import repository as auth_repository
from hub.auth import service as auth
from hub.auth.models import ApiToken, Membership, Scope, User
from hub.auth.principal import Principal
from hub.core import crypto, jobs
from hub.core.crypto import Sealed, TenantCipher
from hub.core.db import utcnow
from hub.core.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from hub.core.ids import TenantID, uuid7
from hub.core.logging import redact_value
from hub.ctm.client import CtmCredentials, CtmEnvironment
from hub.ctm.errors import CtmProtocolError, CtmUnavailable, EnvironmentMismatch, KeyRejected
from hub.events.service import record_event
from hub.keys import repository
from hub.keys.models import (
    ApiKey,
    ApiKeyContract,
    ApiKeyDesignee,
    ApiKeyVersion,
    Contract,
    Environment,
    KeyStatus,
    VersionState,
)
from hub.keys.schemas import KeyCreate, KeyRotate
from hub.tenants.service import get_tenant, require_active

CONTRACT_PATTERN = re.compile(r"^[HRSEFX9][0-9]{4}$")
SECRET_FIELD = "api_key_versions.secret"  # noqa: S105 - a column name
DEFAULT_GRACE = timedelta(hours=24)
REPLACEABLE = frozenset({KeyStatus.COMPROMISED, KeyStatus.DEACTIVATED, KeyStatus.NEEDS_REPLACEMENT})

log = structlog.get_logger(__name__)


class KeyNotUsable(Conflict):
    """The key may not be sent to CMS (suspended, compromised, invalid or deactivated)."""


class KeyVerifier(Protocol):
    async def verify(self, credentials: CtmCredentials) -> None:
        """Exchange the credentials for a token; raise the CTM client's errors if refused."""


class _PlainSecret:
    """A secret just typed by its RP, held only for this request's verification."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"


@dataclass(frozen=True, slots=True)
class _SealedSecret:
    """A stored secret, opened only when the CTM client calls `reveal()` for a token."""

    cipher: TenantCipher
    sealed: Sealed
    row: UUID

    def reveal(self) -> str:
        return self.cipher.open(self.sealed, field=SECRET_FIELD, row=self.row)

    def __repr__(self) -> str:
        return "***"


# Validation ------------------------------------------------------------------------------


def normalise_contract(raw: str, *, field: str = "contracts") -> str:
    number = raw.strip().upper()
    if not CONTRACT_PATTERN.fullmatch(number):
        raise Invalid(
            field,
            f"{raw!r} is not a contract number (a letter H, R, S, E, F, X or 9 and four digits)",
        )
    return number


def normalise_contracts(raws: Sequence[str]) -> list[str]:
    numbers: list[str] = []
    for raw in raws:
        number = normalise_contract(raw)
        if number in numbers:
            raise Invalid("contracts", f"{number} is listed twice")
        numbers.append(number)
    return numbers


def parse_environment(raw: str) -> Environment:
    try:
        return Environment(raw.strip().lower())
    except ValueError:
        raise Invalid("environment", "must be sandbox or production") from None


def _check_secret(secret: str) -> str:
    if not secret.strip():
        raise Invalid("secret", "must not be empty or only whitespace")
    return secret


async def _check_key_id_free(session: AsyncSession, environment: Environment, key_id: str) -> str:
    key_id = key_id.strip()
    if not key_id:
        raise Invalid("key_id", "must not be empty")
    if any(not c.isprintable() for c in key_id):
        # A line break or control character: it would break every log line, email and
        # page that shows the key ID (a CMS key ID is one line of printable characters).
        raise Invalid("key_id", "must be printable characters on one line")
    if redact_value(key_id) != key_id:
        # Every member sees a key ID, and it is audited: a pasted token or secret must not be.
        raise Invalid("key_id", "looks like a token or secret, not a CMS key ID")
    if await repository.key_id_taken(session, environment, key_id):
        # Never say which tenant: that would reveal another plan's keys.
        raise Conflict(
            f"key_id: this key ID is already registered in {environment.value}", field="key_id"
        )
    return key_id


async def _verify(
    verifier: KeyVerifier | None,
    credentials: CtmCredentials,
    *,
    required: bool,
) -> bool:
    """True when CMS accepted the credentials; False when it could not be asked and
    verification was optional. Refusals raise with the reason."""
    if verifier is None:
        if required:
            raise Unavailable("cannot verify: no CTM client is configured; send verify=false")
        return False
    try:
        await verifier.verify(credentials)
    except KeyRejected:
        raise Invalid(
            "secret",
            "CMS refused this key ID and secret at the token exchange (403): check both, "
            "and that the key belongs to this environment and HPMS user",
        ) from None
    except EnvironmentMismatch as error:
        raise Invalid("environment", str(error)) from None
    except (CtmUnavailable, CtmProtocolError) as error:
        if required:
            raise Unavailable(
                f"cannot verify: the CMS {credentials.environment.value} CTM endpoint did not "
                f"answer ({type(error).__name__}); retry, or send verify=false"
            ) from None
        return False
    return True


def _candidate(
    environment: Environment, key_id: str, hpms_user_id: str, secret: str
) -> CtmCredentials:
    return CtmCredentials(
        environment=CtmEnvironment(environment.value),
        key_id=key_id,
        hpms_user_id=hpms_user_id,
        version_id=f"candidate-{uuid7()}",
        secret=_PlainSecret(secret),
    )


# Create, rotate, replace -----------------------------------------------------------------


async def _contracts_for(
    session: AsyncSession, tenant_id: TenantID, numbers: Sequence[str]
) -> list[Contract]:
    found = await repository.contracts_by_number(session, tenant_id, numbers)
    missing = [n for n in numbers if n not in found]
    if missing:
        raise Invalid(
            "contracts",
            f"{', '.join(missing)}: not a contract of this tenant; a tenant admin adds it first",
        )
    return [found[n] for n in numbers]


async def _replaced_key(
    session: AsyncSession, tenant_id: TenantID, old_id: UUID, environment: Environment
) -> tuple[ApiKey, list[str]]:
    old = await repository.lock_key(session, tenant_id, old_id)
    if old.environment is not environment:
        raise Invalid(
            "environment",
            f"a replacement must be a {old.environment.value} key, like the key it replaces",
        )
    if old.status not in REPLACEABLE:
        raise Conflict(
            f"replaces: key {old.id} is {old.status.value}; only a compromised, deactivated or "
            "invalid key is replaced",
            field="replaces",
        )
    links = await repository.key_contracts(session, tenant_id, [old.id])
    return old, [contract.number for link, contract in links if link.access_lost_at is None]


async def _add_version(
    session: AsyncSession, key: ApiKey, *, key_id: str, secret: str, verified: bool, now: datetime
) -> ApiKeyVersion:
    version = ApiKeyVersion(
        tenant_id=key.tenant_id,
        api_key_id=key.id,
        environment=key.environment,
        key_id=key_id,
        state=VersionState.CURRENT,
        verified_at=now if verified else None,
    )
    version.secret = await crypto.seal(
        session, secret, tenant=key.tenant_id, field=SECRET_FIELD, row=version.id
    )
    session.add(version)
    return version


async def create_key(
    session: AsyncSession,
    actor: Principal,
    *,
    data: KeyCreate,
    verifier: KeyVerifier | None,
    now: datetime | None = None,
) -> ApiKey:
    """Register a key for its responsible party — the caller, always: a key is never
    entered on someone else's behalf, and never transferred afterwards."""
    now = now or utcnow()
    tenant_id = actor.tenant
    environment = parse_environment(data.environment)
    secret = _check_secret(data.secret)
    hpms_user_id = data.hpms_user_id.strip()
    if not hpms_user_id:
        raise Invalid("hpms_user_id", "must not be empty")
    poc_name = data.technical_poc.name.strip()
    if not poc_name:
        raise Invalid("technical_poc.name", "must not be empty")
    try:
        poc_email = auth.normalise_email(data.technical_poc.email)
    except Invalid:
        raise Invalid("technical_poc.email", "is not an email address") from None
    await require_active(session, tenant_id)
    old, inherited = (
        await _replaced_key(session, tenant_id, data.replaces, environment)
        if data.replaces is not None
        else (None, [])
    )
    numbers = normalise_contracts(data.contracts) if data.contracts is not None else inherited
    if not numbers:
        raise Invalid("contracts", "name at least one contract number the key covers")
    contracts = await _contracts_for(session, tenant_id, numbers)
    key_id = await _check_key_id_free(session, environment, data.key_id)
    verified = await _verify(
        verifier, _candidate(environment, key_id, hpms_user_id, secret), required=data.verify
    )
    tenant = await get_tenant(session, tenant_id)
    key = ApiKey(
        tenant_id=tenant_id,
        environment=environment,
        label=data.label.strip() or f"{environment.value} key {key_id[:8]}",
        responsible_party_id=actor.user_id,
        hpms_user_id=hpms_user_id,
        technical_poc_name=poc_name,
        technical_poc_email=poc_email,
        status=KeyStatus.ACTIVE,
        expected_rotation_on=data.expected_rotation_on
        or expected_rotation(now, tenant.key_rotation_days),
        replaces_id=old.id if old else None,
    )
    session.add(key)
    await session.flush()
    await _add_version(session, key, key_id=key_id, secret=secret, verified=verified, now=now)
    for contract in contracts:
        session.add(ApiKeyContract(tenant_id=tenant_id, api_key_id=key.id, contract_id=contract.id))
    await session.flush()
    details = {
        "environment": environment.value,
        "key_id": key_id,
        "contracts": numbers,
        "verified": verified,
    }
    if old is not None:
        details["replaces"] = str(old.id)
    await _change(session, Actor.of_principal(actor), key, "key.created", details)
    return key


async def rotate_key(
    session: AsyncSession,
    actor: Principal,
    *,
    key_id: UUID,
    data: KeyRotate,
    verifier: KeyVerifier | None,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> ApiKey:
    """Swap in CMS's reissued credentials; contract assignments carry over unchanged."""
    now = now or utcnow()
    key = await repository.lock_key(session, actor.tenant, key_id)
    _require_rp(key, actor, "rotate")
    if key.status in {KeyStatus.COMPROMISED, KeyStatus.DEACTIVATED}:
        raise Conflict(
            f"a {key.status.value} key cannot be rotated: deactivate it in HPMS API Key "
            "Management and register a replacement",
            field="status",
        )
    secret = _check_secret(data.secret)
    new_key_id = await _check_key_id_free(session, key.environment, data.key_id)
    verified = (
        await _verify(
            verifier,
            _candidate(key.environment, new_key_id, key.hpms_user_id, secret),
            required=bool(data.verify),
        )
        if data.verify is not False
        else False
    )
    previous = await repository.current_version(session, key)
    if previous is not None:
        previous.state = VersionState.RETIRING
        previous.retire_after = now + grace
    await session.flush()
    await _add_version(session, key, key_id=new_key_id, secret=secret, verified=verified, now=now)
    if key.status is KeyStatus.NEEDS_REPLACEMENT:
        key.status, key.status_reason = KeyStatus.ACTIVE, None
    key.last_failure_at = key.last_failure_reason = None
    tenant = await get_tenant(session, key.tenant_id)
    key.expected_rotation_on = data.expected_rotation_on or expected_rotation(
        now, tenant.key_rotation_days
    )
    await session.flush()
    await _change(
        session,
        Actor.of_principal(actor),
        key,
        "key.rotated",
        {
            "key_id": new_key_id,
            "previous_key_id": previous.key_id if previous else None,
            "verified": verified,
        },
    )
    return key


# Compromise, deactivation, suspension ----------------------------------------------------


async def report_compromise(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    key_id: UUID,
    actor: Actor,
    reason: str = "",
    now: datetime | None = None,
) -> ApiKey:
    """Any member (or an operator) reports; the key is unusable from this commit on, its hub
    tokens are revoked, and its RP is told to deactivate it in HPMS at once."""
    now = now or utcnow()
    key = await repository.lock_key(session, tenant_id, key_id)
    if key.status is KeyStatus.DEACTIVATED:
        raise Conflict("the key is already deactivated", field="status")
    if key.status is KeyStatus.COMPROMISED:
        return key
    key.status = KeyStatus.COMPROMISED
    # The reason is shown to every member and audited: mask whatever in it looks like a
    # token (a reporter may paste what leaked) rather than refuse an urgent report.
    key.status_reason = (redact_value(reason.strip()) or "reported compromised")[:500]
    key.compromised_at = now
    revoked = await _revoke_key_tokens(session, key, now)
    await session.flush()
    current = await repository.current_version(session, key)
    await _change(
        session,
        actor,
        key,
        "key.compromised",
        {
            "reason": key.status_reason,
            "tokens_revoked": revoked,
            "next_action": (
                f"Deactivate key {current.key_id if current else key.id} in HPMS API Key "
                "Management now, then register the replacement here"
            ),
        },
    )
    return key


async def deactivate_key(
    session: AsyncSession, actor: Principal, *, key_id: UUID, now: datetime | None = None
) -> ApiKey:
    """The RP retires the key (and confirms a compromised one is deactivated in HPMS): every
    secret it held is destroyed; its history and audit trail remain. Once the RP has left
    the tenant, a tenant admin may do it instead (the key needs replacing by then)."""
    now = now or utcnow()
    key = await repository.lock_key(session, actor.tenant, key_id)
    if key.responsible_party_id != actor.user_id and not (
        auth.manages_tokens(actor) and await _rp_gone(session, key)
    ):
        raise Forbidden(
            "only the key's responsible party may deactivate it (or a tenant admin, with a "
            "token holding tenant:admin, once they have left the tenant)"
        )
    if key.status is KeyStatus.DEACTIVATED:
        raise Conflict("the key is already deactivated", field="status")
    was = key.status
    key.status, key.status_reason, key.deactivated_at = KeyStatus.DEACTIVATED, None, now
    destroyed = 0
    for version in await repository.versions(session, key):
        destroyed += _destroy_secret(version, now)
    revoked = await _revoke_key_tokens(session, key, now)
    await session.flush()
    await _change(
        session,
        Actor.of_principal(actor),
        key,
        "key.deactivated",
        {"was": was.value, "secrets_destroyed": destroyed, "tokens_revoked": revoked},
    )
    return key


async def suspend_key(session: AsyncSession, actor: Principal, *, key_id: UUID) -> ApiKey:
    key = await repository.lock_key(session, actor.tenant, key_id)
    _require_rp_or_admin(key, actor, "suspend")
    if key.status is not KeyStatus.ACTIVE:
        raise Conflict(
            f"only an active key is suspended; this one is {key.status.value}", field="status"
        )
    key.status, key.status_reason = KeyStatus.SUSPENDED, f"suspended by {actor.email}"
    await session.flush()
    await _change(session, Actor.of_principal(actor), key, "key.suspended", {})
    return key


async def resume_key(session: AsyncSession, actor: Principal, *, key_id: UUID) -> ApiKey:
    key = await repository.lock_key(session, actor.tenant, key_id)
    _require_rp_or_admin(key, actor, "resume")
    if key.status is not KeyStatus.SUSPENDED:
        raise Conflict(
            f"only a suspended key is resumed; this one is {key.status.value}", field="status"
        )
    key.status, key.status_reason = KeyStatus.ACTIVE, None
    await session.flush()
    await _change(session, Actor.of_principal(actor), key, "key.resumed", {})
    return key


async def retire_tenant_keys(
    session: AsyncSession, *, tenant_id: TenantID, actor: Actor, now: datetime | None = None
) -> int:
    """The tenant is offboarded: every key of it is deactivated at once (no sync or upload
    picks it again) and its secrets, unreadable since the data key was destroyed, are
    dropped. Each is audited; no event or alert, since the tenant's endpoints and people
    are gone. Returns how many keys were deactivated."""
    now = now or utcnow()
    found = (
        await session.scalars(
            repository.keys(tenant_id).where(ApiKey.status != KeyStatus.DEACTIVATED)
        )
    ).all()
    for key in found:
        was = key.status
        key.status, key.deactivated_at = KeyStatus.DEACTIVATED, now
        key.status_reason = "the tenant was offboarded"
        destroyed = sum(_destroy_secret(v, now) for v in await repository.versions(session, key))
        await session.flush()
        await audit(
            session, actor=actor, action="key.deactivated", tenant_id=tenant_id,
            target_type="api_key", target_id=key.id,
            details={"was": was.value, "secrets_destroyed": destroyed, "reason": "offboarded"},
        )  # fmt: skip
    return len(found)


# What CMS and membership changes do to keys ----------------------------------------------


async def mark_invalid(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    key_id: UUID,
    reason: str,
    refused_key_id: str | None = None,
    now: datetime | None = None,
) -> ApiKey:
    """CMS refused the token exchange (403): the key was rotated, expired or deactivated.

    `refused_key_id` is the CMS key ID that was refused: when the RP has entered a newer
    version meanwhile, the refusal was of the old one, and the key stays as it is."""
    now = now or utcnow()
    key = await repository.lock_key(session, tenant_id, key_id)
    if await _superseded(session, key, refused_key_id):
        log.info("a replaced key version was refused; the key is left as it is", key_id=str(key.id))
        return key
    key.last_failure_at, key.last_failure_reason = now, reason[:500]
    if key.status in {KeyStatus.ACTIVE, KeyStatus.SUSPENDED}:
        key.status, key.status_reason = KeyStatus.NEEDS_REPLACEMENT, reason[:500]
        await session.flush()
        await _change(session, Actor.system("ctm"), key, "key.invalid", {"reason": reason[:200]})
    return key


async def mark_access_lost(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    key_id: UUID,
    contract: str,
    reason: str,
    refused_key_id: str | None = None,
    now: datetime | None = None,
) -> ApiKeyContract | None:
    """CMS answered 403 for one contract: mark that mapping; the key's others carry on.
    Nothing is marked when the refusal was of a key version replaced meanwhile
    (`refused_key_id`, as for `mark_invalid`), or when the contract was unmapped meanwhile:
    then None."""
    now = now or utcnow()
    key = await repository.lock_key(session, tenant_id, key_id)
    if await _superseded(session, key, refused_key_id):
        log.info("a replaced key version was refused a contract", key_id=str(key.id))
        return None
    number = normalise_contract(contract, field="contract")
    link = await _mapping(session, key, number)
    if link is None:
        log.info("a contract unmapped meanwhile was refused", key_id=str(key.id), contract=number)
        return None
    if link.access_lost_at is None:
        link.access_lost_at, link.access_lost_reason = now, reason[:500]
        await session.flush()
        next_action = f"Request a new key for contract {number} in HPMS"
        details = {"contract": number, "reason": reason[:200], "next_action": next_action}
        await _change(session, Actor.system("ctm"), key, "key.access_lost", details)
    return link


async def restore_access(
    session: AsyncSession, actor: Principal, *, key_id: UUID, contract: str
) -> ApiKey:
    """The RP (or a tenant admin) says CMS serves the contract to the key again (HPMS
    fixed the association): the access-lost mark goes, its alert resolves, and the pair is
    synced at once, which marks it lost again if CMS still refuses it."""
    key = await repository.lock_key(session, actor.tenant, key_id)
    _require_rp_or_admin(key, actor, "restore a contract's access for")
    number = normalise_contract(contract, field="contract")
    if key.status not in (KeyStatus.ACTIVE, KeyStatus.SUSPENDED):
        raise Conflict(
            f"the key is {key.status.value}: no contract of it is synced again", field="status"
        )
    link = await _mapping(session, key, number)
    if link is None:
        raise NotFound("contract", number, detail=f"the key does not cover contract {number}")
    if link.access_lost_at is None:
        raise Conflict(f"contract: access to {number} is not marked lost", field="contract")
    await _restore(session, Actor.of_principal(actor), key, link, number)
    return key


async def restore_access_served(
    session: AsyncSession, *, tenant_id: TenantID, key_id: UUID, contract: str
) -> bool:
    """CMS served the contract to the key again (the daily access probe saw it): as
    `restore_access`, by the system. False when nothing was to restore any more (the mark
    was cleared, the mapping removed or the key retired meanwhile)."""
    key = await repository.lock_key(session, tenant_id, key_id)
    link = await _mapping(session, key, contract)
    if link is None or link.access_lost_at is None or not key.is_usable:
        return False
    await _restore(session, Actor.system("access-probe"), key, link, contract)
    return True


async def _restore(
    session: AsyncSession, actor: Actor, key: ApiKey, link: ApiKeyContract, number: str
) -> None:
    """The access-lost mark goes (its alert resolves with the event) and the pair syncs."""
    from hub.syncs.service import sync_job  # syncs build on keys, not the reverse

    link.access_lost_at, link.access_lost_reason = None, None
    await session.flush()
    await _change(session, actor, key, "key.access_restored", {"contract": number})
    if key.is_usable:  # a suspended key's pairs sync again once it is resumed
        jobs.enqueue(session, sync_job(TenantID(key.tenant_id), key.id, number, "manual"))


async def _mapping(session: AsyncSession, key: ApiKey, number: str) -> ApiKeyContract | None:
    """The key's mapping to contract `number`, if it covers it."""
    for link, contract in await repository.key_contracts(
        session, TenantID(key.tenant_id), [key.id]
    ):
        if contract.number == number:
            return link
    return None


async def _superseded(session: AsyncSession, key: ApiKey, refused_key_id: str | None) -> bool:
    """Whether CMS refused a version of the key that is no longer its current one."""
    if refused_key_id is None:
        return False
    version = await repository.current_version(session, key)
    return version is not None and version.key_id != refused_key_id


MEMBER_LEFT = "the responsible party left the tenant; register a new key"
USER_DEACTIVATED = (
    "the responsible party's account was deactivated; register a new key (or, if they "
    "return, they rotate it)"
)


async def handle_member_left(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    user_id: UUID,
    actor: Actor,
    reason: str = MEMBER_LEFT,
) -> list[ApiKey]:
    """A member left (or their account was deactivated): keys they are RP of need replacing
    (a key never passes to someone else); keys they were a designee of lose them, with
    their key-bound tokens."""
    found = (
        await session.scalars(
            repository.keys(tenant_id).where(
                ApiKey.responsible_party_id == user_id,
                ApiKey.status.in_([KeyStatus.ACTIVE, KeyStatus.SUSPENDED]),
            )
        )
    ).all()
    for key in found:
        key.status = KeyStatus.NEEDS_REPLACEMENT
        key.status_reason = reason
        await session.flush()
        details = {"responsible_party": str(user_id)}
        if reason != MEMBER_LEFT:
            details["reason"] = reason
        await _change(session, actor, key, "key.orphaned", details)
    await _drop_designee(session, tenant_id=tenant_id, user_id=user_id, actor=actor)
    return list(found)


async def _drop_designee(
    session: AsyncSession, *, tenant_id: TenantID, user_id: UUID, actor: Actor
) -> None:
    """Take a departing member off every key's designees (were they to rejoin, nothing
    would come back unasked), revoking their tokens bound to those keys."""
    now = utcnow()
    for designee in (
        await session.scalars(
            select(ApiKeyDesignee).where(
                ApiKeyDesignee.tenant_id == tenant_id, ApiKeyDesignee.user_id == user_id
            )
        )
    ).all():
        key = await repository.lock_key(session, tenant_id, designee.api_key_id)
        await session.delete(designee)
        await session.flush()
        revoked = await _revoke_key_tokens(session, key, now, users={user_id})
        left = await repository.designees(session, tenant_id, [key.id])
        await _change(
            session, actor, key, "key.designees_changed",
            {"users": [str(d.user_id) for d in left if d.user_id is not None],
             "tokens": [str(d.api_token_id) for d in left if d.api_token_id is not None],
             "tokens_revoked": revoked},
        )  # fmt: skip


# Contracts and designees -----------------------------------------------------------------


async def add_contract(session: AsyncSession, actor: Principal, *, number: str) -> Contract:
    return await register_contract(
        session, tenant_id=actor.tenant, number=number, actor=Actor.of_principal(actor)
    )


async def register_contract(
    session: AsyncSession, *, tenant_id: TenantID, number: str, actor: Actor
) -> Contract:
    number = normalise_contract(number, field="number")
    if await repository.contracts_by_number(session, tenant_id, [number]):
        raise Conflict(f"number: contract {number} is already registered", field="number")
    contract = Contract(tenant_id=tenant_id, number=number)
    session.add(contract)
    await session.flush()
    await audit(
        session, actor=actor, action="contract.added", tenant_id=tenant_id,
        target_type="contract", target_id=contract.id, details={"number": number},
    )  # fmt: skip
    return contract


async def set_contracts(
    session: AsyncSession, actor: Principal, *, key_id: UUID, numbers: Sequence[str]
) -> ApiKey:
    """Replace a key's contract mapping (what CMS associated with the key). A contract kept
    keeps its access-lost mark."""
    key = await repository.lock_key(session, actor.tenant, key_id)
    if key.status is KeyStatus.DEACTIVATED:
        raise Conflict("a deactivated key's contracts are history", field="status")
    wanted = normalise_contracts(numbers)
    if not wanted:
        raise Invalid("contracts", "name at least one contract number the key covers")
    contracts = await _contracts_for(session, actor.tenant, wanted)
    existing = {
        c.number: link
        for link, c in await repository.key_contracts(session, actor.tenant, [key.id])
    }
    for number, link in existing.items():
        if number not in wanted:
            await session.delete(link)
    for contract in contracts:
        if contract.number not in existing:
            session.add(
                ApiKeyContract(tenant_id=actor.tenant, api_key_id=key.id, contract_id=contract.id)
            )
    await session.flush()
    await _change(
        session, Actor.of_principal(actor), key, "key.contracts_changed",
        {"before": sorted(existing), "after": sorted(wanted)},
    )  # fmt: skip
    return key


async def set_designees(
    session: AsyncSession,
    actor: Principal,
    *,
    key_id: UUID,
    users: Sequence[UUID],
    tokens: Sequence[UUID],
) -> ApiKey:
    """The RP names the members and API tokens that may act with the key through the hub.
    A member taken off the list loses the key-bound tokens they hold for it at once."""
    key = await repository.lock_key(session, actor.tenant, key_id)
    _require_rp(key, actor, "name designees for")
    if key.status is KeyStatus.DEACTIVATED:
        raise Conflict("a deactivated key acts for no one: it has no designees", field="status")
    for user_id in users:
        if await auth_repository.find_member_by_user(session, actor.tenant, user_id) is None:
            raise Invalid("users", f"{user_id} is not a member of this tenant")
    for token_id in tokens:
        token = await session.scalar(
            auth_repository.tokens(actor.tenant).where(
                ApiToken.id == token_id, ApiToken.revoked_at.is_(None)
            )
        )
        if token is None:
            raise Invalid("tokens", f"{token_id} is not a live API token of this tenant")
    before = await repository.designees(session, actor.tenant, [key.id])
    removed = {d.user_id for d in before if d.user_id is not None} - set(users)
    for designee in before:
        await session.delete(designee)
    await session.flush()
    # The RP's own key-bound tokens stay: they hold the key as its RP, not as a designee.
    revoked = await _revoke_key_tokens(
        session, key, utcnow(), users=removed - {key.responsible_party_id}
    )
    for user_id in dict.fromkeys(users):
        session.add(ApiKeyDesignee(tenant_id=actor.tenant, api_key_id=key.id, user_id=user_id))
    for token_id in dict.fromkeys(tokens):
        session.add(
            ApiKeyDesignee(tenant_id=actor.tenant, api_key_id=key.id, api_token_id=token_id)
        )
    await session.flush()
    await _change(
        session, Actor.of_principal(actor), key, "key.designees_changed",
        {"users": [str(u) for u in users], "tokens": [str(t) for t in tokens],
         "tokens_revoked": revoked},
    )  # fmt: skip
    return key


# Using a key -----------------------------------------------------------------------------


async def credentials_for(session: AsyncSession, key: ApiKey) -> CtmCredentials:
    """What the CTM client needs to act with `key`. Refuses a key that is not active, so a
    suspended, compromised or invalid key never reaches CMS."""
    if not key.is_usable:
        raise KeyNotUsable(f"key {key.id} is {key.status.value}; it is not used", field="status")
    version = await repository.current_version(session, key)
    if version is None or version.secret is None:
        raise KeyNotUsable(f"key {key.id} has no usable secret", field="status")
    links = await repository.key_contracts(session, key.tenant_id, [key.id])
    cipher = await crypto.cipher_for(session, key.tenant_id)
    return CtmCredentials(
        environment=CtmEnvironment(key.environment.value),
        key_id=version.key_id,
        hpms_user_id=key.hpms_user_id,
        version_id=str(version.id),
        secret=_SealedSecret(cipher, version.secret, version.id),
        contracts=frozenset(c.number for link, c in links if link.access_lost_at is None),
    )


async def record_use(
    session: AsyncSession, key: ApiKey, *, failure: str | None = None, now: datetime | None = None
) -> None:
    now = now or utcnow()
    if failure is None:
        key.last_used_at = now
    else:
        key.last_failure_at, key.last_failure_reason = now, failure[:500]


async def retire_versions(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Destroy the secrets of versions whose grace period after a rotation has passed."""
    now = now or utcnow()
    due = (
        await session.scalars(
            select(ApiKeyVersion)
            .where(ApiKeyVersion.state == VersionState.RETIRING, ApiKeyVersion.retire_after <= now)
            .limit(500)
        )
    ).all()
    for version in due:
        _destroy_secret(version, now)
    return len(due)


# Helpers ---------------------------------------------------------------------------------


async def _rp_gone(session: AsyncSession, key: ApiKey) -> bool:
    """Whether the key's responsible party is no longer a member of its tenant, or no longer
    an active user: nobody else may ever act as them, so the key's secrets could otherwise
    never be destroyed."""
    active = await session.scalar(
        select(User.is_active)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == key.tenant_id, User.id == key.responsible_party_id)
    )
    return not active


@dataclass(frozen=True, slots=True)
class KeyActions:
    """What `actor` may do to a key now: each flag is exactly the check its service
    function makes (scopes of the route aside), so a page offers no action it would refuse
    and hides none it would allow."""

    rotate: bool
    deactivate: bool
    suspend: bool
    resume: bool
    compromise: bool
    restore: bool
    designees: bool
    set_contracts: bool


async def actions_for(session: AsyncSession, actor: Principal, key: ApiKey) -> KeyActions:
    is_rp = key.responsible_party_id == actor.user_id
    rp_or_admin = is_rp or actor.is_tenant_admin
    live = key.status is not KeyStatus.DEACTIVATED
    return KeyActions(
        rotate=is_rp and key.status not in {KeyStatus.COMPROMISED, KeyStatus.DEACTIVATED},
        deactivate=live
        and (is_rp or (auth.manages_tokens(actor) and await _rp_gone(session, key))),
        suspend=rp_or_admin and key.status is KeyStatus.ACTIVE,
        resume=rp_or_admin and key.status is KeyStatus.SUSPENDED,
        compromise=key.status not in {KeyStatus.COMPROMISED, KeyStatus.DEACTIVATED},
        restore=rp_or_admin and key.status in {KeyStatus.ACTIVE, KeyStatus.SUSPENDED},
        designees=is_rp and live,
        set_contracts=actor.has_scope(Scope.TENANT_ADMIN) and live,
    )


async def replaceable_keys(session: AsyncSession, actor: Principal) -> list[ApiKey]:
    """The tenant's keys a new key may replace (compromised, deactivated or invalid)."""
    found = await repository.list_keys(session, actor.tenant)
    return [k for k in found if k.status in REPLACEABLE]


def _require_rp(key: ApiKey, actor: Principal, verb: str) -> None:
    if key.responsible_party_id != actor.user_id:
        raise Forbidden(f"only the key's responsible party may {verb} it")


def _require_rp_or_admin(key: ApiKey, actor: Principal, verb: str) -> None:
    if key.responsible_party_id != actor.user_id and not actor.is_tenant_admin:
        raise Forbidden(f"only the key's responsible party or a tenant admin may {verb} it")


def _destroy_secret(version: ApiKeyVersion, now: datetime) -> int:
    """Drop the sealed secret itself (not a flag): nothing is left to open."""
    had = version.secret is not None
    version.secret = None
    version.state = VersionState.RETIRED
    version.retire_after = None
    if had:
        version.secret_destroyed_at = now
    return int(had)


async def _revoke_key_tokens(
    session: AsyncSession, key: ApiKey, now: datetime, *, users: Collection[UUID] | None = None
) -> int:
    """Revoke the hub tokens bound to `key` (only those of `users`, when given)."""
    if users is not None and not users:
        return 0
    statement = update(ApiToken).where(ApiToken.api_key_id == key.id, ApiToken.revoked_at.is_(None))
    if users is not None:
        statement = statement.where(ApiToken.user_id.in_(users))
    result = await session.execute(
        statement.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _change(
    session: AsyncSession, actor: Actor, key: ApiKey, action: str, details: dict[str, Any]
) -> None:
    """Audit a key's state change and emit its event, in the caller's transaction."""
    tenant_id = TenantID(key.tenant_id)
    await audit(
        session, actor=actor, action=action, tenant_id=tenant_id,
        target_type="api_key", target_id=key.id, details=details,
    )  # fmt: skip
    payload = {
        "key": str(key.id),
        "environment": key.environment.value,
        "status": key.status.value,
        **details,
    }
    if "contract" not in payload and "contracts" not in payload:
        # The contracts the key serves: an endpoint filtered to some contracts receives the
        # events of the keys that serve them, not every key's.
        mapped = await repository.key_contracts(session, tenant_id, [key.id])
        payload["contracts"] = [contract.number for _, contract in mapped]
    record_event(session, tenant_id, action, payload)
    # Alerts this change raises or clears, in the same transaction (hub/alerts/rules.py).
    await alert_rules.on_key_change(session, key, action, details)


def expected_rotation(now: datetime, days: int) -> date:
    """A new key's (or version's) expected rotation date, from the tenant's default interval."""
    return (now + timedelta(days=days)).date()
