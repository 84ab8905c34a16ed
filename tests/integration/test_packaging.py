"""The wheel holds what an installed hub needs at run time: the migrations too, where
`hub.core.db.migrate` looks for them (an image built with `pip install .` has no checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hub.core.db import migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout: setuptools leaves `build/` behind, and would
    reuse one already there."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("hub", "workers", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("ctm_hub-*.whl")
    return built


def test_the_wheel_carries_every_migration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"migrations/env.py", "migrations/script.py.mako"} <= names
    shipped = {n.removeprefix("migrations/versions/") for n in names if "/versions/" in n}
    in_checkout = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert shipped == in_checkout
    assert not any(n.startswith(("tests/", "var/")) for n in names)


def test_an_installed_hub_finds_its_migrations(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as pip installs it, with no checkout on the path."""
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import sys; from hub.core.db import migrate; "
        "assert str(migrate.MIGRATIONS_DIR).startswith(sys.argv[1]), migrate.MIGRATIONS_DIR; "
        "print(*migrate.current_heads())"
    )
    script = f"import sys; sys.path[:0] = [{str(site)!r}]; {probe}"
    found = subprocess.run(
        [sys.executable, "-I", "-c", script, str(site)],
        check=True, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert found.stdout.split() == list(migrate.current_heads())


def test_the_wheel_carries_the_portal_templates_and_static_files(wheel: Path) -> None:
    """The portal renders from `hub/templates` and serves htmx and its stylesheet from
    `hub/static`: an image without them would start, and answer every page with a 500."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "static"):
        in_checkout = {
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / "hub" / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert in_checkout, folder
        assert in_checkout <= names, sorted(in_checkout - names)
    assert {"hub/static/htmx.min.js", "hub/templates/portal/base.html"} <= names
