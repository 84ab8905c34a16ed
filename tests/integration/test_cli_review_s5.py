"""A security review's findings in the CLI: the audit log must say who acted. A person at a
shell who creates a tenant, a user (above all a platform operator), a membership or a token
is audited as such, never as the hub itself or as the user the token is for."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.integration.test_cli import env, hub, migrated

__all__ = ["env", "migrated"]


def audit_rows(env: dict[str, str]) -> list[tuple[str, str, str, dict[str, object]]]:
    """(action, actor kind, actor label, details) of every audit entry, oldest first."""
    with sqlite3.connect(Path(env["HUB_DATA_DIR"]) / "hub.db") as connection:
        rows = connection.execute(
            "SELECT action, actor_kind, actor_label, details FROM audit_log ORDER BY occurred_at"
        ).fetchall()
    return [(a, k, label, json.loads(d)) for a, k, label, d in rows]


class TestCliActorsAreAudited:
    def test_tenant_user_membership_and_token_name_the_cli(
        self,
        migrated: dict[str, str],
    ) -> None:
        steps = [
            ("tenants", "create", "--name", "Acme", "--slug", "acme"),
            ("users", "create", "--email", "a@acme.example", "--tenant", "acme", "--role", "admin"),
            ("tokens", "create", "--tenant", "acme", "--user", "a@acme.example",
             "--scopes", "keys:read"),
        ]  # fmt: skip
        for step in steps:
            result = hub(migrated, *step)
            assert result.exit_code == 0, result.output
        rows = audit_rows(migrated)
        by_action = {action: (kind, label) for action, kind, label, _ in rows}
        for action in ("tenant.created", "user.created", "membership.added", "token.issued"):
            assert action in by_action, rows
            kind, label = by_action[action]
            assert kind == "cli", (action, kind, label)
            assert label.startswith("cli:")

    def test_creating_a_platform_operator_is_audited(
        self,
        migrated: dict[str, str],
    ) -> None:
        result = hub(migrated, "users", "create", "--email", "ops@vendor.example", "--operator")
        assert result.exit_code == 0, result.output
        created = [
            (kind, d) for action, kind, _, d in audit_rows(migrated) if action == "user.created"
        ]
        assert created == [("cli", {"email": "ops@vendor.example", "is_operator": True})]
