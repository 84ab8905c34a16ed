"""`hub demo`: seed a demo tenant and its people, and remember their logins under the data dir.

Passwords are stored only as hashes in the database, so the demo keeps the ones it made in
`<data dir>/demo-logins.json` (mode 0600) to print them again on the next start. This file
is for a laptop demo only; nothing else in the hub reads it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import repository as auth_repository
from hub.auth import service as auth
from hub.auth.models import ROLE_SCOPES, Role
from hub.auth.tokens import generate_password
from hub.core.ids import TenantID
from hub.ctm.simulator import ContractPlan, SimState
from hub.tenants import service as tenants

DEMO_SLUG = "demo"
DEMO_CONTRACTS = ("H1234", "S5678")
DEMO_HPMS_USER = "DEMORP01"
# A new simulated day (new and updated complaints) every five minutes of demo.
DEMO_SIM_DAY_SECONDS = 300.0
DEMO_PEOPLE: tuple[tuple[str, str, Role], ...] = (
    ("admin@demo.example", "Dana Admin", Role.ADMIN),
    ("rp@demo.example", "Riley Responsible", Role.ADMIN),
    ("caseworker@demo.example", "Casey Worker", Role.CASEWORKER),
)
# The vendor's operator: the console (/console), no tenant.
DEMO_OPERATOR = "operator@demo.example"


@dataclass
class DemoLogins:
    passwords: dict[str, str]
    api_token: str | None = None
    # The demo RP's sandbox key as the simulator knows it (the simulator keeps no state
    # between runs, so the demo registers it again at every start).
    sandbox_key: dict[str, str] | None = None


def _logins_file(data_dir: Path) -> Path:
    return data_dir / "demo-logins.json"


def load_logins(data_dir: Path) -> DemoLogins:
    path = _logins_file(data_dir)
    if not path.exists():
        return DemoLogins(passwords={})
    raw = json.loads(path.read_text())
    return DemoLogins(
        passwords=dict(raw.get("passwords", {})),
        api_token=raw.get("api_token"),
        sandbox_key=raw.get("sandbox_key"),
    )


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
    if await auth.find_user_by_email(session, DEMO_OPERATOR) is None:
        password = generate_password()
        await auth.create_user(
            session, email=DEMO_OPERATOR, password=password, display_name="Oli Operator",
            is_operator=True,
        )  # fmt: skip
        logins.passwords[DEMO_OPERATOR] = password
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
    await _seed_sandbox_key(session, tenant_id, logins)
    return logins


async def _seed_sandbox_key(session: AsyncSession, tenant_id: TenantID, logins: DemoLogins) -> None:
    """The RP's sandbox key for the demo contracts: what the worker syncs from the simulator."""
    from hub.auth.principal import member_principal
    from hub.keys import repository as keys_repository
    from hub.keys import service as keys
    from hub.keys.schemas import KeyCreate, TechnicalPoc

    if logins.sandbox_key is not None and await keys_repository.list_keys(session, tenant_id):
        return
    rp = await auth.get_user_by_email(session, DEMO_PEOPLE[1][0])
    membership = await auth_repository.find_member_by_user(session, tenant_id, rp.id)
    assert membership is not None
    principal = member_principal(
        user_id=rp.id, email=rp.email, tenant_id=tenant_id,
        role=membership.role, scopes=ROLE_SCOPES[membership.role],
    )  # fmt: skip
    present = await keys_repository.contracts_by_number(session, tenant_id, list(DEMO_CONTRACTS))
    for number in DEMO_CONTRACTS:
        if number not in present:
            await keys.add_contract(session, principal, number=number)
    key = {"key_id": f"DEMO-{secrets.token_hex(6).upper()}", "secret": secrets.token_urlsafe(24)}
    await keys.create_key(
        session, principal,
        data=KeyCreate(
            environment="sandbox", label="demo sandbox key", key_id=key["key_id"],
            secret=key["secret"], hpms_user_id=DEMO_HPMS_USER,
            technical_poc=TechnicalPoc("Riley Responsible", DEMO_PEOPLE[1][0]),
            contracts=list(DEMO_CONTRACTS), verify=False,  # the simulator is not up yet
        ),
        verifier=None,
    )  # fmt: skip
    logins.sandbox_key = key


def simulator_state(logins: DemoLogins | None = None) -> SimState:
    """The demo's CMS stand-in: the demo plan's contracts receive complaints every day, and
    the demo RP's sandbox key is registered. Other keys: its admin API (`POST /_sim/keys`)."""
    state = SimState(seed=2024, environment="sandbox", tick_seconds=DEMO_SIM_DAY_SECONDS)
    for contract in DEMO_CONTRACTS:
        state.contracts[contract] = ContractPlan(daily_min=1, daily_max=4)
    if logins is not None and logins.sandbox_key is not None:
        state.add_key(
            hpms_user=DEMO_HPMS_USER, contracts=set(DEMO_CONTRACTS),
            key_id=logins.sandbox_key["key_id"], secret=logins.sandbox_key["secret"],
        )  # fmt: skip
    return state


def banner(url: str, logins: DemoLogins, simulator_url: str | None = None) -> str:
    lines = [
        "",
        f"  CTM Hub demo is running at {url}",
        f"  Portal: {url}/portal/   (sign in with a demo login below)",
        f"  API docs: {url}/schema   readiness: {url}/readyz",
    ]
    if simulator_url:
        lines += [
            f"  CTM simulator (sandbox, HUB_CTM_SANDBOX_URL): {simulator_url}",
            f"    contracts {', '.join(DEMO_CONTRACTS)}; admin API: {simulator_url}/_sim/health",
        ]
    lines += [
        "",
        "  Demo logins (tenant 'demo'):",
    ]
    for email, _, role in DEMO_PEOPLE:
        password = logins.passwords.get(email, "(set before this data dir kept logins)")
        lines.append(f"    {email:<26} {password:<26} {role.value}")
    operator = logins.passwords.get(DEMO_OPERATOR, "(set before this data dir kept logins)")
    lines.append(f"    {DEMO_OPERATOR:<26} {operator:<26} operator (console: {url}/console/)")
    if logins.api_token:
        lines += ["", f"  API token (tenant admin): {logins.api_token}"]
        lines.append(f"    curl -H 'Authorization: Bearer {logins.api_token}' {url}/api/v1/me")
    lines += ["", "  Press Ctrl-C to stop.", ""]
    return "\n".join(lines)
