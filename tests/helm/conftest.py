"""The chart rendered offline by Helm's own engine (helm-python-sdk), and the objects it makes.

Every rendered object is validated against the Kubernetes schemas that kubernetes-validate
ships (strict: an unknown field fails too), for the oldest and newest versions tested.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "ctm-hub"
RELEASE = "hub"
NAMESPACE = "ctm"
SECRET = "hub-secrets"
# The oldest Kubernetes the chart is checked against, and the newest the validator ships.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Kinds no Kubernetes schema covers (CRDs); their tests check the shape themselves.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

Manifest = dict[str, Any]
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def with_secret(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """`values` plus the one value the chart requires."""
    return deep_merge({"secrets": {"existingSecret": SECRET}}, values or {})


class Rendered:
    """One render of the chart: its objects by kind and name."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.objects: list[Manifest] = [
            document
            for name, text in sorted(files.items())
            if name.endswith(".yaml")
            for document in yaml.load_all(text, Loader=YamlLoader)
            if document
        ]

    def all(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, suffix: str = "") -> Manifest:
        name = f"{RELEASE}-ctm-hub{suffix}"
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    def has(self, kind: str) -> bool:
        return bool(self.all(kind))

    def deployment(self, component: str) -> Manifest:
        return self.get("Deployment", f"-{component}")

    def pod_spec(self, component: str) -> dict[str, Any]:
        if component == "migrations":
            spec: dict[str, Any] = self.get("Job", "-migrations")["spec"]["template"]["spec"]
        else:
            spec = self.deployment(component)["spec"]["template"]["spec"]
        return spec

    def container(self, component: str) -> dict[str, Any]:
        (container,) = self.pod_spec(component)["containers"]
        return dict(container)

    def text(self) -> str:
        return "\n".join(self.files.values())


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Any:
    """Render with `values` (plus the required Secret unless `secret=False`). A render is
    deterministic, so each set of values is rendered once per run; tests must not mutate."""
    renders: dict[str, Rendered] = {}

    def render(values: dict[str, Any] | None = None, *, secret: bool = True) -> Rendered:
        given = with_secret(values) if secret else (values or {})
        key = json.dumps(given, sort_keys=True)
        if key not in renders:
            renders[key] = Rendered(chart.render(given, name=RELEASE, namespace=NAMESPACE))
        return renders[key]

    return render


def validate_all(rendered: Rendered) -> list[str]:
    """Each object checked against every KUBE_VERSIONS schema; the failures, as text."""
    failures = []
    for manifest in rendered.objects:
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                failures.append(
                    f"{manifest['kind']}/{manifest['metadata']['name']} on {version}: "
                    f"{path}: {error.message}"
                )
    return failures
