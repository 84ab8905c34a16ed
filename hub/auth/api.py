"""/api/v1: who am I, the tenant's members, and API tokens."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import repository, service
from hub.auth.guards import ANY_SCOPE, scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.auth.schemas import Me, MemberView, TokenCreate, TokenCreated, TokenView
from hub.core.errors import NotFound, documented


class AuthController(Controller):
    path = "/"
    tags = ["auth"]

    @get("/me", opt=scope(ANY_SCOPE), responses=documented(401))
    async def me(self, principal: NamedDependency[Principal]) -> Me:
        return Me(
            user_id=principal.user_id,
            email=principal.email,
            tenant_id=principal.tenant_id,
            role=principal.role.value if principal.role else None,
            scopes=sorted(s.value for s in principal.scopes),
            is_operator=principal.is_operator,
        )

    @get("/members", opt=scope(Scope.TENANT_ADMIN), responses=documented(401, 403))
    async def list_members(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> list[MemberView]:
        members = await repository.list_members(db_session, principal.tenant)
        return [MemberView.of(m) for m in members]

    @get(
        "/members/{membership_id:uuid}",
        opt=scope(Scope.TENANT_ADMIN),
        responses=documented(401, 403, 404),
    )
    async def get_member(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        membership_id: FromPath[UUID],
    ) -> MemberView:
        return MemberView.of(
            await repository.get_member(db_session, principal.tenant, membership_id)
        )

    @delete(
        "/members/{membership_id:uuid}",
        opt=scope(Scope.TENANT_ADMIN),
        status_code=200,
        responses=documented(401, 403, 404, 409),
    )
    async def remove_member(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        membership_id: FromPath[UUID],
    ) -> MemberView:
        """Remove a member; keys they hold as responsible party then need replacing."""
        member = await repository.get_member(db_session, principal.tenant, membership_id)
        view = MemberView.of(member)
        await service.remove_member(db_session, principal, membership_id=membership_id)
        return view

    @get("/tokens", opt=scope(ANY_SCOPE), responses=documented(401, 403))
    async def list_tokens(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> list[TokenView]:
        # Tenant admins see every token of the tenant; others see their own.
        found = await service.list_visible_tokens(db_session, principal)
        return [TokenView.of(t) for t in found]

    @get("/tokens/{token_id:uuid}", opt=scope(ANY_SCOPE), responses=documented(401, 403, 404))
    async def get_token(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        token_id: FromPath[UUID],
    ) -> TokenView:
        token = await repository.get_token(db_session, principal.tenant, token_id)
        if token.user_id != principal.user_id and not service.manages_tokens(principal):
            # Another member's token is none of this caller's business; do not confirm it.
            raise NotFound("api_token", token_id)
        return TokenView.of(token)

    @post("/tokens", opt=scope(ANY_SCOPE), responses=documented(400, 401, 403))
    async def create_token(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[TokenCreate],
    ) -> TokenCreated:
        """Mint a token for the caller, with at most the scopes the calling token holds (and
        its role allows), ending no later than the calling token."""
        issued = await service.issue_caller_token(
            db_session,
            principal,
            scopes=service.parse_scopes(data.scopes),
            name=data.name,
            expires_in=service.parse_duration(data.expires_in) if data.expires_in else None,
        )
        return TokenCreated(token=TokenView.of(issued.token), secret=issued.plaintext)

    @delete(
        "/tokens/{token_id:uuid}",
        opt=scope(ANY_SCOPE),
        status_code=200,
        responses=documented(401, 403, 404),
    )
    async def revoke_token(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        token_id: FromPath[UUID],
    ) -> TokenView:
        return TokenView.of(await service.revoke_token(db_session, principal, token_id=token_id))
