"""The Dockerfile, read statically: no image can be built here (no registry to pull the base).

What is checked is what the chart relies on: the entrypoint and commands, the numeric
non-root user its securityContext names, the pinned dependency tree, the migrations, and
what the build context leaves out.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from tests.helm.conftest import CHART_DIR, ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions(stage: int | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined; one stage's if given."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[tuple[str, str]] = []
    stages = -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages += 1
        if stage is None or stages == stage:
            found.append((word.upper(), rest.strip()))
    return found


def last(name: str) -> str:
    values = [rest for word, rest in instructions() if word == name]
    assert values, f"no {name}"
    return values[-1]


def final_stage() -> list[tuple[str, str]]:
    return instructions(stage=sum(1 for w, _ in instructions() if w == "FROM") - 1)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


class TestImage:
    def test_every_stage_is_python_3_11_slim(self) -> None:
        assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE.read_text()
        bases = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
        assert len(bases) == 2
        assert all(base == "${PYTHON_IMAGE}" for base in bases)

    def test_entrypoint_is_the_hub_script(self, pyproject: dict[str, Any]) -> None:
        assert json.loads(last("ENTRYPOINT")) == ["hub"]
        assert "hub" in pyproject["project"]["scripts"]
        assert json.loads(last("CMD")) == ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
        assert last("EXPOSE") == "8000"

    def test_runs_as_a_numeric_non_root_user(self) -> None:
        user, _, group = last("USER").partition(":")
        assert user.isdigit()
        assert group.isdigit()
        assert int(user) != 0
        assert int(group) != 0
        values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
        assert values["podSecurityContext"]["runAsUser"] == int(user)
        assert values["podSecurityContext"]["runAsGroup"] == int(group)

    def test_final_stage_gets_only_the_virtualenv(self) -> None:
        stage = final_stage()
        copies = [rest for word, rest in stage if word == "COPY"]
        assert copies == ["--from=build /opt/venv /opt/venv"]
        runs = " ".join(rest for word, rest in stage if word == "RUN")
        for tool in ("apt-get", "pip install", "gcc", "build-essential"):
            assert tool not in runs

    def test_data_dir_is_where_the_chart_mounts_it(self) -> None:
        env = " ".join(rest for word, rest in final_stage() if word == "ENV")
        assert "HUB_DATA_DIR=/var/lib/ctm-hub" in env


class TestDependencies:
    def test_installs_the_locked_versions_then_the_project_alone(self) -> None:
        runs = [shlex.split(rest) for word, rest in instructions(stage=0) if word == "RUN"]
        commands = [" ".join(words) for words in runs]
        locked = next(i for i, c in enumerate(commands) if "--constraint requirements.lock" in c)
        project = next(i for i, c in enumerate(commands) if "pip install --no-deps" in c)
        assert locked < project
        assert "--only-binary=:all:" in commands[locked]
        assert "pip check" in commands[locked]

    def test_every_runtime_dependency_is_locked_at_its_pin(self, pyproject: dict[str, Any]) -> None:
        lock = {}
        for line in (ROOT / "requirements.lock").read_text().splitlines():
            name, sep, version = line.partition("==")
            if sep:
                lock[re.sub(r"[-_.]+", "-", name).lower()] = version
        for requirement in pyproject["project"]["dependencies"]:
            name, _, version = requirement.partition("==")
            name = re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()
            assert lock.get(name) == version, requirement

    def test_migrations_are_installed_and_checked(self) -> None:
        """The wheel carries them (tests/integration/test_packaging.py); the build checks an
        installed hub finds them, from outside the source tree."""
        runs = " ".join(rest for word, rest in instructions(stage=0) if word == "RUN")
        assert (
            "cd / && python -c 'from hub.core.db import migrate; assert migrate.current_heads()"
            in runs
        )
        copies = [rest for word, rest in instructions(stage=0) if word == "COPY"]
        assert "migrations/ migrations/" in copies


class TestBuildContext:
    def test_dockerignore_leaves_out_local_state_and_tests(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        assert {".git", ".venv", "var", "tests", "**/__pycache__"} <= ignored

    def test_dockerignore_keeps_what_the_build_copies(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        copied = {
            "pyproject.toml",
            "README.md",
            "requirements.lock",
            "hub",
            "workers",
            "migrations",
        }
        assert not copied & ignored
