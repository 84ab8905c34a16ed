"""A tenant with the people alerts go to, keys and complaints to raise them, and a real
SMTP server in-process (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import email
from hub.alerts.email import SmtpConfig, SmtpMailer
from hub.alerts.models import Alert, AlertEmail, AlertKind, AlertState, EmailStatus
from hub.auth import service as auth
from hub.auth.models import Role, User
from hub.complaints.models import Complaint, DueBasis, ResolutionState
from hub.complaints.service import PHI_FIELD
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from hub.events.models import Event
from hub.keys import service as keys
from hub.keys.models import ApiKey, Environment
from hub.keys.schemas import KeyCreate, TechnicalPoc
from tests.support import PASSWORD, Member, make_member, make_tenant

POC_EMAIL = "poc@plan.example"
SECRET_CANARY = "CANARY-SECRET-9f1c"
PHI_CANARY = "CANARY-PHI-Doe-555-0199"


@dataclass
class Plan:
    """A tenant with an admin, a responsible party, a caseworker and a vendor operator."""

    admin: Member
    rp: Member
    caseworker: Member
    operator: User

    @property
    def tenant_id(self) -> TenantID:
        return self.admin.tenant_id


async def make_plan(session: AsyncSession, slug: str = "plan") -> Plan:
    tenant = await make_tenant(session, slug)
    admin = await make_member(session, tenant, email=f"admin@{slug}.example", role=Role.ADMIN)
    rp = await make_member(session, tenant, email=f"rp@{slug}.example", role=Role.VIEWER)
    caseworker = await make_member(
        session, tenant, email=f"case@{slug}.example", role=Role.CASEWORKER
    )
    operator = await auth.find_user_by_email(session, "ops@vendor.example")
    if operator is None:
        operator = await auth.create_user(
            session, email="ops@vendor.example", password=PASSWORD, is_operator=True
        )
    for number in ("H1234", "S5678"):
        await keys.add_contract(session, admin.principal, number=number)
    return Plan(admin, rp, caseworker, operator)


async def make_key(
    session: AsyncSession,
    plan: Plan,
    *,
    environment: str = "production",
    contracts: tuple[str, ...] = ("H1234", "S5678"),
    rotation_on: date | None = None,
    key_id: str | None = None,
    replaces: Any = None,
    by: Member | None = None,
) -> ApiKey:
    """A key whose responsible party is `by` (the plan's RP unless named)."""
    return await keys.create_key(
        session,
        (by or plan.rp).principal,
        data=KeyCreate(
            environment=environment,
            key_id=key_id or f"KEY-{uuid7().hex[-10:]}",
            secret=SECRET_CANARY,
            hpms_user_id="RPUSER01",
            technical_poc=TechnicalPoc("Pat Poc", POC_EMAIL),
            contracts=list(contracts) if replaces is None else None,
            verify=False,
            expected_rotation_on=rotation_on,
            replaces=replaces,
        ),
        verifier=None,
    )


async def make_complaint(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    due: date,
    complaint_id: str = "CTM-000123",
    contract: str = "H1234",
    state: ResolutionState = ResolutionState.NONE,
    environment: Environment = Environment.PRODUCTION,
) -> Complaint:
    """A complaint due on `due`, its PHI (a canary) sealed like a sync seals it."""
    cipher = await crypto.cipher_for(session, tenant_id)
    now = utcnow()
    complaint = Complaint(
        tenant_id=tenant_id, environment=environment, contract=contract,
        complaint_id=complaint_id, issue_level="Urgent", is_immediate_need=False,
        received_date=due - timedelta(days=7),
        assignment_date=due - timedelta(days=7), due_date=due, due_basis=DueBasis.ASSIGNMENT,
        category="Benefits", subcategory="Part D", fields={}, layout="current",
        content_hash="0" * 64, phi_hash="0" * 64, resolution_state=state,
        first_seen_at=now, last_changed_at=now, last_seen_at=now,
    )  # fmt: skip
    phi = {"CONTACT_LAST_NAME": PHI_CANARY, "COMPLAINT_SUMMARY": f"{PHI_CANARY} summary"}
    complaint.phi = cipher.seal(json.dumps(phi), field=PHI_FIELD, row=complaint.id)
    session.add(complaint)
    await session.flush()
    return complaint


async def alerts_of(
    session: AsyncSession, kind: AlertKind | None = None, state: AlertState | None = None
) -> list[Alert]:
    statement = select(Alert).order_by(Alert.raised_at, Alert.id)
    if kind is not None:
        statement = statement.where(Alert.kind == kind)
    if state is not None:
        statement = statement.where(Alert.state == state)
    return list((await session.scalars(statement)).all())


async def open_of(session: AsyncSession, kind: AlertKind) -> list[Alert]:
    return [a for a in await alerts_of(session, kind) if a.state is not AlertState.RESOLVED]


async def events_of(session: AsyncSession, type_: str) -> list[Event]:
    return list(
        (await session.scalars(select(Event).where(Event.type == type_).order_by(Event.id))).all()
    )


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


# SMTP sink -------------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())

    @property
    def raw(self) -> str:
        return self.message.as_string()


@dataclass
class Sink:
    """What an SMTP server received (the handler runs in aiosmtpd's own thread)."""

    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], message)
        )
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and data.password == b"smtp-pass":
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_sink(*, tls_dir: Path | None = None) -> Iterator[tuple[Sink, str]]:
    """A real SMTP server on 127.0.0.1 and the HUB_SMTP_URL that reaches it. With
    `tls_dir` it offers STARTTLS (a self-signed certificate) and requires a login."""
    sink, port = Sink(), free_port()
    options: dict[str, Any] = {}
    url = f"smtp://127.0.0.1:{port}"
    if tls_dir is not None:
        options = {
            "tls_context": _self_signed(tls_dir),
            "require_starttls": True,
            "authenticator": sink.authenticate,
            "auth_require_tls": True,
        }
        url = f"smtp://hub:smtp-pass@127.0.0.1:{port}?starttls=true&verify=false"
    controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
    # The server's thread logs each connection's end, sometimes after pytest has closed the
    # stream a test's log handler writes to ("--- Logging error ---" in the run's output).
    server_log = logging.getLogger("mail.log")
    level, server_log.level = server_log.level, logging.CRITICAL
    controller.start()
    try:
        yield sink, url
    finally:
        controller.stop()
        server_log.setLevel(level)


def _self_signed(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


PUBLIC_URL = "https://hub.example"


@contextmanager
def smtp_mailer(sender: str = "CTM Hub <alerts@hub.example>") -> Iterator[tuple[Sink, SmtpMailer]]:
    """A real SMTP sink, and a mailer that sends to it."""
    with smtp_sink() as (received, url):
        yield received, SmtpMailer(SmtpConfig.parse(url, sender=sender))


async def owed(session: AsyncSession) -> list[AlertEmail]:
    return list((await session.scalars(select(AlertEmail).order_by(AlertEmail.created_at))).all())


async def send_all(
    session: AsyncSession, mailer: SmtpMailer | None, *, pending_only: bool = False
) -> list[email.SendOutcome]:
    """Send every owed immediate email (with `pending_only`, those still pending) as the
    send job would."""
    return [
        await email.send_alert_email(session, row.id, mailer=mailer, public_url=PUBLIC_URL)
        for row in await owed(session)
        if not row.is_digest and (not pending_only or row.status is EmailStatus.PENDING)
    ]
