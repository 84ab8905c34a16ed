"""Who may act with a key through the hub: key-bound tokens for the key's RP and the
members it designates, and the choice of key for a gateway call with the checks that allow
it. Designation is read at every call, so a designee taken off the list is refused at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import repository as auth_repository
from hub.auth import service as auth
from hub.auth.models import ApiToken, Scope
from hub.auth.principal import Principal
from hub.core.errors import Forbidden, Invalid, NotFound
from hub.core.ids import TenantID
from hub.core.logging import redact_value
from hub.ctm import modeled
from hub.ctm.credentials import CtmCredentials
from hub.keys import repository as keys_repository
from hub.keys import service as keys
from hub.keys.models import ApiKey, ApiKeyContract, ApiKeyVersion, Contract, Environment

# A key-bound token always expires: this long, unless asked otherwise.
DEFAULT_TOKEN_LIFETIME = "12h"  # noqa: S105 - a duration


# Key-bound tokens ------------------------------------------------------------------------


async def issue_key_token(
    session: AsyncSession,
    actor: Principal,
    *,
    key_id: UUID,
    name: str,
    expires_in: str | None,
) -> auth.IssuedToken:
    """A token that acts with this one key through the gateway (scope `ctm:gateway` only),
    for the key's RP or a member it designates; it ends no later than the calling token
    and is revoked with the key, or when its holder stops being a designee."""
    # Locked: a compromise (which revokes the key's tokens) waits for this one, or it waits.
    key = await keys_repository.lock_key(session, actor.tenant, key_id)
    bound = await _bound_key(session, actor)
    if bound is not None and bound != key.id:
        raise Forbidden(f"this token is bound to key {bound}; it acts only with that key")
    if not await _is_holder(session, actor, key, token_designees=False):
        raise Forbidden("only the key's responsible party or a member it designates may do this")
    _require_active(key)
    return await auth.issue_caller_token(
        session, actor, scopes=frozenset({Scope.CTM_GATEWAY}), name=name,
        expires_in=auth.parse_duration(expires_in or DEFAULT_TOKEN_LIFETIME), api_key_id=key.id,
    )  # fmt: skip


# Who may use which key -------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A gateway call allowed to act with `key` on `contracts`."""

    tenant_id: TenantID
    key_id: UUID
    environment: Environment
    credentials: CtmCredentials = field(repr=False)
    contracts: tuple[str, ...]

    @property
    def slot(self) -> str:
        return str(self.key_id)


async def _bound_key(session: AsyncSession, actor: Principal) -> UUID | None:
    """The key the calling token is bound to, if it is a key-bound token."""
    if actor.token_id is None:
        return None
    return (await auth_repository.get_token(session, actor.tenant, actor.token_id)).api_key_id


async def _is_holder(
    session: AsyncSession, actor: Principal, key: ApiKey, *, token_designees: bool
) -> bool:
    """The key's RP, a member it designates, or (with `token_designees`) a designated token.
    Read at every call: a designee taken off the list is refused at once."""
    if key.responsible_party_id == actor.user_id:
        return True
    for designee in await keys_repository.designees(session, actor.tenant, [key.id]):
        if designee.user_id is not None and designee.user_id == actor.user_id:
            return True
        by_token = token_designees and actor.token_id is not None
        if by_token and designee.api_token_id == actor.token_id:
            return True
    return False


def _require_active(key: ApiKey) -> None:
    if not key.is_usable:
        why = f" ({key.status_reason})" if key.status_reason else ""
        raise keys.KeyNotUsable(
            f"key {key.id} is {key.status.value}: it is not used{why}", field="status"
        )


async def require_keys_in(
    session: AsyncSession, tenant_id: TenantID, environment: Environment
) -> None:
    """404 for a tenant without any key in the environment (nothing to reach there)."""
    found = await session.scalar(
        keys_repository.keys(tenant_id).where(ApiKey.environment == environment).limit(1)
    )
    if found is None:
        raise NotFound(
            "api_key", environment.value, detail=f"this tenant has no {environment.value} key"
        )


async def _key_by_consumer_id(
    session: AsyncSession, tenant_id: TenantID, environment: Environment, consumer_id: str
) -> ApiKey:
    """The tenant's key in `environment` whose CMS key ID (any version's) is `consumer_id`;
    another tenant's key ID is as unknown as one never issued."""
    key = await session.scalar(
        keys_repository.keys(tenant_id)
        .join(ApiKeyVersion, ApiKeyVersion.api_key_id == ApiKey.id)
        .where(ApiKey.environment == environment, ApiKeyVersion.key_id == consumer_id.strip())
        .limit(1)
    )
    if key is None:
        raise NotFound(
            "api_key",
            consumer_id,
            detail=f"{modeled.CONSUMER_ID_HEADER}: no {environment.value} key of this tenant "
            f"has key ID {str(redact_value(consumer_id.strip()))[:100]!r}",
        )
    return key


async def _key_for_contract(
    session: AsyncSession, tenant_id: TenantID, environment: Environment, contract: str
) -> ApiKey:
    """The key that serves (environment, contract): the oldest active key whose mapping has
    not lost access. Failing that, the key whose refusal explains why none does (an active
    key that lost access: 403 later; an inactive one: 409 later)."""
    rows = (
        await session.execute(
            keys_repository.keys(tenant_id)
            .add_columns(ApiKeyContract.access_lost_at)
            .join(ApiKeyContract, ApiKeyContract.api_key_id == ApiKey.id)
            .join(Contract, Contract.id == ApiKeyContract.contract_id)
            .where(ApiKey.environment == environment, Contract.number == contract)
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    ).all()
    ranked = sorted(
        rows, key=lambda row: (not row[0].is_usable, row[1] is not None)
    )  # stable: oldest first within each rank
    if not ranked:
        raise Forbidden(f"contract {contract}: no {environment.value} key of this tenant covers it")
    key: ApiKey = ranked[0][0]
    return key


async def _choose_key(
    session: AsyncSession,
    actor: Principal,
    *,
    environment: Environment,
    consumer_id: str | None,
    contracts: Sequence[str],
    bound: UUID | None,
) -> ApiKey:
    if consumer_id is not None and consumer_id.strip():
        return await _key_by_consumer_id(session, actor.tenant, environment, consumer_id)
    if bound is not None:  # a key-bound token names its key
        return await keys_repository.get_key(session, actor.tenant, bound)
    chosen = {
        key.id: key
        for key in [
            await _key_for_contract(session, actor.tenant, environment, number)
            for number in contracts
        ]
    }
    if len(chosen) > 1:
        raise Invalid(
            "file",
            f"its contracts are served by different keys; send one file per key, or name "
            f"the key in {modeled.CONSUMER_ID_HEADER}",
        )
    return next(iter(chosen.values()))


async def grant(
    session: AsyncSession,
    actor: Principal,
    *,
    environment: Environment,
    consumer_id: str | None,
    contracts: Sequence[str],
    rows: Mapping[str, int] | None = None,
) -> Grant:
    """Choose the key, and check the caller may act with it on `contracts`: its RP or a
    designee (404 for a key of another tenant), a key-bound token only with its own key;
    the key active (409); each contract mapped to it (403; with `rows`, an upload's first
    row of each contract, a 400 naming the row) and its access not lost (403)."""
    bound = await _bound_key(session, actor)
    key = await _choose_key(
        session, actor, environment=environment, consumer_id=consumer_id, contracts=contracts,
        bound=bound,
    )  # fmt: skip
    if key.environment is not environment:  # only a key-bound token's own key can be
        raise Forbidden(f"this token is bound to key {key.id}, a {key.environment.value} key")
    if bound is not None and bound != key.id:
        raise Forbidden(f"this token is bound to key {bound}; it acts only with that key")
    if not await _is_holder(session, actor, key, token_designees=bound is None):
        raise Forbidden(
            f"key {key.id}: only its responsible party and the members and tokens it "
            "designates act with it through the gateway"
        )
    _require_active(key)
    mapped = {
        contract.number: link
        for link, contract in await keys_repository.key_contracts(session, actor.tenant, [key.id])
    }
    for number in contracts:
        link = mapped.get(number)
        if link is None and rows is not None:
            raise Invalid("file", f"row {rows[number]}: contract {number} is not covered by key "
                          f"{key.id}")  # fmt: skip
        if link is None:
            raise Forbidden(f"contract {number}: key {key.id} does not cover it")
        if link.access_lost_at is not None:
            raise Forbidden(
                f"contract {number}: CMS refused key {key.id} access to it "
                f"({link.access_lost_reason or 'access lost'}); request a new key in HPMS"
            )
    credentials = await keys.credentials_for(session, key)
    return Grant(TenantID(key.tenant_id), key.id, key.environment, credentials, tuple(contracts))


# The token call, for clients written against CMS's own API ------------------------------

# What the token call answers as the lifetime of a hub token that never expires: clients
# exchange again at 80 % of it, as they would with CMS's 30-minute tokens.
NEVER_EXPIRING_LIFETIME = 1800


@dataclass(frozen=True)
class Exchanged:
    principal: Principal
    key_id: UUID
    expires_in: int


async def exchange(
    session: AsyncSession, *, environment: Environment, key_id: str, secret: str, now: datetime
) -> Exchanged:
    """CMS's token call, answered for the gateway: `keySecret` is a hub token (a key-bound
    token, or a designee's token holding `ctm:gateway`) and `keyId` the CMS key ID of a key
    it may act with. The hub token itself is the access token: the key's secret is never
    used here, nor a CMS token handed out. A refusal is CMS's 403 ("the key or secret is
    not valid"); a key ID this tenant has no key for (another tenant's too) is a 404."""
    actor = await auth.authenticate(session, secret.strip(), now=now)
    if actor is None or Scope.CTM_GATEWAY not in actor.scopes:
        raise Forbidden("keySecret: not a hub token holding ctm:gateway (or it is revoked)")
    if not key_id.strip():
        raise Invalid("keyId", "must name the CMS key ID of the key to act with")
    try:  # another tenant's key ID is as unknown as one never issued (404)
        given = await grant(
            session, actor, environment=environment, consumer_id=key_id, contracts=()
        )
    except keys.KeyNotUsable as refused:  # CMS, too, answers 403 for a key no longer usable
        raise Forbidden(f"keyId: {refused.detail}") from None
    expires = await session.scalar(select(ApiToken.expires_at).where(ApiToken.id == actor.token_id))
    lifetime = NEVER_EXPIRING_LIFETIME if expires is None else int((expires - now).total_seconds())
    return Exchanged(actor, given.key_id, max(1, lifetime))
