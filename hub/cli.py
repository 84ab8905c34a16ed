"""The `hub` command group. Errors end in one line on stderr and exit code 1, never a trace."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from uuid import UUID

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.core.crypto.errors import CryptoError
from hub.core.errors import DomainError
from hub.core.logging import configure_logging
from hub.core.redis import EmbeddedRedis, RedisUnavailable
from hub.settings import LogFormat, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from hub.core.db import Database

# `hub demo` lets webhooks reach receivers on this machine over plain http.
DEMO_HTTP_HOSTS = "127.0.0.1,localhost,::1"

P = ParamSpec("P")
T = TypeVar("T")


class CliError(click.ClickException):
    """One line on stderr, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def fail_cleanly(command: Callable[P, T]) -> Callable[P, T]:
    """Turn the errors a user can fix into one line naming what to fix."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from hub.runtime import ServiceStopped, StartupError

        try:
            return command(*args, **kwargs)
        except (SettingsError, StartupError, ServiceStopped, RedisUnavailable) as error:
            raise CliError(str(error)) from None
        except DomainError as error:
            raise CliError(error.detail) from None
        except CryptoError as error:
            raise CliError(str(error)) from None
        except (OSError, OperationalError, DBAPIError) as error:
            reason = str(getattr(error, "orig", error)).splitlines()[0][:200]
            raise CliError(f"database: {reason}") from None

    return wrapper


def _settings(**overrides: Any) -> Settings:
    settings = load_settings(**overrides)
    configure_logging(settings.log_level.value, settings.log_format.value)
    return settings


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def _in_transaction(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work` in one transaction; jobs it enqueues go to Redis when Redis is up."""
    from hub.core.jobs import ArqQueue

    database = _database(settings)
    redis = await _reachable_redis(settings)
    if redis is not None:
        database.queue = ArqQueue(redis)
    try:
        async with database.transaction() as session:
            return await work(session)
    finally:
        await database.dispose()
        if redis is not None:
            await redis.aclose()


async def _reachable_redis(settings: Settings) -> Any:
    """The hub's Redis if it answers, else None: events then wait for the outbox sweeper."""
    from hub.core.redis import connect

    if settings.uses_embedded_redis and not settings.embedded_redis_socket.exists():
        return None
    try:
        return await connect(settings.effective_redis_url)
    except RedisUnavailable:
        return None


async def _for_tenant(
    settings: Settings, slug: str, work: Callable[[Database, UUID], Awaitable[T]]
) -> T:
    """Run `work` on a database of its own with the id of the tenant `slug` names: for the
    key operations that span many transactions."""
    from hub.tenants import service as tenant_service

    database = _database(settings)
    try:
        async with database.transaction() as session:
            tenant = await tenant_service.get_tenant_by_slug(session, slug)
        try:
            return await work(database, tenant.id)
        except CryptoError as error:  # it names the tenant by id; the operator typed its slug
            raise CliError(str(error).replace(str(tenant.id), slug)) from None
    finally:
        await database.dispose()


def _database(settings: Settings) -> Database:
    """A Database carrying the process's crypto (the master key ring is loaded here)."""
    import hub.models  # noqa: F401  every table, so a flush resolves every foreign key
    from hub.core.crypto import Crypto
    from hub.core.db import Database

    return Database.from_url(settings.effective_database_url, crypto=Crypto.from_settings(settings))


async def _check_redis(settings: Settings) -> None:
    """A configured Redis that does not answer stops `serve` and `worker` with one line."""
    from hub.core.redis import connect

    if settings.uses_embedded_redis:
        return
    try:
        client = await connect(settings.effective_redis_url)
    except RedisUnavailable as error:
        raise CliError(f"HUB_REDIS_URL: {error}") from None
    await client.aclose()


def _prepare_embedded(settings: Settings) -> EmbeddedRedis | None:
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.uses_embedded_redis:
        return None
    embedded = EmbeddedRedis(settings.resolved_data_dir)
    embedded.start()
    return embedded


@click.group()
@click.version_option(package_name="ctm-hub")
def main() -> None:
    """CTM Hub: HPMS CTM API keys, complaint syncs, casework and alerts for many plans."""


# Running ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@fail_cleanly
def serve(host: str, port: int) -> None:
    """Run the HTTP API (and portal)."""
    from hub.runtime import check_database, serve_together

    settings = _settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    _run(check_database(settings))
    _run(_check_redis(settings))
    embedded = _prepare_embedded(settings)
    try:
        _run(serve_together(settings, host=host, port=port, worker=False))
    finally:
        if embedded:
            embedded.stop()


@main.command()
@fail_cleanly
def worker() -> None:
    """Run an arq worker: syncs, uploads, deliveries, crons."""
    from hub.runtime import check_database, serve_together

    settings = _settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    _run(check_database(settings))
    _run(_check_redis(settings))
    embedded = _prepare_embedded(settings)
    try:
        _run(serve_together(settings, host="", port=0, api=False, worker=True))
    finally:
        if embedded:
            embedded.stop()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--ctm-sim-port",
    type=click.IntRange(0, 65535),
    help="Port of the CTM simulator the demo's sandbox URL points at (default: port + 1).",
)
@fail_cleanly
def demo(host: str, port: int, ctm_sim_port: int | None) -> None:
    """Everything in one terminal on embedded defaults: migrate, seed, serve, work, and a
    CTM simulator standing in for CMS's sandbox."""
    from hub import demo as demo_data
    from hub.core.db import migrate
    from hub.ctm.simulator import build_server
    from hub.runtime import serve_together

    sim_socket = _demo_simulator_socket(host, port, ctm_sim_port)
    sim_host, sim_port = sim_socket.getsockname()[:2]
    sim_url = f"http://{sim_host}:{sim_port}"
    settings = _settings(**demo_overrides(os.environ, ctm_sandbox_url=sim_url))
    embedded = _prepare_embedded(settings)
    try:
        migrate.upgrade(settings.effective_database_url)
        logins = _run(
            _in_transaction(settings, lambda s: demo_data.seed(s, settings.resolved_data_dir))
        )
        demo_data.save_logins(settings.resolved_data_dir, logins)
        url = f"http://{host}:{port}"

        async def announce() -> None:
            click.echo(demo_data.banner(url, logins, sim_url))

        simulator = build_server(demo_data.simulator_state(logins), host=sim_host, port=sim_port)
        together = serve_together(
            settings, host=host, port=port, on_ready=announce,
            ctm_simulator=(simulator, sim_socket),
        )  # fmt: skip
        _run(together)
    finally:
        sim_socket.close()
        if embedded:
            embedded.stop()


def demo_overrides(environ: Mapping[str, str], *, ctm_sandbox_url: str) -> dict[str, Any]:
    """What `hub demo` sets unless the environment says otherwise: the CTM simulator as the
    sandbox, console logs, and webhook receivers on this machine over plain http (to try
    webhooks against a local receiver; metadata addresses stay refused)."""
    overrides: dict[str, Any] = {"ctm_sandbox_url": ctm_sandbox_url}
    defaults = {
        "HUB_LOG_FORMAT": ("log_format", LogFormat.CONSOLE),
        "HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS": ("webhook_allow_private_networks", True),
        "HUB_WEBHOOK_ALLOW_HTTP_HOSTS": ("webhook_allow_http_hosts", DEMO_HTTP_HOSTS),
    }
    for variable, (field, value) in defaults.items():
        if variable not in environ:
            overrides[field] = value
    return overrides


def _demo_simulator_socket(host: str, port: int, asked: int | None) -> socket.socket:
    """The port asked for, else port + 1, else (that one busy) any free port."""
    if asked is not None:
        return _listen(host, asked)
    try:
        return _listen(host, port + 1)
    except CliError:
        return _listen(host, 0)


def _listen(host: str, port: int) -> socket.socket:
    from hub.ctm.simulator import bind

    try:
        return bind(host, port)
    except OSError as error:
        raise CliError(
            f"CTM simulator: cannot listen on {host}:{port} ({error.strerror})"
        ) from None


# CTM -------------------------------------------------------------------------------------


@main.group()
def ctm() -> None:
    """The CMS CTM API: check download files."""


@ctm.command("parse")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--contract",
    "contracts",
    multiple=True,
    help="A contract the downloading key covers (repeat); rows of others are quarantined.",
)
def ctm_parse(file: Path, as_json: bool, contracts: tuple[str, ...]) -> None:
    """Parse a plan download FILE and report what would import (exit 1 if rejected)."""
    from hub.ctm.errors import FileRejected
    from hub.ctm.report import parse_file, render_summary

    try:
        summary = parse_file(file, allowed_contracts=set(contracts) if contracts else None)
    except FileRejected as error:
        raise CliError(f"{file}: rejected: {error}") from None
    except OSError as error:
        raise CliError(f"{file}: {error.strerror}") from None
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        click.echo(render_summary(str(file), summary))


@main.command("ctm-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9100, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--seed-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON: keys, contracts, clock, faults (see README).",
)
@click.option("--seed", type=int, help="Seed of the generated complaints (overrides the file).")
def ctm_sim(host: str, port: int, seed_file: Path | None, seed: int | None) -> None:
    """Run the CTM simulator, a stand-in for CMS's CTM API, until Ctrl-C."""
    from hub.ctm.simulator import SimState, SimulatorError, load_seed_file, serve_standalone

    configure_logging("INFO", "console")
    try:
        state = load_seed_file(seed_file) if seed_file else SimState()
    except SimulatorError as error:
        raise CliError(str(error)) from None
    if seed is not None:
        state.reseed(seed)
    listening = _listen(host, port)
    bound_host, bound_port = listening.getsockname()[:2]
    click.echo(f"CTM simulator ({state.environment}) on http://{bound_host}:{bound_port}")
    for key in state.keys.values():
        click.echo(f"  key {key.key_id} ({key.hpms_user}): {', '.join(sorted(key.contracts))}")
    serve_standalone(state, listening)


# Database --------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.argument("revision", default="head")
@fail_cleanly
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from hub.core.db import migrate

    settings = _settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    with _migration_errors():
        migrate.upgrade(settings.effective_database_url, revision)
    click.echo(f"database upgraded to {revision}")


@db.command(context_settings={"ignore_unknown_options": True})  # `-1` is a revision
@click.argument("revision")
@fail_cleanly
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`-1` for one step, `base` for everything)."""
    from hub.core.db import migrate

    settings = _settings()
    with _migration_errors():
        migrate.downgrade(settings.effective_database_url, revision)
    click.echo(f"database downgraded to {revision}")


@contextlib.contextmanager
def _migration_errors() -> Iterator[None]:
    """Alembic's refusals (an unknown revision, say) as one line, not a trace."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as error:
        raise CliError(f"migrations: {error}") from None


@db.command()
@click.option("-m", "--message", required=True)
@click.option("--rev-id", required=True, help="e.g. 0004")
@fail_cleanly
def revision(message: str, rev_id: str) -> None:
    """(Developers) autogenerate a revision from the models against the current database."""
    from hub.core.db import migrate

    migrate.revision(_settings().effective_database_url, message, rev_id)


# Tenants, users, tokens ------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Tenants (the plans the hub serves)."""


@tenants.command("create")
@click.option("--name", required=True)
@click.option("--slug", required=True)
@fail_cleanly
def tenants_create(name: str, slug: str) -> None:
    """Create a tenant."""
    from hub.audit.service import Actor
    from hub.tenants import service

    settings = _settings()
    tenant = _run(
        _in_transaction(
            settings, lambda s: service.create_tenant(s, name=name, slug=slug, actor=Actor.cli())
        )
    )
    click.echo(f"tenant {tenant.slug} created ({tenant.id})")


@tenants.command("list")
@fail_cleanly
def tenants_list() -> None:
    """List tenants."""
    from hub.tenants import service

    for tenant in _run(_in_transaction(_settings(), service.list_tenants)):
        click.echo(f"{tenant.slug}\t{tenant.status.value}\t{tenant.name}")


@tenants.command("health")
@click.option(
    "--slug", default=None, help="One tenant (offboarded too); default: every active one."
)
@click.option("--json", "as_json", is_flag=True, help="JSON, one object per tenant.")
@click.option(
    "--stale-hours", default=2.0, show_default=True, type=click.FloatRange(min=0),
    help="A contract not synced successfully for longer needs attention.",
)  # fmt: skip
@fail_cleanly
def tenants_health(slug: str | None, as_json: bool, stale_hours: float) -> None:
    """Each tenant's keys, syncs, overdue complaints, resolutions, webhooks and alerts, and
    what needs attention first (counts and ages only: no secret, no PHI)."""
    from datetime import timedelta

    from hub.core.db import utcnow
    from hub.core.errors import NotFound
    from hub.metrics.tenants import tenant_health

    async def read() -> list[Any]:
        database = _database(_settings())
        try:
            async with database.transaction(read_only=True) as session:
                return await tenant_health(
                    session, now=utcnow(), slug=slug, stale_after=timedelta(hours=stale_hours)
                )
        finally:
            await database.dispose()

    found = _run(read())
    if slug is not None and not found:
        raise NotFound("tenant", slug)
    if as_json:
        click.echo(json.dumps([t.as_dict() for t in found], indent=2))
        return
    click.echo(
        "tenant\tstatus\tkeys active/need RP\tcontracts failing/synced\tstalest sync h\t"
        "overdue\tresolutions waiting (in doubt)\twebhooks pending (endpoints off)\t"
        "outbox\talerts open (critical)\tattention"
    )
    for t in found:
        stalest = "-" if t.stalest_sync_hours is None else f"{t.stalest_sync_hours:g}"
        click.echo(
            f"{t.slug}\t{t.status}\t{t.keys_active}/{t.keys_wanting_action}\t"
            f"{t.pairs_failing}/{t.pairs}\t{stalest}\t{t.complaints_overdue}\t"
            f"{t.resolutions_waiting} ({t.resolutions_in_doubt})\t"
            f"{t.webhook_messages_pending} ({t.webhook_endpoints_disabled})\t"
            f"{t.outbox_undispatched}\t{t.alerts_open} ({t.alerts_critical})\t"
            f"{'; '.join(t.attention) or 'ok'}"
        )


@main.group()
def users() -> None:
    """Users and their memberships."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--tenant", "tenant_slug", help="Tenant slug to add the user to.")
@click.option("--role", type=click.Choice(["admin", "caseworker", "viewer"]))
@click.option("--name", "display_name", default="")
@click.option("--operator", is_flag=True, help="A platform operator (no tenant needed).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@fail_cleanly
def users_create(
    email: str,
    tenant_slug: str | None,
    role: str | None,
    display_name: str,
    operator: bool,
    password_stdin: bool,
) -> None:
    """Create a user (or add an existing one to a tenant). Without --password-stdin a
    password is generated and printed once, and the user must change it at their first
    sign-in to the portal."""
    from hub.audit.service import Actor
    from hub.auth import service as auth
    from hub.auth.models import Role
    from hub.auth.tokens import generate_password
    from hub.core.ids import TenantID
    from hub.tenants import service as tenant_service

    if (tenant_slug is None) != (role is None):
        raise CliError("--tenant and --role go together")
    if tenant_slug is None and not operator:
        raise CliError("give --tenant and --role, or --operator")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()

    async def work(session: Any) -> str:
        user = await auth.find_user_by_email(session, email)
        created = user is None
        if user is None:
            user = await auth.create_user(
                session, email=email, password=password,
                display_name=display_name, is_operator=operator, actor=Actor.cli(),
                must_change_password=not password_stdin,  # a generated one is changed at once
            )  # fmt: skip
            said = f"user {user.email} created"
        elif operator and not user.is_operator:
            raise CliError(
                f"user {user.email} already exists and is not a platform operator; "
                "--operator makes only a new user an operator"
            )
        elif tenant_slug is None:
            said = f"user {user.email} already exists (a platform operator); nothing changed"
        else:
            said = f"user {user.email} already exists"
        if tenant_slug is not None and role is not None:
            tenant = await tenant_service.get_tenant_by_slug(session, tenant_slug)
            await auth.add_member(
                session, tenant_id=TenantID(tenant.id), user=user, role=Role(role),
                actor=Actor.cli(),
            )  # fmt: skip
            said += f"; added to {tenant.slug} as {role}"
        if created and not password_stdin:
            said += f"\npassword (shown once): {password}"
        elif not created and password_stdin:
            said += " (its password is unchanged)"
        return said

    click.echo(_run(_in_transaction(_settings(), work)))


@users.command("list")
@click.option("--tenant", "tenant_slug", help="Only the members of this tenant.")
@click.option("--email", default="", help="Only emails containing this.")
@fail_cleanly
def users_list(tenant_slug: str | None, email: str) -> None:
    """Users: email, kind, active or deactivated, two-step on or off, last sign-in, live
    portal sessions and memberships (tenant:role). No password, token or secret."""
    from hub.auth import service as auth
    from hub.core.ids import TenantID
    from hub.portal.service import SessionLimits
    from hub.tenants import service as tenant_service

    settings = _settings()

    async def work(session: Any) -> list[str]:
        tenant_id = None
        if tenant_slug is not None:
            tenant = await tenant_service.get_tenant_by_slug(session, tenant_slug)
            tenant_id = TenantID(tenant.id)
        idle = SessionLimits.from_settings(settings).idle
        lines = []
        for user in await auth.list_users(session, tenant_id=tenant_id, email=email, limit=10_000):
            seen = await auth.overview_of(session, user, idle=idle)
            last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "-"
            where = ",".join(f"{m.tenant_slug}:{m.role.value}" for m in seen.memberships)
            lines.append(
                f"{user.email}\t{'operator' if user.is_operator else 'member'}\t"
                f"{'active' if user.is_active else 'deactivated'}\t"
                f"two-step {'on' if seen.has_two_step else 'off'}\t{last}\t"
                f"{seen.live_sessions} session(s)\t{where or '-'}"
            )
        return lines

    for line in _run(_in_transaction(settings, work)):
        click.echo(line)


@users.command("reset-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@fail_cleanly
def users_reset_password(email: str, password_stdin: bool) -> None:
    """Give a user who forgot their password a new one (generated and printed once, to be
    changed at their next sign-in to the portal, unless --password-stdin) and sign them out
    of the portal everywhere."""
    from hub.audit.service import Actor
    from hub.auth import service as auth

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None

    async def work(session: Any) -> str:
        user = await auth.get_user_by_email(session, email)
        reset = await auth.reset_password(session, user, actor=Actor.cli(), password=password)
        said = f"password of {user.email} reset; {reset.sessions_ended} portal session(s) ended"
        if password is None:
            said += f"\npassword (shown once): {reset.password}"
        return said

    click.echo(_run(_in_transaction(_settings(), work)))


@users.command("deactivate")
@click.option("--email", required=True)
@fail_cleanly
def users_deactivate(email: str) -> None:
    """Someone left: they can no longer sign in, their portal sessions end and their API
    tokens stop working (until reactivated). Never the last active operator."""
    from hub.audit.service import Actor
    from hub.auth import service as auth

    async def work(session: Any) -> str:
        user = await auth.get_user_by_email(session, email)
        ended = await auth.deactivate_user(session, user, actor=Actor.cli())
        if ended is None:
            return f"user {user.email} is already deactivated; nothing changed"
        return (
            f"user {user.email} deactivated; {ended} portal session(s) ended, "
            "API tokens stop working"
        )

    click.echo(_run(_in_transaction(_settings(), work)))


@users.command("reactivate")
@click.option("--email", required=True)
@fail_cleanly
def users_reactivate(email: str) -> None:
    """Let a deactivated user sign in again (memberships and unexpired tokens as they were)."""
    from hub.audit.service import Actor
    from hub.auth import service as auth

    async def work(session: Any) -> str:
        user = await auth.get_user_by_email(session, email)
        if await auth.reactivate_user(session, user, actor=Actor.cli()):
            return f"user {user.email} reactivated"
        return f"user {user.email} is already active; nothing changed"

    click.echo(_run(_in_transaction(_settings(), work)))


@users.command("reset-two-step")
@click.option("--email", required=True)
@fail_cleanly
def users_reset_two_step(email: str) -> None:
    """Turn off a user's two-step sign-in (a lost phone); they enrol again after signing in."""
    from hub.audit.service import Actor
    from hub.auth import service as auth

    async def work(session: Any) -> str:
        user = await auth.get_user_by_email(session, email)
        if await auth.reset_two_step(session, user, actor=Actor.cli()):
            return f"two-step sign-in of {user.email} turned off"
        return f"two-step sign-in of {user.email} was not on; nothing changed"

    click.echo(_run(_in_transaction(_settings(), work)))


@main.group()
def tokens() -> None:
    """API tokens."""


@tokens.command("create")
@click.option("--tenant", "tenant_slug", help="Tenant slug (omit for an operator's token).")
@click.option("--user", "email", required=True)
@click.option("--scopes", required=True, help="Comma-separated, e.g. complaints:read,keys:read")
@click.option("--name", default="cli")
@click.option("--expires-in", default=None, help="e.g. 30d, 12h, 2w")
@fail_cleanly
def tokens_create(
    tenant_slug: str | None, email: str, scopes: str, name: str, expires_in: str | None
) -> None:
    """Mint an API token and print it once."""
    from hub.audit.service import Actor
    from hub.auth import service as auth
    from hub.core.ids import TenantID
    from hub.tenants import service as tenant_service

    async def work(session: Any) -> str:
        user = await auth.get_user_by_email(session, email)
        tenant_id = None
        if tenant_slug is not None:
            tenant_id = TenantID((await tenant_service.get_tenant_by_slug(session, tenant_slug)).id)
        issued = await auth.issue_token(
            session,
            user=user,
            tenant_id=tenant_id,
            scopes=auth.parse_scopes(scopes.split(",")),
            name=name,
            expires_in=auth.parse_duration(expires_in) if expires_in else None,
            actor=Actor.cli(),  # someone at a shell, not the user the token is for
        )
        return issued.plaintext

    click.echo(_run(_in_transaction(_settings(), work)))


# Keys, offboarding, audit ----------------------------------------------------------------


@tenants.command("rotate-key")
@click.option("--slug", required=True)
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--settle-seconds",
    default=None,
    show_default="the key cache's lifetime plus the longest job: 600",
    type=click.FloatRange(0),
    help="Wait this long after the new key is active, then re-seal what other processes "
    "sealed under the old one meanwhile (their key cache, then their longest job). "
    "0 skips that pass: only when nothing else runs against this database.",
)
@fail_cleanly
def tenants_rotate_key(slug: str, batch_size: int, settle_seconds: float | None) -> None:
    """Give a tenant a new data key and re-seal all its sealed values under it."""
    from hub.audit.service import Actor
    from hub.tenants import keys

    settings = _settings()
    settle = keys.SETTLE_SECONDS if settle_seconds is None else settle_seconds

    def waiting(seconds: float) -> None:
        click.echo(
            f"tenant {slug}: re-sealed what was there; waiting {seconds:.0f} s for other "
            "processes to let go of the old key, then re-sealing what they sealed meanwhile"
        )

    async def work(database: Database, tenant_id: UUID) -> Any:
        return await keys.rotate_data_key(
            database, tenant_id=tenant_id, actor=Actor.cli(), batch_size=batch_size,
            settle_seconds=settle, on_wait=waiting,
        )  # fmt: skip

    report = _run(_for_tenant(settings, slug, work))
    columns = ", ".join(f"{name} {count}" for name, count in report.resealed.items() if count)
    late = ", ".join(f"{name} {count}" for name, count in report.resealed_late.items() if count)
    click.echo(
        f"tenant {slug}: data key v{report.version} is active; re-sealed {report.total} values"
        + (f" ({columns})" if columns else "")
        + (
            f"; the late pass re-sealed {report.total_late} more" + (f" ({late})" if late else "")
            if settle > 0
            else "; no late pass (--settle-seconds 0)"
        )
    )


@tenants.command("discard-retired-keys")
@click.option("--slug", required=True)
@click.option(
    "--settle-seconds",
    default=None,
    show_default="as rotate-key: 600",
    type=click.FloatRange(0),
    help="Refuse while the active key is younger than this (another process may still seal "
    "under the key it replaced). 0 skips the check: only when nothing else runs.",
)
@fail_cleanly
def tenants_discard_retired_keys(slug: str, settle_seconds: float | None) -> None:
    """Erase the data keys a rotation retired, once no value is sealed under them: the
    master key then opens nothing they sealed (in an old backup, say). Refuses, naming the
    columns, while any value still is."""
    from hub.audit.service import Actor
    from hub.tenants import keys

    settings = _settings()
    settle = keys.SETTLE_SECONDS if settle_seconds is None else settle_seconds

    async def work(database: Database, tenant_id: UUID) -> Any:
        return await keys.discard_retired_keys(
            database, tenant_id=tenant_id, actor=Actor.cli(), settle_seconds=settle
        )

    report = _run(_for_tenant(settings, slug, work))
    if report.discarded:
        versions = ", ".join(f"v{v}" for v in report.discarded)
        click.echo(
            f"tenant {slug}: erased retired data keys {versions}; v{report.active_version} "
            "is the only data key left"
        )
    else:
        click.echo(f"tenant {slug}: no retired data key; v{report.active_version} is active")


@tenants.command("offboard")
@click.option("--slug", required=True)
@click.option("--operator", "operator_email", required=True, help="Email of a platform operator.")
@click.option("--yes", is_flag=True, help="Do not ask to type the slug to confirm.")
@fail_cleanly
def tenants_offboard(slug: str, operator_email: str, yes: bool) -> None:
    """Offboard a tenant: destroy its data keys (crypto-shredding), so none of its sealed
    values can be opened again, and revoke its API tokens. Cannot be undone."""
    from hub.auth import service as auth
    from hub.tenants import service as tenant_service

    settings = _settings()
    if not yes:
        typed = click.prompt(
            f"This destroys every secret of tenant {slug!r} for good. Type the slug to confirm",
            default="",
            show_default=False,
        )
        if typed.strip() != slug:
            raise CliError("the typed slug does not match; nothing was changed")

    async def work(session: Any) -> int:
        operator = await auth.get_user_by_email(session, operator_email)
        tenant = await tenant_service.get_tenant_by_slug(session, slug)
        return await tenant_service.offboard_tenant(session, tenant=tenant, operator=operator)

    destroyed = _run(_in_transaction(settings, work))
    click.echo(
        f"tenant {slug} offboarded: {destroyed} keys destroyed (its data and index keys); its "
        "API tokens revoked, HPMS keys deactivated and webhook endpoints disabled; its sealed "
        "values are gone"
    )


@main.group("master-key")
def master_key() -> None:
    """The master key ring (HUB_MASTER_KEYS) that wraps every tenant's keys."""


@master_key.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@fail_cleanly
def master_key_rotate(batch_size: int) -> None:
    """Re-wrap every tenant key under the ring's first (newest) master key. Opens no sealed
    value; safe to run again if interrupted. Afterwards older keys can leave the ring."""
    from hub.audit.service import Actor
    from hub.tenants import keys

    settings = _settings()

    def progress(report: keys.MasterKeyRotation) -> None:
        click.echo(f"  batch {report.batches}: {report.rewrapped} re-wrapped so far", err=True)

    async def work() -> keys.MasterKeyRotation:
        database = _database(settings)
        try:
            return await keys.rotate_master_key(
                database, actor=Actor.cli(), batch_size=batch_size, on_batch=progress
            )
        finally:
            await database.dispose()

    report = _run(work())
    before = ", ".join(f"{v}: {n}" for v, n in sorted(report.pending_before.items())) or "none"
    click.echo(
        f"re-wrapped {report.rewrapped} tenant keys under master key {report.active_version} "
        f"in {report.batches} batches (were under: {before}); older master keys may now "
        "be removed from HUB_MASTER_KEYS"
    )


@master_key.command("generate")
@click.option("--version", "version", required=True, help="A new version name, e.g. v2.")
@fail_cleanly
def master_key_generate(version: str) -> None:
    """Print a new ring entry `VERSION:<base64>` to put first in HUB_MASTER_KEYS."""
    from hub.core.crypto import generate_master_key

    click.echo(generate_master_key(version))


@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--tenant", "tenant_slug", help="Verify one tenant's chain (default: all).")
@fail_cleanly
def audit_verify(tenant_slug: str | None) -> None:
    """Walk the hash chains; report the first broken link of each. Exit 1 on any break."""
    from hub.audit import service as audit_service
    from hub.core.ids import TenantID
    from hub.tenants import service as tenant_service

    async def work(session: Any) -> list[tuple[str, Any]]:
        tenant_id = None
        if tenant_slug is not None:
            tenant = await tenant_service.get_tenant_by_slug(session, tenant_slug)
            tenant_id = TenantID(tenant.id)
        slugs = {t.id: t.slug for t in await tenant_service.list_tenants(session)}
        reports = await audit_service.verify(session, tenant_id=tenant_id)
        return [(slugs.get(r.chain_id, r.label), r) for r in reports]

    async def read_only() -> list[tuple[str, Any]]:
        # Only reads: on SQLite a write transaction would hold the one write lock for the
        # whole walk (or wait on a writer's), failing every writer meanwhile.
        database = _database(settings)
        try:
            async with database.transaction(read_only=True) as session:
                return await work(session)
        finally:
            await database.dispose()

    settings = _settings()
    results = _run(read_only())
    broken = 0
    for name, report in results:
        if report.broken is None:
            click.echo(f"ok      {name}: {report.entries} entries")
            continue
        broken += 1
        link = report.broken
        where = f"entry {link.seq}" + (f" ({link.entry_id})" if link.entry_id else "")
        click.echo(f"BROKEN  {name}: at {where}: {link.reason}")
    if broken:
        raise click.exceptions.Exit(1)
    click.echo(f"{len(results)} chains verified")


# HPMS API keys and contracts -------------------------------------------------------------


@main.group()
def keys() -> None:
    """HPMS API keys (secrets are read from standard input only, never from a flag)."""


@keys.command("add")
@click.option("--tenant", "tenant_slug", required=True)
@click.option("--rp", "rp_email", required=True, help="The responsible party's hub email.")
@click.option("--environment", type=click.Choice(["sandbox", "production"]), required=True)
@click.option("--key-id", required=True, help="The key ID HPMS issued (not secret).")
@click.option("--contracts", required=True, help="Comma-separated, e.g. H1234,S5678")
@click.option("--hpms-user", required=True, help="The RP's HPMS user ID (userName).")
@click.option("--poc-name", required=True, help="Technical point of contact's name.")
@click.option("--poc-email", required=True, help="Technical point of contact's email.")
@click.option("--label", default="")
@click.option("--no-verify", is_flag=True, help="Skip the live token exchange with CMS.")
@fail_cleanly
def keys_add(
    tenant_slug: str,
    rp_email: str,
    environment: str,
    key_id: str,
    contracts: str,
    hpms_user: str,
    poc_name: str,
    poc_email: str,
    label: str,
    no_verify: bool,
) -> None:
    """Register a key for its responsible party; the secret is read from standard input."""
    from hub.auth import repository as auth_repository
    from hub.auth import service as auth
    from hub.auth.models import ROLE_SCOPES
    from hub.auth.principal import member_principal
    from hub.core.errors import Unavailable
    from hub.core.ids import TenantID
    from hub.keys import service as key_service
    from hub.keys.schemas import KeyCreate, TechnicalPoc
    from hub.keys.verify import CtmVerifier
    from hub.tenants import service as tenant_service

    if sys.stdin.isatty():
        secret = str(click.prompt("secret", hide_input=True, err=True))
    else:
        secret = sys.stdin.readline().rstrip("\n")
    settings = _settings()

    async def work(session: Any) -> str:
        tenant = await tenant_service.get_tenant_by_slug(session, tenant_slug)
        user = await auth.get_user_by_email(session, rp_email)
        membership = await auth_repository.find_member_by_user(
            session, TenantID(tenant.id), user.id
        )
        if membership is None:
            raise CliError(f"{user.email} is not a member of tenant {tenant_slug}")
        # The RP acts for themselves: the CLI is how an RP scripts onboarding.
        rp = member_principal(
            user_id=user.id, email=user.email, tenant_id=tenant.id,
            role=membership.role, scopes=ROLE_SCOPES[membership.role],
        )  # fmt: skip
        data = KeyCreate(
            environment=environment, key_id=key_id, secret=secret, hpms_user_id=hpms_user,
            technical_poc=TechnicalPoc(poc_name, poc_email), label=label,
            contracts=contracts.split(","), verify=not no_verify,
        )  # fmt: skip
        verifier = CtmVerifier(settings)
        try:
            key = await key_service.create_key(session, rp, data=data, verifier=verifier)
        except Unavailable as error:  # says what to send the API; here it is a flag
            url = getattr(settings, f"ctm_{environment}_url")
            detail = error.detail.replace("send verify=false", "pass --no-verify")
            raise CliError(f"{detail} (CMS {environment} URL: {url})") from None
        finally:
            await verifier.aclose()
        return f"key {key.id} registered ({environment}, key ID {key_id.strip()})"

    click.echo(_run(_in_transaction(settings, work)))


@keys.command("list")
@click.option("--tenant", "tenant_slug", required=True)
@fail_cleanly
def keys_list(tenant_slug: str) -> None:
    """The tenant's keys: id, environment, status, key ID, contracts (never a secret)."""
    from hub.core.ids import TenantID
    from hub.keys import repository as key_repository
    from hub.keys.api import key_views
    from hub.tenants import service as tenant_service

    async def work(session: Any) -> list[str]:
        tenant_id = TenantID((await tenant_service.get_tenant_by_slug(session, tenant_slug)).id)
        found = await key_repository.list_keys(session, tenant_id)
        return [
            f"{v.id}\t{v.environment}\t{v.status}\t{v.key_id}\t"
            f"{','.join(c.number for c in v.contracts)}\t{v.responsible_party.email}"
            for v in await key_views(session, tenant_id, found)
        ]

    for line in _run(_in_transaction(_settings(), work)):
        click.echo(line)


@main.group()
def contracts() -> None:
    """A tenant's contract numbers."""


@contracts.command("add")
@click.option("--tenant", "tenant_slug", required=True)
@click.argument("numbers", nargs=-1, required=True)
@fail_cleanly
def contracts_add(tenant_slug: str, numbers: tuple[str, ...]) -> None:
    """Register contract numbers (e.g. H1234 S5678) for a tenant."""
    from hub.audit.service import Actor
    from hub.core.ids import TenantID
    from hub.keys import service as key_service
    from hub.tenants import service as tenant_service

    async def work(session: Any) -> list[str]:
        tenant_id = TenantID((await tenant_service.get_tenant_by_slug(session, tenant_slug)).id)
        added = []
        for number in numbers:
            contract = await key_service.register_contract(
                session, tenant_id=tenant_id, number=number, actor=Actor.cli()
            )
            added.append(contract.number)
        return added

    click.echo(f"contracts added: {', '.join(_run(_in_transaction(_settings(), work)))}")


if __name__ == "__main__":
    main()
