"""`hub demo`: seed a demo tenant and its people, and remember their logins under the data dir.

Passwords are stored only as hashes in the database, so the demo keeps the ones it made in
`<data dir>/demo-logins.json` (mode 0600) to print them again on the next start. This file
is for a laptop demo only; nothing else in the hub reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import repository as auth_repository
from hub.auth import service as auth
from hub.auth.models import ROLE_SCOPES, Role
from hub.auth.tokens import generate_password
from hub.core.ids import TenantID
from hub.tenants import service as tenants

DEMO_SLUG = "demo"
DEMO_PEOPLE: tuple[tuple[str, str, Role], ...] = (
    ("admin@demo.example", "Dana Admin", Role.ADMIN),
    ("rp@demo.example", "Riley Responsible", Role.ADMIN),
    ("caseworker@demo.example", "Casey Worker", Role.CASEWORKER),
)


@dataclass
class DemoLogins:
    passwords: dict[str, str]
    api_token: str | None = None


def _logins_file(data_dir: Path) -> Path:
    return data_dir / "demo-logins.json"


def load_logins(data_dir: Path) -> DemoLogins:
    path = _logins_file(data_dir)
    if not path.exists():
        return DemoLogins(passwords={})
    raw = json.loads(path.read_text())
    return DemoLogins(passwords=dict(raw.get("passwords", {})), api_token=raw.get("api_token"))


def save_logins(data_dir: Path, logins: DemoLogins) -> None:
    path = _logins_file(data_dir)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(asdict(logins), handle, indent=2)


async def seed(session: AsyncSession, data_dir: Path) -> DemoLogins:
    """Create the demo tenant and users if absent; return the logins to print."""
    logins = load_logins(data_dir)
    tenant = await tenants.find_tenant_by_slug(session, DEMO_SLUG)
    if tenant is None:
        tenant = await tenants.create_tenant(session, name="Demo Health Plan", slug=DEMO_SLUG)
    tenant_id = TenantID(tenant.id)
    for email, name, role in DEMO_PEOPLE:
        user = await auth.find_user_by_email(session, email)
        if user is None:
            password = generate_password()
            user = await auth.create_user(
                session, email=email, password=password, display_name=name
            )
            logins.passwords[email] = password
        if await auth_repository.find_member_by_user(session, tenant_id, user.id) is None:
            await auth.add_member(session, tenant_id=tenant_id, user=user, role=role)
    if logins.api_token is None:
        admin = await auth.get_user_by_email(session, DEMO_PEOPLE[0][0])
        issued = await auth.issue_token(
            session,
            user=admin,
            tenant_id=tenant_id,
            scopes=ROLE_SCOPES[Role.ADMIN],
            name="demo",
        )
        logins.api_token = issued.plaintext
    return logins


def banner(url: str, logins: DemoLogins) -> str:
    lines = [
        "",
        f"  CTM Hub demo is running at {url}",
        f"  API docs: {url}/schema   readiness: {url}/readyz",
        "",
        "  Demo logins (tenant 'demo'):",
    ]
    for email, _, role in DEMO_PEOPLE:
        password = logins.passwords.get(email, "(set before this data dir kept logins)")
        lines.append(f"    {email:<26} {password:<26} {role.value}")
    if logins.api_token:
        lines += ["", f"  API token (tenant admin): {logins.api_token}"]
        lines.append(f"    curl -H 'Authorization: Bearer {logins.api_token}' {url}/api/v1/me")
    lines += ["", "  Press Ctrl-C to stop.", ""]
    return "\n".join(lines)
