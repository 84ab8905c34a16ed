"""`hub users` for an operator at a shell: list users with their memberships, reset a
forgotten password, deactivate and reactivate, turn off two-step sign-in for a lost phone;
each audited as the CLI, refusals in one line with nothing changed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from hub.auth import mfa
from hub.auth import service as auth
from hub.auth.models import User
from hub.cli import _in_transaction
from hub.core.db import utcnow
from hub.portal import service as portal
from hub.settings import load_settings
from tests.integration.test_cli import env, hub, last_line, migrated
from tests.integration.test_cli_review_s5 import audit_rows

__all__ = ["env", "migrated"]

T = TypeVar("T")
LONG_PASSWORD = "a very long password indeed"


def in_hub(env: dict[str, str], work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in one transaction on the database the CLI uses."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [k for k in os.environ if k.startswith("HUB_")]:
            patch.delenv(name)
        for name, value in env.items():
            if name.startswith("HUB_"):
                patch.setenv(name, value)
        return asyncio.run(_in_transaction(load_settings(), work))


def user_named(email: str) -> Callable[[Any], Awaitable[User]]:
    return lambda session: auth.get_user_by_email(session, email)


def sign_in_somewhere(env: dict[str, str], email: str) -> None:
    """A live portal session of the user's, as a browser's sign-in starts it."""

    async def work(session: Any) -> None:
        user = await auth.get_user_by_email(session, email)
        limits = portal.SessionLimits(idle=timedelta(minutes=30), lifetime=timedelta(hours=8))
        await portal.start(session, user, limits=limits, client_ip="127.0.0.1", user_agent="test")

    in_hub(env, work)


def turn_on_two_step(env: dict[str, str], email: str) -> None:
    async def work(session: Any) -> None:
        user = await auth.get_user_by_email(session, email)
        await mfa.begin(session, user)
        row = await mfa.find(session, user.id)
        assert row is not None
        row.enabled_at = utcnow()

    in_hub(env, work)


def two_step_is_on(env: dict[str, str], email: str) -> bool:
    async def work(session: Any) -> bool:
        return await mfa.is_enabled(session, (await auth.get_user_by_email(session, email)).id)

    return in_hub(env, work)


def password_works(env: dict[str, str], email: str, password: str) -> bool:
    async def work(session: Any) -> bool:
        return await portal.check_password(session, email=email, password=password) is not None

    return in_hub(env, work)


def ok(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = hub(env, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def refused(env: dict[str, str], *args: str) -> str:
    result = hub(env, *args)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    return last_line(result)


@pytest.fixture
def people(migrated: dict[str, str]) -> dict[str, str]:
    """Acme and Beta; ann is Acme's caseworker and Beta's viewer, bob Beta's admin, ops an
    operator."""
    ok(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
    ok(migrated, "tenants", "create", "--name", "Beta", "--slug", "beta")
    for email, tenant, role in [
        ("ann@acme.example", "acme", "caseworker"),
        ("ann@acme.example", "beta", "viewer"),
        ("bob@beta.example", "beta", "admin"),
    ]:
        ok(migrated, "users", "create", "--email", email, "--tenant", tenant, "--role", role)
    ok(migrated, "users", "create", "--email", "ops@vendor.example", "--operator")
    return migrated


class TestList:
    def test_every_user_with_memberships_state_and_two_step(self, people: dict[str, str]) -> None:
        turn_on_two_step(people, "bob@beta.example")
        lines = ok(people, "users", "list").splitlines()
        assert [line.split("\t")[0] for line in lines] == [
            "ann@acme.example", "bob@beta.example", "ops@vendor.example",
        ]  # fmt: skip
        ann, bob, ops = (line.split("\t") for line in lines)
        assert ann[1:4] == ["member", "active", "two-step off"]
        assert ann[-1] == "acme:caseworker,beta:viewer"
        assert bob[3] == "two-step on"
        assert ops[1] == "operator"
        assert ops[-1] == "-"
        assert "password" not in "\n".join(lines)

    def test_by_tenant_and_by_email(self, people: dict[str, str]) -> None:
        acme = ok(people, "users", "list", "--tenant", "acme").splitlines()
        assert [line.split("\t")[0] for line in acme] == ["ann@acme.example"]
        found = ok(people, "users", "list", "--email", "BETA").splitlines()
        assert [line.split("\t")[0] for line in found] == ["bob@beta.example"]
        assert (
            refused(people, "users", "list", "--tenant", "nope") == "error: tenant nope not found"
        )


class TestResetPassword:
    def test_a_generated_password_is_printed_once_and_sessions_end(
        self, people: dict[str, str]
    ) -> None:
        sign_in_somewhere(people, "ann@acme.example")
        listed = ok(people, "users", "list", "--email", "ann")
        assert "\t1 session(s)\t" in listed
        output = ok(people, "users", "reset-password", "--email", "Ann@Acme.example")
        said, shown = output.strip().splitlines()
        assert said == "password of ann@acme.example reset; 1 portal session(s) ended"
        password = shown.removeprefix("password (shown once): ")
        assert len(password) >= 20
        assert password_works(people, "ann@acme.example", password)
        assert "\t0 session(s)\t" in ok(people, "users", "list", "--email", "ann")
        resets = [
            (kind, label, d) for action, kind, label, d in audit_rows(people)
            if action == "user.password_reset"
        ]  # fmt: skip
        assert len(resets) == 1
        kind, label, details = resets[0]
        assert (kind, details) == ("cli", {"generated": True, "sessions_ended": 1})
        assert label.startswith("cli:")

    def test_a_password_from_stdin_is_not_echoed(self, people: dict[str, str]) -> None:
        output = ok(
            people, "users", "reset-password", "--email", "bob@beta.example", "--password-stdin",
            input=LONG_PASSWORD + "\n",
        )  # fmt: skip
        assert LONG_PASSWORD not in output
        assert "shown once" not in output
        assert password_works(people, "bob@beta.example", LONG_PASSWORD)

    def test_a_short_password_or_unknown_email_changes_nothing(
        self, people: dict[str, str]
    ) -> None:
        result = hub(
            people, "users", "reset-password", "--email", "bob@beta.example", "--password-stdin",
            input="short\n",
        )  # fmt: skip
        assert result.exit_code == 1
        assert last_line(result) == "error: password: must be at least 12 characters"
        assert not password_works(people, "bob@beta.example", "short")
        missing = refused(people, "users", "reset-password", "--email", "nobody@x.example")
        assert missing == "error: user nobody@x.example not found"
        bad = refused(people, "users", "reset-password", "--email", "not an email")
        assert bad == "error: email: is not an email address"
        assert not [row for row in audit_rows(people) if row[0] == "user.password_reset"]


def must_change(env: dict[str, str], email: str) -> bool:
    async def work(session: Any) -> bool:
        return (await auth.get_user_by_email(session, email)).must_change_password

    return in_hub(env, work)


class TestGeneratedPasswordsMustBeChanged:
    def test_a_generated_password_is_changed_at_the_first_sign_in(
        self, people: dict[str, str]
    ) -> None:
        assert must_change(people, "ann@acme.example")
        assert must_change(people, "ops@vendor.example")
        ok(
            people, "users", "create", "--email", "cat@acme.example", "--tenant", "acme",
            "--role", "viewer", "--password-stdin", input=LONG_PASSWORD + "\n",
        )  # fmt: skip
        assert not must_change(people, "cat@acme.example")

    def test_a_reset_marks_a_generated_password_only(self, people: dict[str, str]) -> None:
        ok(
            people, "users", "reset-password", "--email", "bob@beta.example", "--password-stdin",
            input=LONG_PASSWORD + "\n",
        )  # fmt: skip
        assert not must_change(people, "bob@beta.example")
        ok(people, "users", "reset-password", "--email", "bob@beta.example")
        assert must_change(people, "bob@beta.example")


class TestDeactivate:
    def test_sessions_end_tokens_stop_and_reactivating_restores_them(
        self, people: dict[str, str]
    ) -> None:
        token = ok(
            people, "tokens", "create", "--tenant", "acme", "--user", "ann@acme.example",
            "--scopes", "keys:read",
        ).strip().splitlines()[-1].split()[-1]  # fmt: skip

        def token_works() -> bool:
            return in_hub(people, lambda s: auth.authenticate(s, token)) is not None

        assert token_works()
        sign_in_somewhere(people, "ann@acme.example")
        said = ok(people, "users", "deactivate", "--email", "ann@acme.example").strip()
        assert said == (
            "user ann@acme.example deactivated; 1 portal session(s) ended, API tokens stop working"
        )
        assert not token_works()
        assert not password_works(people, "ann@acme.example", "anything at all, really")
        assert "\tdeactivated\t" in ok(people, "users", "list", "--email", "ann")
        again = ok(people, "users", "deactivate", "--email", "ann@acme.example").strip()
        assert again == "user ann@acme.example is already deactivated; nothing changed"
        back = ok(people, "users", "reactivate", "--email", "ann@acme.example").strip()
        assert back == "user ann@acme.example reactivated"
        assert token_works()
        twice = ok(people, "users", "reactivate", "--email", "ann@acme.example").strip()
        assert twice == "user ann@acme.example is already active; nothing changed"
        actions = [(a, k) for a, k, _, _ in audit_rows(people) if a.startswith("user.")]
        assert actions.count(("user.deactivated", "cli")) == 1
        assert actions.count(("user.reactivated", "cli")) == 1

    def test_never_the_last_active_operator(self, people: dict[str, str]) -> None:
        last = refused(people, "users", "deactivate", "--email", "ops@vendor.example")
        assert last == (
            "error: ops@vendor.example is the last active operator; make another operator first"
        )
        ok(people, "users", "create", "--email", "ops2@vendor.example", "--operator")
        ok(people, "users", "deactivate", "--email", "ops@vendor.example")
        assert "last active operator" in refused(
            people, "users", "deactivate", "--email", "ops2@vendor.example"
        )
        assert in_hub(people, user_named("ops2@vendor.example")).is_active

    def test_an_unknown_email_is_named(self, people: dict[str, str]) -> None:
        for command in ("deactivate", "reactivate", "reset-two-step"):
            line = refused(people, "users", command, "--email", "nobody@x.example")
            assert line == "error: user nobody@x.example not found", command


class TestResetTwoStep:
    def test_a_lost_phone_turns_it_off_audited_as_the_cli(self, people: dict[str, str]) -> None:
        turn_on_two_step(people, "ann@acme.example")
        assert two_step_is_on(people, "ann@acme.example")
        said = ok(people, "users", "reset-two-step", "--email", "ann@acme.example").strip()
        assert said == "two-step sign-in of ann@acme.example turned off"
        assert not two_step_is_on(people, "ann@acme.example")
        again = ok(people, "users", "reset-two-step", "--email", "ann@acme.example").strip()
        assert again == "two-step sign-in of ann@acme.example was not on; nothing changed"
        off = [(k, d) for a, k, _, d in audit_rows(people) if a == "user.two_step_disabled"]
        assert off == [("cli", {"by_self": False})]
