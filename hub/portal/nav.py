"""The portal's menu: each section, its page, and who sees it (the same scopes as the API)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.models import Scope
from hub.auth.principal import Principal


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    scope: Scope | None  # None: every member of the tenant
    console: bool = False  # the operator console (no tenant)

    def allows(self, principal: Principal | None, is_operator: bool) -> bool:
        if self.console:
            return is_operator
        if principal is None:
            return False
        return self.scope is None or self.scope in principal.scopes


NAV: tuple[NavItem, ...] = (
    NavItem("Overview", "/portal/", None),
    NavItem("Complaints", "/portal/complaints", Scope.COMPLAINTS_READ),
    NavItem("Timeliness", "/portal/reports/timeliness", Scope.COMPLAINTS_READ),
    NavItem("Keys", "/portal/keys", Scope.KEYS_READ),
    NavItem("Syncs", "/portal/syncs", Scope.COMPLAINTS_READ),
    NavItem("Alerts", "/portal/alerts", Scope.ALERTS_READ),
    NavItem("Webhooks", "/portal/webhooks", Scope.WEBHOOKS_MANAGE),
    NavItem("Members", "/portal/members", Scope.TENANT_ADMIN),
    NavItem("Tokens", "/portal/tokens", None),
    NavItem("Audit log", "/portal/audit", Scope.AUDIT_READ),
    NavItem("Account", "/portal/account", None),
    NavItem("Console", "/console/", None, console=True),
    NavItem("Users", "/console/users", None, console=True),
    NavItem("Platform audit", "/console/audit", None, console=True),
)
