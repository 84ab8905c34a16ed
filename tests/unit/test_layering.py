"""The hub's layers: `workers` builds on `hub`, never the other way round (a web process
must not import worker code), except the runner that starts a worker."""

from __future__ import annotations

import ast
from pathlib import Path

HUB = Path(__file__).resolve().parents[2] / "hub"
RUNNERS = {"runtime.py"}  # starts the API and the worker in one process


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_hub_does_not_import_workers() -> None:
    offenders = {
        str(path.relative_to(HUB.parent)): sorted(
            m for m in modules if m.split(".")[0] == "workers"
        )
        for path in HUB.rglob("*.py")
        if path.name not in RUNNERS or path.parent != HUB
        for modules in [imported_modules(path)]
        if any(m.split(".")[0] == "workers" for m in modules)
    }
    assert offenders == {}
