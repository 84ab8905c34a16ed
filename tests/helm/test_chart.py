"""The chart: it lints, renders valid Kubernetes objects, and keeps the hub's rules."""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

import helm_python
import pytest
import yaml

import hub
from hub.settings import ENV_PREFIX, Settings, load_settings
from tests.helm.conftest import (
    CHART_DIR,
    RELEASE,
    ROOT,
    SECRET,
    Rendered,
    validate_all,
    with_secret,
)

# Every optional feature on at once.
EVERYTHING_ON: dict[str, Any] = {
    "secrets": {"keys": {"smtpUrl": "smtp-url"}},
    "image": {"pullSecrets": [{"name": "regcred"}], "tag": "1.2.3"},
    "podAnnotations": {"team": "casework"},
    "podLabels": {"cost-center": "ctm"},
    "serviceAccount": {"annotations": {"example.com/role": "hub"}},
    "api": {
        "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
        "pdb": {"enabled": True, "minAvailable": "50%"},
        "nodeSelector": {"pool": "hub"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/component": "api"}
                            },
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "podAnnotations": {"api-only": "yes"},
    },
    "worker": {
        "pdb": {"enabled": True},
        "livenessProbe": {"enabled": True},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
            }
        ],
    },
    "migrations": {"serviceAccountName": "hub-migrator", "nodeSelector": {"pool": "hub"}},
    "service": {"annotations": {"example.com/lb": "internal"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "50m"},
        "hosts": [{"host": "hub.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "hub-tls", "hosts": ["hub.example.com"]}],
    },
    "metrics": {
        "enabled": True,
        "podAnnotations": True,
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
        ],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
    },
}
COMPONENTS = ("api", "worker", "migrations")
# What a database, Redis or SMTP URL, a master key ring entry or a hub token looks like.
SECRET_SHAPE = r"(postgres(ql)?|rediss?|smtps?)://|v\w*:[A-Za-z0-9+/]{40,}|hub_[A-Za-z0-9]{30}"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    refs = {}
    for name, item in env_of(container).items():
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs[name] = (ref["name"], ref["key"])
    return refs


def settings_of(rendered: Rendered, component: str) -> dict[str, str]:
    """The non-secret HUB_* variables a component's container gets."""
    container = rendered.container(component)
    settings = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        configmap = next(o for o in rendered.all("ConfigMap") if o["metadata"]["name"] == name)
        settings.update(configmap["data"])
    for name, item in env_of(container).items():
        if "value" in item:
            settings[name] = item["value"]
    return settings


class TestLint:
    def test_lint_finds_no_error(self) -> None:
        report = helm_python.lint(CHART_DIR, with_secret(), strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        # `icon is recommended` is an info; anything at warning or above is a finding.
        assert problems == []

    def test_app_version_is_the_hubs_version(self, chart: helm_python.Chart) -> None:
        with (ROOT / "pyproject.toml").open("rb") as handle:
            project_version = tomllib.load(handle)["project"]["version"]
        assert chart.metadata["appVersion"] == hub.__version__ == project_version

    def test_chart_is_apiversion_v2(self, chart: helm_python.Chart) -> None:
        assert chart.metadata["apiVersion"] == "v2"


class TestDefaults:
    def test_defaults_render_valid_objects(self, render: Any) -> None:
        rendered = render()
        kinds = sorted(o["kind"] for o in rendered.objects)
        assert kinds == [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Job",
            "Service",
            "ServiceAccount",
        ]
        assert validate_all(rendered) == []

    def test_missing_existing_secret_fails_naming_the_value(self, render: Any) -> None:
        with pytest.raises(
            helm_python.HelmRenderError, match=r"secrets\.existingSecret is required"
        ):
            render(secret=False)

    def test_image_defaults_to_the_app_version(self, render: Any, chart: Any) -> None:
        for component in COMPONENTS:
            container = render().container(component)
            assert container["image"] == f"ctm-hub:{chart.metadata['appVersion']}"

    def test_commands(self, render: Any) -> None:
        rendered = render()
        commands = {
            c: rendered.container(c)["command"] + rendered.container(c)["args"] for c in COMPONENTS
        }
        assert commands == {
            "api": ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"],  # noqa: S104 - pod IP
            "worker": ["hub", "worker"],
            "migrations": ["hub", "db", "upgrade"],
        }


class TestSchema:
    @pytest.mark.parametrize(
        ("values", "complaint"),
        [
            ({"api": {"replicas": "3"}}, "/api/replicas"),
            ({"worker": {"replicas": -1}}, "/worker/replicas"),
            ({"replicaCount": 3}, "additional properties 'replicaCount'"),
            ({"api": {"replica": 3}}, "additional properties 'replica'"),
            ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
            ({"config": {"logLevel": "TRACE"}}, "/config/logLevel"),
            ({"config": {"logFormat": "xml"}}, "/config/logFormat"),
            ({"config": {"syncOverlapDays": 0}}, "/config/syncOverlapDays"),
            ({"config": {"webhookTimeoutSeconds": 121}}, "/config/webhookTimeoutSeconds"),
            ({"config": {"webhookRetrySchedule": "0, 5,x"}}, "/config/webhookRetrySchedule"),
            ({"config": {"ctmSandboxUrl": "ftp://example.com"}}, "/config/ctmSandboxUrl"),
            ({"config": {"databaseUrl": "postgresql://u:p@h/db"}}, "'databaseUrl'"),
            ({"secrets": {"keys": {"masterKeys": "not a key!"}}}, "/secrets/keys/masterKeys"),
            ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
            ({"ingress": {"hosts": [{"host": "h", "paths": [{"path": "/"}]}]}}, "pathType"),
        ],
    )
    def test_bad_values_fail_the_render(self, render: Any, values: Any, complaint: str) -> None:
        with pytest.raises(helm_python.HelmValuesError) as caught:
            render(values)
        assert complaint in str(caught.value)

    def test_same_ctm_urls_fail_the_render(self, render: Any) -> None:
        url = "https://hpms.cms.gov"
        with pytest.raises(helm_python.HelmRenderError, match="must differ"):
            render({"config": {"ctmSandboxUrl": url, "ctmProductionUrl": url}})

    def test_worker_grace_must_fit_the_pod_grace(self, render: Any) -> None:
        too_long = {"config": {"workerShutdownGraceSeconds": 115}}
        with pytest.raises(helm_python.HelmRenderError, match="must exceed"):
            render(too_long)
        config = render({"config": {"workerShutdownGraceSeconds": 60}}).get("ConfigMap", "")
        assert config["data"]["HUB_WORKER_SHUTDOWN_GRACE_SECONDS"] == "60"

    def test_service_monitor_needs_metrics(self, render: Any) -> None:
        with pytest.raises(helm_python.HelmRenderError, match=r"needs metrics\.enabled"):
            render({"metrics": {"serviceMonitor": {"enabled": True}}})


class TestEverythingOn:
    def test_every_optional_feature_renders_valid_objects(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        kinds = {o["kind"] for o in rendered.objects}
        assert kinds >= {
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Ingress",
            "NetworkPolicy",
            "ServiceMonitor",
        }
        assert validate_all(rendered) == []

    def test_service_monitor_scrapes_metrics_with_the_token_from_the_secret(
        self, render: Any
    ) -> None:
        rendered = render(EVERYTHING_ON)
        monitor = rendered.get("ServiceMonitor")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = rendered.get("Service")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["authorization"] == {
            "type": "Bearer",
            "credentials": {"name": SECRET, "key": "metrics-token"},
        }
        assert secret_refs(rendered.container("api"))["HUB_METRICS_TOKEN"] == (
            SECRET,
            "metrics-token",
        )

    def test_metrics_off_sets_no_token_and_no_scrape(self, render: Any) -> None:
        rendered = render()
        assert "HUB_METRICS_TOKEN" not in secret_refs(rendered.container("api"))
        assert not rendered.has("ServiceMonitor")
        annotations = rendered.deployment("api")["spec"]["template"]["metadata"]["annotations"]
        assert "prometheus.io/scrape" not in annotations

    def test_scrape_annotations_on_api_pods_only(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        api = rendered.deployment("api")["spec"]["template"]["metadata"]["annotations"]
        assert api["prometheus.io/scrape"] == "true"
        assert api["prometheus.io/port"] == "8000"
        assert api["prometheus.io/path"] == "/metrics"
        worker = rendered.deployment("worker")["spec"]["template"]["metadata"]["annotations"]
        assert "prometheus.io/scrape" not in worker

    def test_hpa_takes_over_the_api_replica_count(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        assert "replicas" not in rendered.deployment("api")["spec"]
        hpa = rendered.get("HorizontalPodAutoscaler", "-api")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-ctm-hub-api"
        assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
        assert rendered.deployment("worker")["spec"]["replicas"] == 2

    def test_pdbs_select_their_own_component(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        for component in ("api", "worker"):
            pdb = rendered.get("PodDisruptionBudget", f"-{component}")
            labels = rendered.deployment(component)["spec"]["template"]["metadata"]["labels"]
            assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert rendered.get("PodDisruptionBudget", "-api")["spec"]["minAvailable"] == "50%"
        assert rendered.get("PodDisruptionBudget", "-worker")["spec"]["maxUnavailable"] == 1

    def test_spread_constraints_get_the_components_selector(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        for component in ("api", "worker"):
            (constraint,) = rendered.pod_spec(component)["topologySpreadConstraints"]
            assert (
                constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"]
                == component
            )

    def test_network_policy_opens_only_the_api_port(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        api = rendered.get("NetworkPolicy", "-api")
        (rule,) = api["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        worker = rendered.get("NetworkPolicy", "-worker")
        assert worker["spec"]["ingress"] == []
        assert "Egress" in worker["spec"]["policyTypes"]

    def test_ingress_routes_to_the_service(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        ingress = rendered.get("Ingress")
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"] == [{"secretName": "hub-tls", "hosts": ["hub.example.com"]}]
        (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"]["service"] == {
            "name": f"{RELEASE}-ctm-hub",
            "port": {"name": "http"},
        }


class TestSecrets:
    def test_secrets_are_references_to_the_existing_secret(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        expected = {
            "HUB_DATABASE_URL": (SECRET, "database-url"),
            "HUB_REDIS_URL": (SECRET, "redis-url"),
            "HUB_MASTER_KEYS": (SECRET, "master-keys"),
            "HUB_SMTP_URL": (SECRET, "smtp-url"),
            "HUB_METRICS_TOKEN": (SECRET, "metrics-token"),
        }
        for component in COMPONENTS:
            assert secret_refs(rendered.container(component)) == expected

    def test_key_names_are_configurable(self, render: Any) -> None:
        keys = {"databaseUrl": "pg", "redisUrl": "redis", "masterKeys": "ring"}
        refs = secret_refs(render({"secrets": {"keys": keys}}).container("worker"))
        assert refs == {
            "HUB_DATABASE_URL": (SECRET, "pg"),
            "HUB_REDIS_URL": (SECRET, "redis"),
            "HUB_MASTER_KEYS": (SECRET, "ring"),
        }

    def test_no_secret_value_in_any_object(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        assert not rendered.has("Secret")
        secret_names = {"HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_MASTER_KEYS", "HUB_SMTP_URL"}
        for configmap in rendered.all("ConfigMap"):
            assert not secret_names.intersection(configmap["data"])
        for component in COMPONENTS:
            for name, item in env_of(rendered.container(component)).items():
                if name in secret_names | {"HUB_METRICS_TOKEN"}:
                    assert set(item) == {"name", "valueFrom"}, name
        for line in rendered.text().splitlines():
            value = line.partition(":")[2].strip().strip('"')
            assert not re.match(SECRET_SHAPE, value), line

    def test_values_file_holds_no_secret(self, chart: helm_python.Chart) -> None:
        def strings(value: Any) -> list[str]:
            if isinstance(value, dict):
                return [s for v in value.values() for s in strings(v)]
            if isinstance(value, list):
                return [s for v in value for s in strings(v)]
            return [value] if isinstance(value, str) else []

        for text in strings(chart.values):
            assert not re.match(SECRET_SHAPE, text), text


class TestMigrationHook:
    def test_hook_runs_before_install_and_upgrade(self, render: Any) -> None:
        job = render().get("Job", "-migrations")
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
            "before-hook-creation",
            "hook-succeeded",
        }
        assert job["spec"]["backoffLimit"] == 2
        assert job["spec"]["activeDeadlineSeconds"] == 900
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    def test_hook_needs_nothing_the_release_creates(self, render: Any) -> None:
        """A pre-install hook runs before the release's ConfigMap and ServiceAccount exist."""
        rendered = render()
        container = rendered.container("migrations")
        assert "envFrom" not in container
        assert "serviceAccountName" not in rendered.pod_spec("migrations")

    def test_migrations_can_be_turned_off(self, render: Any) -> None:
        assert not render({"migrations": {"enabled": False}}).has("Job")


class TestProbes:
    def test_api_probes(self, render: Any) -> None:
        container = render().container("api")
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    def test_worker_liveness_runs_the_heartbeat_check(self, render: Any) -> None:
        container = render({"worker": {"livenessProbe": {"enabled": True}}}).container("worker")
        check = ["python", "-m", "workers.health"]
        assert container["livenessProbe"]["exec"]["command"] == check
        assert container["startupProbe"]["exec"]["command"] == check
        assert "enabled" not in container["livenessProbe"]
        live = container["livenessProbe"]
        # Longer than a job may hold the poll loop (jobs time out after 300 s).
        assert live["periodSeconds"] * live["failureThreshold"] > 300

    def test_worker_liveness_reads_its_own_heartbeat(self, render: Any) -> None:
        container = render().container("worker")
        for probe in ("livenessProbe", "startupProbe"):
            assert container[probe]["exec"]["command"][-2:] == ["-m", "workers.health"]
        off = render({"worker": {"livenessProbe": {"enabled": False}}}).container("worker")
        assert "livenessProbe" not in off

    def test_workers_have_time_to_stop(self, render: Any) -> None:
        rendered = render()
        assert rendered.pod_spec("worker")["terminationGracePeriodSeconds"] >= 60


class TestSecurity:
    @pytest.mark.parametrize("component", COMPONENTS)
    def test_pods_run_locked_down(self, render: Any, component: str) -> None:
        rendered = render()
        pod = rendered.pod_spec(component)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        context = rendered.container(component)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}

    @pytest.mark.parametrize("component", COMPONENTS)
    def test_writable_dirs_are_empty_dirs(self, render: Any, component: str) -> None:
        rendered = render()
        volumes = {v["name"]: v for v in rendered.pod_spec(component)["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in rendered.container(component)["volumeMounts"]}
        data_dir = settings_of(rendered, component)["HUB_DATA_DIR"]
        assert set(mounts) == {"/tmp", data_dir}
        assert all("emptyDir" in volumes[name] for name in mounts.values())

    def test_service_account_mounts_no_token(self, render: Any) -> None:
        account = render().get("ServiceAccount")
        assert account["automountServiceAccountToken"] is False
        assert render().pod_spec("api")["serviceAccountName"] == account["metadata"]["name"]


class TestConfig:
    def test_api_worker_and_migrations_get_the_same_settings(self, render: Any) -> None:
        rendered = render(EVERYTHING_ON)
        api = settings_of(rendered, "api")
        assert settings_of(rendered, "worker") == api
        assert settings_of(rendered, "migrations") == api
        assert api["HUB_ENV"] == "production"
        assert api["HUB_LOG_FORMAT"] == "json"

    def test_values_reach_the_settings(self, render: Any) -> None:
        config = {
            "publicUrl": "https://hub.example.com",
            "syncIntervalMinutes": 30,
            "syncFirstWindowDays": 3650,
            "webhookAllowPrivateNetworks": True,
            "webhookTimeoutSeconds": 7.5,
            "webhookRetrySchedule": "0,60",
        }
        settings = settings_of(render({"config": config}), "worker")
        assert settings["HUB_PUBLIC_URL"] == "https://hub.example.com"
        assert settings["HUB_SYNC_INTERVAL_MINUTES"] == "30"
        assert settings["HUB_SYNC_FIRST_WINDOW_DAYS"] == "3650"
        assert settings["HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] == "true"
        assert settings["HUB_WEBHOOK_TIMEOUT_SECONDS"] == "7.5"
        assert settings["HUB_WEBHOOK_RETRY_SCHEDULE"] == "0,60"

    def test_the_hub_accepts_the_rendered_settings(
        self, render: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ConfigMap, with the Secret's values filled in, starts the hub in production."""
        for name in list(os.environ):
            if name.startswith(ENV_PREFIX):
                monkeypatch.delenv(name)
        for name, value in settings_of(render(EVERYTHING_ON), "api").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://hub:pw@db/hub")
        monkeypatch.setenv("HUB_REDIS_URL", "redis://redis:6379/0")
        monkeypatch.setenv("HUB_MASTER_KEYS", "v1:" + "A" * 43 + "=")
        settings = load_settings()
        assert settings.is_production
        assert settings.webhook_retry_delays[0] == 0

    def test_every_hub_setting_is_covered(self, render: Any) -> None:
        """A new HUB_* setting must be exposed by the chart (config or secret) or listed here."""
        rendered = render(EVERYTHING_ON)
        covered = set(settings_of(rendered, "api")) | set(secret_refs(rendered.container("api")))
        not_exposed = {"HUB_MASTER_KEY_FILE"}  # the chart passes the key ring as a variable
        expected = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
        assert expected - not_exposed == covered

    def test_a_config_change_rolls_the_pods(self, render: Any) -> None:
        def checksum(rendered: Rendered, component: str) -> str:
            metadata = rendered.deployment(component)["spec"]["template"]["metadata"]
            return str(metadata["annotations"]["checksum/config"])

        before, after = render(), render({"config": {"logLevel": "DEBUG"}})
        for component in ("api", "worker"):
            assert checksum(before, component) != checksum(after, component)
        assert checksum(before, "api") == checksum(render(), "api")

    def test_configmap_holds_strings_only(self, render: Any) -> None:
        (configmap,) = render().all("ConfigMap")
        assert all(isinstance(v, str) for v in configmap["data"].values())
        assert yaml.safe_load(yaml.safe_dump(configmap)) == configmap
