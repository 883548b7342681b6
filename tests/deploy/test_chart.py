"""The Helm chart, rendered by a real helm 3 and checked object by object."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from sigreward.cli import build_parser, settings_from_args
from sigreward.settings import Settings
from tests.deploy.conftest import CHART, CI_VALUES, RELEASE, ChartRunner, Rendered, pyproject
from tests.deploy.dockerfile import Dockerfile

pytestmark = pytest.mark.helm


FULLNAME = f"{RELEASE}-sigreward"
VARIANTS = [None, *CI_VALUES]
VARIANT_IDS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
PG_URL = "postgresql://sigreward:pw@db.example:5432/sigreward"
REPLICA_RULE = ("PostgreSQL", "own SQLite file", "own schedule")


def render(chart: ChartRunner, variant: Path | None, values: dict | None = None) -> Rendered:
    files = (variant,) if variant else ()
    return chart.template(*files, values=values)


def settings_env(r: Rendered, existing: dict[str, str]) -> dict[str, str]:
    """The container's SIGREWARD_* variables as the kubelet would set them."""
    env: dict[str, str] = {}
    for name, entry in r.env.items():
        if not name.startswith("SIGREWARD_"):
            continue
        if "value" in entry:
            env[name] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        if ref["name"] == FULLNAME:
            env[name] = r.secret_data(FULLNAME)[ref["key"]]
        else:
            env[name] = existing[name]
    return env


def server_settings() -> Settings:
    """Settings as `sigreward serve` (no flags) reads them from the environment."""
    return settings_from_args(build_parser().parse_args(["serve"]))


def test_chart_ci_variants_exist():
    names = {p.name for p in CI_VALUES}
    assert {
        "cpu-values.yaml",
        "multi-replica-postgres-values.yaml",
        "monitoring-values.yaml",
        "pvc-model-values.yaml",
    } <= names


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_lint_strict(chart, variant):
    files = (variant,) if variant else ()
    out = chart.run("lint", *files)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_probes_ports_and_service_agree(chart, variant):
    r = render(chart, variant)
    c = r.container
    (port,) = c["ports"]
    assert port["name"] == "http"
    assert r.env["SIGREWARD_PORT"]["value"] == str(port["containerPort"])
    assert r.env["SIGREWARD_HOST"]["value"] == "0.0.0.0"
    for probe, path in (
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ):
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    svc = r.one("Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_pod_runs_non_root_on_a_read_only_root(chart, variant):
    r = render(chart, variant)
    pod_sc = r.pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
    sc = r.container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "ALL" in sc["capabilities"]["drop"]
    assert r.pod["enableServiceLinks"] is False
    assert r.pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_every_writable_path_is_a_writable_volume(chart, variant):
    r = render(chart, variant)
    shm = r.mount_for("/dev/shm")
    assert shm is not None and shm[1]["emptyDir"]["medium"] == "Memory"
    for var in (
        "HOME",
        "HF_HOME",
        "TRITON_CACHE_DIR",
        "TRITON_HOME",
        "MPLCONFIGDIR",
        "XDG_CACHE_HOME",
        "SIGREWARD_DATA_DIR",
    ):
        path = r.env[var]["value"]
        found = r.mount_for(path)
        assert found is not None, f"{var}={path} is on the read-only root filesystem"
        mount, volume = found
        assert not mount.get("readOnly", False), f"{var}={path} is mounted read-only"
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume, volume
    tmp = r.mount_for("/tmp")
    assert tmp is not None and "emptyDir" in tmp[1]
    assert r.env["HF_HUB_OFFLINE"]["value"] == "1"


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_env_is_read_by_the_real_settings_and_grace_exceeds_drain(chart, variant, monkeypatch):
    r = render(chart, variant)
    fields = {f"SIGREWARD_{name.upper()}" for name in Settings.model_fields}
    unknown = {n for n in r.env if n.startswith("SIGREWARD_")} - fields
    assert not unknown, f"{unknown} match no Settings field (the server would ignore them)"
    existing = {"SIGREWARD_API_KEYS": '["from-existing-secret"]', "SIGREWARD_DATABASE_URL": PG_URL}
    for key in list(fields):
        monkeypatch.delenv(key, raising=False)
    for key, value in settings_env(r, existing).items():
        monkeypatch.setenv(key, value)
    settings = server_settings()
    assert settings.host == "0.0.0.0" and str(settings.data_dir) == "/data"
    assert settings.port == r.container["ports"][0]["containerPort"]
    grace = r.pod["terminationGracePeriodSeconds"]
    pre_stop = (
        r.container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    )
    sleep = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    assert grace > settings.drain_timeout_s + sleep, (grace, settings.drain_timeout_s, sleep)


def test_drain_timeout_sets_the_server_and_the_grace_period(chart, monkeypatch):
    r = chart.template(values={"drainTimeoutSeconds": 120, "preStopSleepSeconds": 0})
    assert r.env["SIGREWARD_DRAIN_TIMEOUT_S"]["value"] == "120"
    assert r.pod["terminationGracePeriodSeconds"] == 120 + 15
    assert "lifecycle" not in r.container
    monkeypatch.setenv("SIGREWARD_DRAIN_TIMEOUT_S", "120")
    assert server_settings().drain_timeout_s == 120.0


def test_gpu_limit_by_default_and_none_on_cpu(chart):
    gpu = chart.template()
    assert gpu.container["resources"]["limits"]["nvidia.com/gpu"] == 1
    two = chart.template(values={"resources": {"gpu": 2}})
    assert two.container["resources"]["limits"]["nvidia.com/gpu"] == 2
    cpu = chart.template(CHART / "ci" / "cpu-values.yaml")
    resources = cpu.container["resources"]
    assert "nvidia.com/gpu" not in resources.get("limits", {})
    assert "nvidia.com/gpu" not in resources.get("requests", {})
    assert resources["limits"]["cpu"] == "8"
    bare = chart.template(values={"resources": {"gpu": 0, "requests": None, "limits": None}})
    assert "nvidia.com/gpu" not in json.dumps(bare.container.get("resources", {}))


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": 2}, {"autoscaling": {"enabled": True, "maxReplicas": 3}}],
    ids=["replicaCount", "autoscaling"],
)
def test_several_replicas_without_postgres_fail_to_render(chart, values):
    err = chart.template_error(values=values)
    for phrase in REPLICA_RULE:
        assert phrase in err, err


def test_several_replicas_with_postgres_render_and_roll(chart):
    r = chart.template(values={"replicaCount": 2, "database": {"url": PG_URL}})
    deployment = r.one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    single = chart.template()
    assert single.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    one_max = chart.template(values={"autoscaling": {"enabled": True, "maxReplicas": 1}})
    assert one_max.one("HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 1


def test_optional_objects_only_when_enabled(chart):
    default = chart.template()
    for kind in (
        "ServiceMonitor",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "PersistentVolumeClaim",
    ):
        assert kind not in default.kinds()
    assert default.one("Deployment")["spec"]["replicas"] == 1
    r = chart.template(CHART / "ci" / "monitoring-values.yaml")
    sm = r.one("ServiceMonitor")
    # API keys are set, so /metrics needs one: the scrape sends the chart Secret's first key.
    assert sm["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "interval": "15s",
            "scrapeTimeout": "10s",
            "authorization": {
                "type": "Bearer",
                "credentials": {"name": FULLNAME, "key": "metrics-token"},
            },
        }
    ]
    assert r.secret_data(FULLNAME)["metrics-token"] == "trainer-key-1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert (
        sm["spec"]["selector"]["matchLabels"].items()
        <= r.one("Service")["metadata"]["labels"].items()
    )
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "sigreward_queue_depth"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "32768"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert "replicas" not in r.one("Deployment")["spec"], "the HPA owns the replica count"
    pdb = r.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]


def test_service_monitor_sends_a_token_unless_metrics_are_open(chart):
    monitored = {"serviceMonitor": {"enabled": True}}
    existing = {"apiKeys": {"existingSecret": "keys"}, **monitored}
    err = chart.template_error(values=existing)
    assert "serviceMonitor.bearerTokenSecret" in err, err
    named = chart.template(
        values={
            **existing,
            "serviceMonitor": {
                "enabled": True,
                "bearerTokenSecret": {"name": "scrape", "key": "token"},
            },
        }
    )
    (endpoint,) = named.one("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {"name": "scrape", "key": "token"}
    opened = chart.template(values={**existing, "config": {"metricsOpen": True}})
    (endpoint,) = opened.one("ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    assert opened.env["SIGREWARD_METRICS_OPEN"]["value"] == "true"
    (endpoint,) = chart.template(values=monitored).one("ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint  # no keys: the API and /metrics are open


def test_chart_created_secret_feeds_api_keys_and_database_url(chart, monkeypatch):
    r = chart.template(CHART / "ci" / "monitoring-values.yaml")
    values = yaml.safe_load((CHART / "ci" / "monitoring-values.yaml").read_text())
    for var, key in (
        ("SIGREWARD_API_KEYS", "api-keys"),
        ("SIGREWARD_DATABASE_URL", "database-url"),
    ):
        assert "value" not in r.env[var], f"{var} must not be a plain value"
        assert r.env[var]["valueFrom"]["secretKeyRef"] == {"name": FULLNAME, "key": key}
    data = r.secret_data(FULLNAME)
    monkeypatch.setenv("SIGREWARD_API_KEYS", data["api-keys"])
    monkeypatch.setenv("SIGREWARD_DATABASE_URL", data["database-url"])
    settings = server_settings()
    assert settings.api_keys == values["apiKeys"]["keys"]
    assert settings.database_url == values["database"]["url"]
    annotations = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
    changed = chart.template(
        CHART / "ci" / "monitoring-values.yaml", values={"apiKeys": {"keys": ["rotated"]}}
    )
    new = changed.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert new["checksum/secret"] != annotations["checksum/secret"], "a key rotation must roll pods"


def test_existing_secrets_are_referenced_not_created(chart):
    r = chart.template(CHART / "ci" / "multi-replica-postgres-values.yaml")
    assert "Secret" not in r.kinds()
    assert r.env["SIGREWARD_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "sigreward-postgres",
        "key": "database-url",
    }
    assert r.env["SIGREWARD_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
        "name": "sigreward-api-keys",
        "key": "keys.json",
    }
    assert r.one("Deployment")["spec"]["replicas"] == 3
    assert "annotations" not in r.one("Deployment")["spec"]["template"]["metadata"]
    open_api = chart.template()
    assert "SIGREWARD_API_KEYS" not in open_api.env and "SIGREWARD_DATABASE_URL" not in open_api.env


def test_model_from_a_pvc_or_from_the_image(chart):
    r = chart.template(CHART / "ci" / "pvc-model-values.yaml")
    mount, volume = r.mount_for("/models")
    assert volume["persistentVolumeClaim"] == {"claimName": "sigreward-models", "readOnly": True}
    assert mount["readOnly"] is True
    assert mount["subPath"] == "llmlingua-2-xlm-roberta-large-meetingbank"
    assert r.env["SIGREWARD_MODEL"]["value"] == "/models"
    baked = chart.template(values={"model": {"path": "/opt/sigreward/model"}})
    assert baked.env["SIGREWARD_MODEL"]["value"] == "/opt/sigreward/model"
    assert baked.mount_for("/models") is None
    default = chart.template()
    assert "SIGREWARD_MODEL" not in default.env, "no model configured: keep the image's default"


def test_data_on_a_pvc_or_an_empty_dir(chart):
    r = chart.template(CHART / "ci" / "cpu-values.yaml")
    pvc = r.one("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == f"{FULLNAME}-data"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    _, volume = r.mount_for("/data")
    assert volume["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-data"
    existing = chart.template(values={"persistence": {"enabled": True, "existingClaim": "mine"}})
    assert "PersistentVolumeClaim" not in existing.kinds()
    assert existing.mount_for("/data")[1]["persistentVolumeClaim"]["claimName"] == "mine"
    _, scratch = chart.template().mount_for("/data")
    assert "emptyDir" in scratch


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"resources": {"gpu": -1}}, "resources.gpu"),
        ({"replicas": 2}, "replicas"),
        ({"config": {"dtype": "fp16"}}, "config.dtype"),
        ({"database": {"url": "mysql://x"}}, "database.url"),
        ({"database": {"url": PG_URL, "existingSecret": "s"}}, "not both"),
        ({"apiKeys": {"keys": ["a"], "existingSecret": "s"}}, "not both"),
        ({"model": {"pvc": {"subPath": "m"}}}, "model.pvc.claimName"),
        (
            {
                "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 2},
                "database": {"url": PG_URL},
            },
            "minReplicas",
        ),
        ({"terminationGraceMarginSeconds": 0}, "terminationGraceMarginSeconds"),
    ],
    ids=[
        "negative-gpu",
        "unknown-key",
        "dtype",
        "db-scheme",
        "db-both",
        "keys-both",
        "subpath-alone",
        "min-above-max",
        "no-margin",
    ],
)
def test_bad_values_are_rejected_with_the_field_named(chart, values, message):
    err = chart.template_error(values=values)
    assert message in err, err


# Values documented as one row although they are maps.
_OPAQUE = {"podSecurityContext", "securityContext", "requests", "limits", "behavior"}


def value_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in _OPAQUE:
            keys += value_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def test_chart_readme_documents_every_value_and_versions_match():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)`", readme, flags=re.M))
    missing = set(value_keys(values)) - documented
    assert not missing, f"values not in the chart README's table: {sorted(missing)}"
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = pyproject()["project"]
    assert chart_meta["appVersion"] == project["version"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"])


def test_chart_env_and_user_agree_with_the_image(chart):
    image = Dockerfile(CHART.parents[1] / "Dockerfile").image_config({})
    r = chart.template()
    shared = {
        "SIGREWARD_HOST",
        "SIGREWARD_PORT",
        "SIGREWARD_DATA_DIR",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "TRITON_HOME",
        "TRITON_CACHE_DIR",
        "MPLCONFIGDIR",
        "XDG_CACHE_HOME",
    }
    for name in shared:
        assert r.env[name]["value"] == image["env"][name], name
    uid, _, gid = str(image["user"]).partition(":")
    assert r.pod["securityContext"]["runAsUser"] == int(uid)
    assert r.pod["securityContext"]["runAsGroup"] == int(gid)
    assert r.container["securityContext"]["runAsUser"] == int(uid)


def render_notes(chart: ChartRunner, tmp_path: Path, values: dict | None = None) -> str:
    """NOTES.txt as `helm install` prints it: `helm template` skips NOTES, so a scratch copy of
    the chart renders the same text inside a ConfigMap."""
    scratch = tmp_path / "sigreward"
    shutil.copytree(CHART, scratch)
    notes = (scratch / "templates" / "NOTES.txt").read_text()
    (scratch / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + notes + "{{- end -}}\n"
    )
    (scratch / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '{{ include "test.notes" . | indent 4 }}\n'
    )
    args = ["template", RELEASE, str(scratch), "-n", "ns", "--show-only", "templates/zz-notes.yaml"]
    if values:
        (tmp_path / "v.yaml").write_text(yaml.safe_dump(values))
        args += ["-f", str(tmp_path / "v.yaml")]
    out = chart.helm.run(*args)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["data"]["notes"]


def test_notes_warn_about_an_open_api_and_a_throwaway_store(chart, tmp_path):
    default = render_notes(chart, tmp_path / "a")
    assert "WARNING: the API is open" in default
    assert "Store: SQLite on an emptyDir. WARNING" in default
    assert f"port-forward service/{FULLNAME} 8000:8000" in default
    secured = render_notes(
        chart, tmp_path / "b", {"database": {"url": PG_URL}, "apiKeys": {"keys": ["k"]}}
    )
    assert "WARNING" not in secured
    assert "Store: PostgreSQL" in secured and "API keys: required" in secured
