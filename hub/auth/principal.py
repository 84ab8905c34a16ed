"""The verified caller of a request. Only this package creates a `TenantID` for a caller."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from hub.auth.models import Role, Scope
from hub.core.errors import Forbidden
from hub.core.ids import TenantID


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    email: str
    scopes: frozenset[Scope]
    is_operator: bool = False
    tenant_id: TenantID | None = None
    role: Role | None = None
    token_id: UUID | None = None

    @property
    def tenant(self) -> TenantID:
        """The caller's tenant; a token that belongs to no tenant may not use tenant routes."""
        if self.tenant_id is None:
            raise Forbidden("this token belongs to no tenant")
        return self.tenant_id

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def is_tenant_admin(self) -> bool:
        return self.role is Role.ADMIN


def member_principal(
    *,
    user_id: UUID,
    email: str,
    tenant_id: UUID,
    role: Role,
    scopes: frozenset[Scope],
    token_id: UUID | None = None,
    is_operator: bool = False,
) -> Principal:
    """A principal for a verified member of `tenant_id` (callers have checked membership)."""
    return Principal(
        user_id=user_id,
        email=email,
        scopes=scopes,
        tenant_id=TenantID(tenant_id),
        role=role,
        token_id=token_id,
        is_operator=is_operator,
    )
