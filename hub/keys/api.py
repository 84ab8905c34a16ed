"""/api/v1/keys and /api/v1/contracts: the key vault's HTTP face. No response has a secret."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.service import Actor
from hub.auth.guards import scope
from hub.auth.models import Scope, User
from hub.auth.principal import Principal
from hub.core.errors import documented
from hub.core.ids import TenantID
from hub.keys import repository, service
from hub.keys.models import ApiKey
from hub.keys.schemas import (
    ContractCreate,
    ContractLink,
    ContractView,
    KeyCompromise,
    KeyContractsPut,
    KeyCreate,
    KeyDesigneesPut,
    KeyRotate,
    KeyView,
    ResponsibleParty,
    ServingKey,
    TechnicalPoc,
    VersionView,
)


def _verifier(state: State) -> service.KeyVerifier | None:
    verifier: service.KeyVerifier | None = state.get("ctm_verifier")
    return verifier


def _grace(state: State) -> timedelta:
    return timedelta(hours=state.settings.key_version_grace_hours)


async def key_views(
    session: AsyncSession, tenant_id: TenantID, found: Sequence[ApiKey]
) -> list[KeyView]:
    """Views of keys, loaded in four queries whatever their number."""
    ids = [k.id for k in found]
    links: dict[UUID, list[ContractLink]] = defaultdict(list)
    for link, contract in await repository.key_contracts(session, tenant_id, ids):
        links[link.api_key_id].append(
            ContractLink(contract.number, link.access_lost_at, link.access_lost_reason)
        )
    versions: dict[UUID, list[VersionView]] = defaultdict(list)
    for v in await repository.key_versions(session, tenant_id, ids):
        versions[v.api_key_id].append(
            VersionView(
                v.key_id,
                v.state.value,
                v.created_at,
                v.verified_at,
                v.retire_after,
                v.secret_destroyed_at,
            )
        )
    designated: dict[UUID, KeyDesigneesPut] = defaultdict(KeyDesigneesPut)
    for d in await repository.designees(session, tenant_id, ids):
        if d.user_id is not None:
            designated[d.api_key_id].users.append(d.user_id)
        if d.api_token_id is not None:
            designated[d.api_key_id].tokens.append(d.api_token_id)
    rp_ids = {k.responsible_party_id for k in found}
    people = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(rp_ids)))}
    views = []
    for key in found:
        current = next((v for v in versions[key.id] if v.state == "current"), None)
        rp = people.get(key.responsible_party_id)
        views.append(
            KeyView(
                id=key.id,
                key_id=current.key_id
                if current
                else (versions[key.id][-1].key_id if versions[key.id] else None),
                environment=key.environment.value,
                label=key.label,
                status=key.status.value,
                status_reason=key.status_reason,
                contracts=links[key.id],
                responsible_party=ResponsibleParty(
                    key.responsible_party_id, rp.email if rp else "", key.hpms_user_id
                ),
                technical_poc=TechnicalPoc(key.technical_poc_name, key.technical_poc_email),
                designees=designated[key.id],
                versions=versions[key.id],
                expected_rotation_on=key.expected_rotation_on,
                last_used_at=key.last_used_at,
                last_failure_at=key.last_failure_at,
                last_failure_reason=key.last_failure_reason,
                compromised_at=key.compromised_at,
                deactivated_at=key.deactivated_at,
                replaces=key.replaces_id,
                created_at=key.created_at,
                updated_at=key.updated_at,
            )
        )
    return views


async def _view(session: AsyncSession, principal: Principal, key: ApiKey) -> KeyView:
    return (await key_views(session, principal.tenant, [key]))[0]


class KeyController(Controller):
    path = "/keys"
    tags = ["keys"]

    @get("/", opt=scope(Scope.KEYS_READ), responses=documented(401, 403))
    async def list_keys(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> list[KeyView]:
        return await key_views(
            db_session, principal.tenant, await repository.list_keys(db_session, principal.tenant)
        )

    @get("/{key_id:uuid}", opt=scope(Scope.KEYS_READ), responses=documented(401, 403, 404))
    async def get_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> KeyView:
        return await _view(
            db_session, principal, await repository.get_key(db_session, principal.tenant, key_id)
        )

    @post("/", opt=scope(Scope.KEYS_MANAGE), responses=documented(400, 401, 403, 404, 409, 503))
    async def create_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        data: JSONBody[KeyCreate],
    ) -> KeyView:
        """Register a key; the caller becomes its responsible party. `verify` (default true)
        exchanges it for a token first: a refused key stores nothing."""
        key = await service.create_key(db_session, principal, data=data, verifier=_verifier(state))
        return await _view(db_session, principal, key)

    @post(
        "/{key_id:uuid}/rotate",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(400, 401, 403, 404, 409, 503),
    )
    async def rotate_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        key_id: FromPath[UUID],
        data: JSONBody[KeyRotate],
    ) -> KeyView:
        key = await service.rotate_key(
            db_session,
            principal,
            key_id=key_id,
            data=data,
            verifier=_verifier(state),
            grace=_grace(state),
        )
        return await _view(db_session, principal, key)

    @post(
        "/{key_id:uuid}/compromise",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def report_compromise(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
        data: JSONBody[KeyCompromise],
    ) -> KeyView:
        key = await service.report_compromise(
            db_session, tenant_id=principal.tenant, key_id=key_id,
            actor=Actor.of_principal(principal), reason=data.reason,
        )  # fmt: skip
        return await _view(db_session, principal, key)

    @post(
        "/{key_id:uuid}/deactivate",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(401, 403, 404, 409),
    )
    async def deactivate_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> KeyView:
        key = await service.deactivate_key(db_session, principal, key_id=key_id)
        return await _view(db_session, principal, key)

    @post(
        "/{key_id:uuid}/suspend",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(401, 403, 404, 409),
    )
    async def suspend_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> KeyView:
        return await _view(
            db_session, principal, await service.suspend_key(db_session, principal, key_id=key_id)
        )

    @post(
        "/{key_id:uuid}/resume",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(401, 403, 404, 409),
    )
    async def resume_key(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> KeyView:
        return await _view(
            db_session, principal, await service.resume_key(db_session, principal, key_id=key_id)
        )

    @put(
        "/{key_id:uuid}/contracts",
        opt=scope(Scope.TENANT_ADMIN),
        responses=documented(400, 401, 403, 404, 409),
    )
    async def set_contracts(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
        data: JSONBody[KeyContractsPut],
    ) -> KeyView:
        key = await service.set_contracts(
            db_session, principal, key_id=key_id, numbers=data.contracts
        )
        return await _view(db_session, principal, key)

    @post(
        "/{key_id:uuid}/contracts/{contract:str}/restore",
        opt=scope(Scope.KEYS_MANAGE),
        status_code=200,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def restore_access(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
        contract: FromPath[str],
    ) -> KeyView:
        """CMS serves the contract to the key again: clear its access-lost mark and sync the
        pair now (a 403 marks it lost again). The RP or a tenant admin."""
        key = await service.restore_access(db_session, principal, key_id=key_id, contract=contract)
        return await _view(db_session, principal, key)

    @put(
        "/{key_id:uuid}/designees",
        opt=scope(Scope.KEYS_MANAGE),
        responses=documented(400, 401, 403, 404),
    )
    async def set_designees(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
        data: JSONBody[KeyDesigneesPut],
    ) -> KeyView:
        key = await service.set_designees(
            db_session, principal, key_id=key_id, users=data.users, tokens=data.tokens
        )
        return await _view(db_session, principal, key)


class ContractController(Controller):
    path = "/contracts"
    tags = ["keys"]

    @get("/", opt=scope(Scope.KEYS_READ), responses=documented(401, 403))
    async def list_contracts(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> list[ContractView]:
        """Each contract with the key that serves it per environment: the oldest active key
        mapping it (access not lost); other active keys claiming it are listed as conflicts."""
        claims: dict[tuple[str, str], list[UUID]] = defaultdict(list)
        for number, environment, key in await repository.active_coverage(
            db_session, principal.tenant
        ):
            claims[(number, environment.value)].append(key.id)
        views = []
        for contract in await repository.list_contracts(db_session, principal.tenant):
            serving = [
                ServingKey(environment, keys[0], keys[1:])
                for (number, environment), keys in sorted(claims.items())
                if number == contract.number
            ]
            views.append(ContractView(contract.id, contract.number, serving, contract.created_at))
        return views

    @post("/", opt=scope(Scope.TENANT_ADMIN), responses=documented(400, 401, 403, 409))
    async def add_contract(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[ContractCreate],
    ) -> ContractView:
        contract = await service.add_contract(db_session, principal, number=data.number)
        return ContractView(contract.id, contract.number, [], contract.created_at)
