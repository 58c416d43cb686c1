"""helm/driftline: lint, every render mode, Kubernetes and CRD schemas, security and behaviour."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from driftline.cli.drift import drift
from driftline.config import Settings
from driftline.store import Store
from operators.assembly import operator_context
from operators.health import ScrapeHealth
from operators.kube import manifests
from operators.kube.api import INFERENCE_SERVICE, RAY_SERVICE
from operators.kube.manifests import SERVICE_PORT_NAME, Target
from operators.runtimes.kubernetes import KubernetesRuntime
from tests.operators.kube.cluster import FakeKubeApi, Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "driftline"
OWN_CRD = CHART / "crds" / "driftline.io_modeldeployments.yaml"
STAGING_VALUES = REPO_ROOT / "gitops" / "environments" / "staging" / "values.yaml"
BUILTIN_GROUPS = {
    "v1",
    "apps",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "autoscaling",
    "batch",
}
# Custom resources the chart renders, by (group, kind), and the CRD file in ../shared/crds.
SHARED_CRD_FILES = {
    ("ray.io", "RayService"): "ray.io_rayservices.yaml",
    ("ray.io", "RayJob"): "ray.io_rayjobs.yaml",
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
Obj = dict[str, Any]
Render = Callable[..., list[Obj]]


def group_of(obj: Obj) -> str:
    """The API group of an object ("v1" for the core group)."""
    api_version: str = obj["apiVersion"]
    return api_version.split("/", maxsplit=1)[0] if "/" in api_version else "v1"


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    """Objects of a kind, optionally with a name suffix."""
    return [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"].endswith(name))
    ]


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj, bool]]:
    """(where, pod spec, long-running) of every pod an object creates, custom resources too."""
    kind, spec, name = obj["kind"], obj.get("spec", {}), obj["metadata"]["name"]

    def ray_cluster(where: str, cluster: Obj) -> Iterator[tuple[str, Obj, bool]]:
        yield f"{where}.head", cluster["headGroupSpec"]["template"]["spec"], True
        for group in cluster.get("workerGroupSpecs", []):
            yield f"{where}.{group['groupName']}", group["template"]["spec"], True

    if kind in {"Deployment", "StatefulSet"}:
        yield f"{kind}/{name}", spec["template"]["spec"], True
    elif kind == "Pod":
        yield f"{kind}/{name}", spec, False
    elif kind == "RayService":
        yield from ray_cluster(f"{kind}/{name}", spec["rayClusterConfig"])
    elif kind == "RayJob":
        yield from ray_cluster(f"{kind}/{name}", spec["rayClusterSpec"])
        yield f"{kind}/{name}.submitter", spec["submitterPodTemplate"]["spec"], False
    elif kind == "InferenceService":
        yield f"{kind}/{name}.predictor", spec["predictor"], True
    elif kind == "ModelDeployment":
        yield from ray_cluster(f"{kind}/{name}.retraining", spec["retraining"]["rayClusterSpec"])


# --- 1. helm lint and helm template ----------------------------------------------------------


@pytest.mark.parametrize("values", [(), ("--set", "serving.runtime=InferenceService")])
def test_helm_lint_strict_passes(tool: Callable[[str], str], values: tuple[str, ...]) -> None:
    done = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART), *values],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout
    assert "[ERROR]" not in done.stdout


def test_every_mode_renders_its_parts(mode: str, rendered: list[Obj]) -> None:
    kinds = {o["kind"] for o in rendered}
    assert {
        "Deployment",
        "ModelDeployment",
        "Service",
        "Role",
        "RoleBinding",
    } <= kinds
    serving_kind = "InferenceService" if mode == "inferenceservice" else "RayService"
    colours = sorted(
        o["metadata"]["labels"]["driftline.io/colour"] for o in find(rendered, serving_kind)
    )
    assert colours == ["blue", "green"]
    assert ("HorizontalPodAutoscaler" in kinds) == (mode == "inferenceservice")
    assert ("RayJob" in kinds) == (mode == "rayservice")
    monitoring_on = mode in {"rayservice", "inferenceservice", "gitops"}
    assert ("PrometheusRule" in kinds) == monitoring_on
    assert ("ServiceMonitor" in kinds) == monitoring_on


def test_bad_values_fail_with_one_clear_line(render_chart: Render) -> None:
    with pytest.raises(RuntimeError, match=r"serving/runtime.*RayService"):
        render_chart("--set", "serving.runtime=Seldon")
    with pytest.raises(RuntimeError, match=r"serving\.hpa\.enabled applies to serving\.runtime"):
        render_chart("--set", "serving.hpa.enabled=true")
    with pytest.raises(RuntimeError, match=r"gitops\.repoUrl is required"):
        render_chart("--set", "gitops.enabled=true")


# --- 2. Kubernetes schemas and CRD schemas ---------------------------------------------------


@pytest.mark.parametrize("kube_version", ["1.30.0", kubernetes_validate.latest_version()])
def test_builtin_objects_are_valid_kubernetes(
    mode_args: tuple[str, ...], kube_version: str, render_chart: Render
) -> None:
    objs = render_chart(*mode_args, kube_version=kube_version)
    builtin = [o for o in objs if group_of(o) in BUILTIN_GROUPS]
    assert builtin
    for obj in builtin:
        kubernetes_validate.validate(obj, kube_version, strict=True)


def test_every_kind_is_validated_somewhere(rendered: list[Obj]) -> None:
    for obj in rendered:
        key = (group_of(obj), obj["kind"])
        assert key[0] in BUILTIN_GROUPS or key in SHARED_CRD_FILES or key[0] == "driftline.io", key


def test_custom_resources_match_their_crds(
    rendered: list[Obj],
    shared_crds: Path,
    crd_validator: Callable[[Obj, Path], list[str]],
) -> None:
    custom = [o for o in rendered if (group_of(o), o["kind"]) in SHARED_CRD_FILES]
    assert custom
    for obj in custom:
        crd = shared_crds / SHARED_CRD_FILES[(group_of(obj), obj["kind"])]
        errors = crd_validator(obj, crd)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


def test_model_deployment_matches_our_crd(
    rendered: list[Obj], crd_validator: Callable[[Obj, Path], list[str]]
) -> None:
    (md,) = find(rendered, "ModelDeployment")
    assert crd_validator(md, OWN_CRD) == []


def test_crd_validation_rejects_unknown_and_mistyped_fields(
    rendered: list[Obj], crd_validator: Callable[[Obj, Path], list[str]]
) -> None:
    (md,) = find(rendered, "ModelDeployment")
    md["spec"]["servng"] = {}
    md["spec"]["driftPolicy"]["sustainedReports"] = "two"
    md["spec"]["serving"]["env"] = [{"value": "no name"}]
    errors = " ".join(crd_validator(md, OWN_CRD))
    assert "servng" in errors
    assert "sustainedReports" in errors
    assert "env" in errors


# --- security ----------------------------------------------------------------------------------


def test_every_pod_meets_the_restricted_profile(rendered: list[Obj]) -> None:
    checked = 0
    for obj in rendered:
        for where, spec, _ in pod_specs(obj):
            checked += 1
            pod_sc = spec["securityContext"]
            assert pod_sc["runAsNonRoot"] is True, where
            assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert "automountServiceAccountToken" in spec, where
            assert not spec.get("hostNetwork"), where
            assert not spec.get("hostPID"), where
            for container in spec["containers"] + spec.get("initContainers", []):
                sc = container["securityContext"]
                at = f"{where}/{container['name']}"
                assert sc["allowPrivilegeEscalation"] is False, at
                assert sc["readOnlyRootFilesystem"] is True, at
                assert sc["runAsNonRoot"] is True, at
                assert sc["capabilities"]["drop"] == ["ALL"], at
                assert not sc.get("capabilities", {}).get("add"), at
                assert sc["seccompProfile"]["type"] == "RuntimeDefault", at
    assert checked >= 5


def test_ray_autoscaler_sidecar_is_restricted_too(rendered: list[Obj]) -> None:
    for rs in find(rendered, "RayService"):
        options = rs["spec"]["rayClusterConfig"]["autoscalerOptions"]
        assert options["securityContext"]["readOnlyRootFilesystem"] is True
        assert options["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert options["resources"]["limits"]


def test_every_container_has_requests_limits_and_probes(rendered: list[Obj]) -> None:
    for obj in rendered:
        for where, spec, long_running in pod_specs(obj):
            for container in spec["containers"]:
                at = f"{where}/{container['name']}"
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][bound]), at
                if long_running:
                    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                        assert probe in container, f"{at} has no {probe}"


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
def test_tracing_reaches_every_driftline_container_only_when_a_collector_is_set(
    render_chart: Render, runtime: str
) -> None:
    runtime_values = ("--set", f"serving.runtime={runtime}")
    endpoint = "http://otel-collector.observability:4318"
    for values, expected in (((), None), (("--set", f"tracing.otlpEndpoint={endpoint}"), endpoint)):
        found = 0
        for obj in render_chart(*runtime_values, *values):
            for where, spec, _ in pod_specs(obj):
                for container in spec["containers"]:
                    env = {e["name"]: e.get("value") for e in container.get("env", [])}
                    if "DRIFTLINE_MODEL_NAME" not in env:
                        continue  # not a Driftline process (a sidecar, the smoke test's curl)
                    found += 1
                    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == expected, where
        assert found >= 4


def test_only_the_controller_and_autoscaling_ray_heads_mount_a_token(rendered: list[Obj]) -> None:
    for obj in rendered:
        for where, spec, _ in pod_specs(obj):
            if spec["automountServiceAccountToken"]:
                assert where.startswith(("Deployment/driftline-controller", "RayService/")), where
                if where.startswith("RayService/"):
                    assert where.endswith(".head"), where
    for sa in find(rendered, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False


def test_controller_rbac_is_least_privilege(rendered: list[Obj]) -> None:
    (role,) = find(rendered, "Role")
    rules = {
        (group, resource, tuple(rule.get("resourceNames", ()))): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for (group, resource, _), verbs in rules.items():
        assert "*" not in verbs
        assert group != "*"
        assert resource != "*"
        assert resource not in {"secrets", "pods/exec", "clusterroles", "rolebindings"}
    assert rules[("driftline.io", "modeldeployments/status", ())] == {"get", "patch", "update"}
    assert rules[("driftline.io", "modeldeployments/finalizers", ())] == {"update"}
    assert rules[("ray.io", "rayjobs", ())] >= {"create", "delete", "watch"}
    assert "create" not in rules[("ray.io", "rayservices", ())]
    assert rules[("serving.kserve.io", "inferenceservices", ())] >= {"get", "patch"}
    services = {k: v for k, v in rules.items() if k[1] == "services"}
    assert list(services.values()) == [{"get", "patch"}]
    assert next(iter(services))[2] == ("driftline-active", "driftline-preview")
    assert rules[("", "events", ())] == {"create", "patch"}
    assert rules[("coordination.k8s.io", "leases", ())] == {"create"}
    assert rules[("coordination.k8s.io", "leases", ("driftline-controller",))] == {
        "get",
        "update",
        "patch",
    }
    assert not find(rendered, "ClusterRole")
    (binding,) = find(rendered, "RoleBinding")
    assert binding["subjects"][0]["name"] == "driftline-controller"


def test_network_policies_deny_by_default_and_cover_every_pod(rendered: list[Obj]) -> None:
    policies = find(rendered, "NetworkPolicy")
    (deny,) = [p for p in policies if p["metadata"]["name"].endswith("default-deny")]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    selector = deny["spec"]["podSelector"]["matchLabels"]
    for obj in rendered:
        for where, spec, _ in pod_specs(obj):
            labels = _pod_labels(obj, where)
            assert selector.items() <= labels.items(), where
            del spec
    allowed_ingress_ports = {
        port["port"]
        for p in policies
        for rule in p["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    assert {8000, 8081, 8265} <= allowed_ingress_ports


def _pod_labels(obj: Obj, where: str) -> dict[str, str]:
    spec = obj["spec"]
    if obj["kind"] in {"Deployment", "StatefulSet"}:
        return dict(spec["template"]["metadata"]["labels"])
    if obj["kind"] == "Pod":
        return dict(obj["metadata"]["labels"])
    if obj["kind"] == "InferenceService":
        return dict(spec["predictor"]["labels"])
    if where.endswith(".submitter"):
        return dict(spec["submitterPodTemplate"]["metadata"]["labels"])
    cluster = (
        spec.get("rayClusterConfig")
        or spec.get("rayClusterSpec")
        or spec["retraining"]["rayClusterSpec"]
    )
    if where.endswith(".head"):
        return dict(cluster["headGroupSpec"]["template"]["metadata"]["labels"])
    group = where.rsplit(".", 1)[1]
    (worker,) = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == group]
    return dict(worker["template"]["metadata"]["labels"])


# --- labels, blue/green, autoscaling -----------------------------------------------------------


def test_labels_follow_the_helm_scaffold(rendered: list[Obj]) -> None:
    for obj in rendered:
        labels = obj["metadata"]["labels"]
        for key in ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance"):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"
        selectors = [
            obj["spec"].get("selector", {}).get("matchLabels")
            if obj["kind"] in {"Deployment", "PodDisruptionBudget"}
            else None,
            obj["spec"].get("selector") if obj["kind"] == "Service" else None,
            obj["spec"]["podSelector"].get("matchLabels")
            if obj["kind"] == "NetworkPolicy"
            else None,
        ]
        for selector in filter(None, selectors):
            assert "helm.sh/chart" not in selector
            assert "app.kubernetes.io/version" not in selector


def test_active_and_preview_services_select_opposite_colours(render_chart: Render) -> None:
    for active in ("blue", "green"):
        objs = render_chart("--set", f"serving.activeColour={active}")
        (svc_active,) = find(objs, "Service", "-active")
        (svc_preview,) = find(objs, "Service", "-preview")
        assert svc_active["spec"]["selector"]["driftline.io/colour"] == active
        preview = svc_preview["spec"]["selector"]["driftline.io/colour"]
        assert {active, preview} == {"blue", "green"}
        # Serve replicas run on workers; the head (num-cpus 0) has no ingress to send traffic to.
        assert svc_active["spec"]["selector"]["ray.io/node-type"] == "worker"
        for rs in find(objs, "RayService"):
            pods = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]
            colour = rs["metadata"]["labels"]["driftline.io/colour"]
            assert pods["labels"]["driftline.io/colour"] == colour


def test_model_version_reaches_the_active_colour_only(render_chart: Render) -> None:
    objs = render_chart("--set-string", "model.version=7,serving.previewVersion=8")
    args = {
        rs["metadata"]["labels"]["driftline.io/colour"]: yaml.safe_load(
            rs["spec"]["serveConfigV2"]
        )["applications"][0]["args"]
        for rs in find(objs, "RayService")
    }
    assert args["blue"]["model_version"] == "7"
    assert args["green"]["model_version"] == "8"
    assert {a["colour"] for a in args.values()} == {"blue", "green"}
    assert all(a["model_name"] == "market-ensemble" for a in args.values())
    defaults = render_chart()
    versions = {
        yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0]["args"]["model_version"]
        for rs in find(defaults, "RayService")
    }
    assert versions == {"champion", "challenger"}


def test_serve_config_carries_import_path_and_serve_autoscaling(render_chart: Render) -> None:
    objs = render_chart("--set", "serving.serveApp.importPath=serving.graph:app")
    config = yaml.safe_load(find(objs, "RayService")[0]["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    assert app["import_path"] == "serving.graph:app"
    assert (
        app["args"]["autoscaling_config"]["max_replicas"]
        >= app["args"]["autoscaling_config"]["min_replicas"]
    )
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}  # the proxy, not the path
    cluster = find(objs, "RayService")[0]["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert (
        cluster["workerGroupSpecs"][0]["maxReplicas"]
        >= cluster["workerGroupSpecs"][0]["minReplicas"]
    )


def test_hpa_scales_inference_services_on_cpu_and_requests_per_second(
    render_chart: Render,
) -> None:
    on = render_chart(
        "--set",
        "serving.runtime=InferenceService,serving.hpa.enabled=true,"
        "serving.hpa.requestsPerSecond.enabled=true",
    )
    hpas = find(on, "HorizontalPodAutoscaler")
    assert len(hpas) == 2
    for hpa in hpas:
        assert hpa["apiVersion"] == "autoscaling/v2"
        metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
        assert metrics["Resource"]["resource"]["name"] == "cpu"
        assert metrics["Pods"]["pods"]["metric"]["name"] == "driftline_requests_per_second"
        colour = hpa["metadata"]["labels"]["driftline.io/colour"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"driftline-{colour}-predictor"
    for isvc in find(on, "InferenceService"):
        annotations = isvc["metadata"]["annotations"]
        assert annotations["serving.kserve.io/autoscalerClass"] == "external"
        assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
        # The HPA owns the replica count, so the predictor does not pin one.
        assert "minReplicas" not in isvc["spec"]["predictor"]
    off = render_chart("--set", "serving.runtime=InferenceService")
    assert not find(off, "HorizontalPodAutoscaler")
    assert all("minReplicas" in i["spec"]["predictor"] for i in find(off, "InferenceService"))


def test_pod_disruption_budgets_cover_controller_and_both_colours(rendered: list[Obj]) -> None:
    pdbs = {p["metadata"]["name"]: p["spec"] for p in find(rendered, "PodDisruptionBudget")}
    assert pdbs["driftline-controller"]["minAvailable"] == 1
    for colour in ("blue", "green"):
        assert (
            pdbs[f"driftline-{colour}"]["selector"]["matchLabels"]["driftline.io/colour"] == colour
        )


def test_gitops_mode_configures_the_controller_and_model_deployment(
    render_chart: Render,
) -> None:
    objs = render_chart("-f", str(STAGING_VALUES))
    (deployment,) = find(objs, "Deployment", "-controller")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["controller", "run", "--runtime", "gitops"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DRIFTLINE_CONTROLLER_GITOPS_VALUES"] == "gitops/environments/staging/values.yaml"
    assert env["DRIFTLINE_CONTROLLER_GITOPS_BRANCH"] == "main"
    (md,) = find(objs, "ModelDeployment")
    assert md["spec"]["gitops"]["enabled"] is True
    assert md["spec"]["gitops"]["valuesPath"] == env["DRIFTLINE_CONTROLLER_GITOPS_VALUES"]


def test_training_rayjob_runs_the_training_entrypoint(render_chart: Render) -> None:
    objs = render_chart("--set", "training.enabled=true,training.args=--trials 5")
    (job,) = find(objs, "RayJob")
    assert job["spec"]["entrypoint"] == "python -m training.job --trials 5"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    (md,) = find(objs, "ModelDeployment")
    assert md["spec"]["retraining"]["rayClusterSpec"] == job["spec"]["rayClusterSpec"]
    # One cold-start bound: KubeRay's on this job, the controller's on the ones it creates.
    assert md["spec"]["retraining"]["startTimeoutSeconds"] == 600
    assert job["spec"]["preRunningDeadlineSeconds"] == 600


def test_smoke_test_hook_posts_to_the_active_service(rendered: list[Obj], mode: str) -> None:
    pods = find(rendered, "Pod")
    if mode == "monitoring-off":
        assert not pods
        return
    (pod,) = pods
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["SMOKE_URL"].startswith("http://driftline-active.driftline.svc:80/v2/models/")
    request = json.loads(env["SMOKE_REQUEST"])
    assert request["inputs"][0]["shape"] == [1, len(request["inputs"][0]["data"])]


def test_dashboards_are_sidecar_discoverable_json(render_chart: Render) -> None:
    objs = render_chart("--set", "monitoring.dashboards.enabled=true")
    maps = [c for c in find(objs, "ConfigMap") if "dashboard" in c["metadata"]["name"]]
    assert len(maps) == len(list((REPO_ROOT / "monitoring" / "dashboards").glob("*.json"))) >= 2
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        (text,) = cm["data"].values()
        assert json.loads(text)["uid"].startswith("driftline-")


def test_notes_render(tool: Callable[[str], str]) -> None:
    done = subprocess.run(
        [tool("helm"), "install", "driftline", str(CHART), "--dry-run=client", "-n", "driftline"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "helm test driftline" in done.stdout
    assert "-> Service driftline-active" in done.stdout
    # Egress nobody configured is named, not silently opened to 0.0.0.0/0.
    assert "allow no egress yet to: database, artifactStore, apiServer" in done.stdout


# --- the drift monitor (issue 13) ----------------------------------------------------------------


def test_drift_monitor_runs_alone_and_is_scraped(render_chart: Render) -> None:
    objs = render_chart("--set", "monitoring.serviceMonitor.enabled=true")
    (monitor_set,) = find(objs, "Deployment", "-drift-monitor")
    spec = monitor_set["spec"]
    # Its own Deployment: the monitor's lease in the store keeps overlapping pods to one writer.
    assert spec["replicas"] == 1
    assert not find(objs, "StatefulSet")
    (container,) = spec["template"]["spec"]["containers"]
    assert container["args"] == ["drift", "monitor"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Every variable the chart sets is one the settings read.
    assert {n for n in env if n.startswith("DRIFTLINE_")} <= set(Settings.env_paths())
    assert env["DRIFTLINE_DRIFT_METRICS_HOST"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env["DRIFTLINE_DRIFT_METRICS_PORT"]) == ports["http-metrics"]
    assert "monitor" in drift.commands
    # The ServiceMonitor selects its Service, scrapes the port by name and labels the component
    # the absent() alert looks for.
    (service,) = find(objs, "Service", "-drift-monitor")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "http-metrics"
    assert port["targetPort"] == "http-metrics"
    (monitor,) = find(objs, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel["component"] == ["__meta_kubernetes_service_label_app_kubernetes_io_component"]
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "drift-monitor"
    # Every /metrics needs a `read` credential: Prometheus presents the key in the Secret, and
    # the kubelet probes the public /healthz and /readyz, never /metrics.
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "driftline-metrics-key", "key": "key"},
    }
    probes = [container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe")]
    assert probes == ["/healthz", "/healthz"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_drift_monitor_absent_alert_ships_in_the_chart(render_chart: Render) -> None:
    objs = render_chart("--set", "monitoring.prometheusRule.enabled=true")
    (rule,) = find(objs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    expr = alerts["DriftlineDriftMonitorAbsent"]["expr"]
    assert expr.startswith("absent(")
    assert 'component="drift-monitor"' in expr
    off = render_chart(
        "--set",
        "monitoring.prometheusRule.enabled=true,"
        "monitoring.prometheusRule.alerts.DriftlineDriftMonitorAbsent.enabled=false",
    )
    (rule,) = find(off, "PrometheusRule")
    assert "DriftlineDriftMonitorAbsent" not in str(rule)
    disabled = render_chart("--set", "driftMonitor.enabled=false")
    assert not find(disabled, "Deployment", "-drift-monitor")


# --- the fast path and every in-cluster URL (issues 13 and 16) ---------------------------------


def _selected_pods(objs: list[Obj], selector: dict[str, str]) -> list[tuple[str, Obj]]:
    """(where, pod spec) of rendered pods a Service selector matches (KubeRay adds node-type)."""
    found = []
    for obj in objs:
        for where, spec, _ in pod_specs(obj):
            if obj["kind"] == "ModelDeployment":
                continue
            labels = _pod_labels(obj, where)
            if obj["kind"] in {"RayService", "RayJob"}:
                labels["ray.io/node-type"] = "head" if where.endswith(".head") else "worker"
            if selector.items() <= labels.items():
                found.append((where, spec))
    return found


def _named_port(pod: Obj, name: str) -> int | None:
    for container in pod["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == name:
                return int(port["containerPort"])
    return None


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
def test_services_target_the_fast_path_by_name(render_chart: Render, runtime: str) -> None:
    objs = render_chart("--set", f"serving.runtime={runtime}")
    fast = "ingress" if runtime == "RayService" else "http"
    for role in ("-active", "-preview"):
        (service,) = find(objs, "Service", role)
        (port,) = service["spec"]["ports"]
        assert port["name"] == SERVICE_PORT_NAME
        assert port["targetPort"] == fast
        pods = _selected_pods(objs, service["spec"]["selector"])
        assert pods, f"{role} selects no pod"
        for where, pod in pods:
            assert _named_port(pod, fast), f"{where} has no port {fast}"
            (container,) = pod["containers"]
            # The pod is in the Service only while the fast path itself answers.
            assert container["readinessProbe"]["httpGet"]["port"] == fast, where
    if runtime == "RayService":
        cluster = find(objs, "RayService")[0]["spec"]["rayClusterConfig"]
        (worker,) = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in worker["env"]}
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
        ingress_port = _named_port(cluster["workerGroupSpecs"][0]["template"]["spec"], "ingress")
        assert int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]) == ingress_port
        serve = yaml.safe_load(find(objs, "RayService")[0]["spec"]["serveConfigV2"])
        assert serve["http_options"]["port"] != ingress_port  # the proxy is not the fast path
        assert serve["applications"][0]["import_path"] == "serving.app:build_app"


def _service_urls(objs: list[Obj]) -> Iterator[tuple[str, str, str, int]]:
    """(where, service, namespace, port) of every in-cluster Service URL in a container's env."""
    pattern = re.compile(r"https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)")
    for obj in objs:
        for where, spec, _ in pod_specs(obj):
            for container in spec["containers"]:
                for item in [*container.get("env", []), *map(str, container.get("args", []))]:
                    text = item.get("value", "") if isinstance(item, dict) else item
                    for match in pattern.finditer(str(text)):
                        yield where, match[1], match[2], int(match[3])


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
def test_every_in_cluster_url_resolves_to_a_service_port(
    render_chart: Render, runtime: str
) -> None:
    objs = render_chart(
        "--set",
        f"serving.runtime={runtime},mlflow.trackingUri=http://driftline-active.driftline.svc:80",
    )
    services = {s["metadata"]["name"]: s for s in find(objs, "Service")}
    urls = list(_service_urls(objs))
    assert urls, "no in-cluster URL found: the test would prove nothing"
    for where, name, namespace, port in urls:
        assert namespace == "driftline", where
        assert name in services, f"{where}: no Service {name}"
        assert port in {p["port"] for p in services[name]["spec"]["ports"]}, (
            f"{where}: {name}:{port}"
        )
    wrong = render_chart("--set", "mlflow.trackingUri=http://driftline-active.driftline.svc:8000")
    assert any(p == 8000 for *_, p in _service_urls(wrong))
    services = {s["metadata"]["name"]: s for s in find(wrong, "Service")}
    assert 8000 not in {p["port"] for p in services["driftline-active"]["spec"]["ports"]}


def _allowed(objs: list[Obj], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    """Whether the rendered NetworkPolicies let a pod labelled `source` reach one labelled
    `target` on `port` in the release's namespace (podSelector peers; `In` expressions)."""

    def selects(selector: Obj, labels: dict[str, str]) -> bool:
        expressions = selector.get("matchExpressions", [])
        assert all(e["operator"] == "In" for e in expressions)
        return selector.get("matchLabels", {}).items() <= labels.items() and all(
            labels.get(e["key"]) in e["values"] for e in expressions
        )

    def direction(kind: str, pod: dict[str, str], peer: dict[str, str], peers: str) -> bool:
        policies = [
            p["spec"]
            for p in find(objs, "NetworkPolicy")
            if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod)
        ]
        # A rule without peers admits every peer; a peer in another namespace is not ours.
        return not policies or any(
            (
                peers not in rule
                or any(
                    "namespaceSelector" not in q
                    and "podSelector" in q
                    and selects(q["podSelector"], peer)
                    for q in rule[peers]
                )
            )
            and any(r["port"] == port for r in rule.get("ports", [{"port": port}]))
            for spec in policies
            for rule in spec.get(kind.lower(), [])
        )

    return direction("Egress", source, target, "to") and direction(
        "Ingress", target, source, "from"
    )


def _serving_containers(objs: list[Obj], runtime: str) -> list[tuple[str, Obj, Obj]]:
    """(where, pod labels, container) of every serving pod of the chart's colours."""
    return [
        (where, _pod_labels(obj, where), container)
        for obj in find(objs, runtime)
        for where, spec, _ in pod_specs(obj)
        for container in spec["containers"]
    ]


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
@pytest.mark.parametrize(
    "clients", [(), ("--set-json", 'networkPolicy.clients=[{"ipBlock":{"cidr":"10.9.0.0/16"}}]')]
)
def test_serving_pods_mirror_to_the_preview_service(
    render_chart: Render, runtime: str, clients: tuple[str, ...]
) -> None:
    objs = render_chart("--set", f"serving.runtime={runtime}", *clients)
    (preview,) = find(objs, "Service", "-preview")
    name = preview["metadata"]["name"]
    (port,) = [p for p in preview["spec"]["ports"] if p["name"] == SERVICE_PORT_NAME]
    containers = _serving_containers(objs, runtime)
    assert {labels["driftline.io/colour"] for _, labels, _ in containers} == {"blue", "green"}
    for where, _labels, container in containers:
        env = {e["name"]: e for e in container["env"]}
        # The controller points the preview Service at the shadow colour; every colour gets the
        # same address and the store's route says which one mirrors. On the RayService runtime
        # each colour is its own Ray cluster: its ingress mirrors over HTTP like a predictor.
        assert env["DRIFTLINE_SERVE_SHADOW_URL"]["value"] == (
            f"http://{name}.driftline.svc:{port['port']}"
        ), where
        assert env["DRIFTLINE_SERVE_SHADOW_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "driftline-shadow-key",
            "key": "key",
            "optional": True,  # no Secret yet: the pods start and nothing is mirrored
        }, where
    for variable, field in (
        ("DRIFTLINE_SERVE_SHADOW_URL", "shadow_url"),
        ("DRIFTLINE_SERVE_SHADOW_KEY", "shadow_key"),
    ):
        assert Settings.env_paths()[variable] == ("serving", field)
    # The preview Service's named port lands on the serving pods' fast path (a Ray worker's
    # direct ingress, where the ingress replicas run; a predictor's own port), which the network
    # policies open from one colour's serving pods to the other's.
    selected = _selected_pods(objs, preview["spec"]["selector"])
    assert selected
    target_port = _named_port(selected[0][1], port["targetPort"])
    assert target_port is not None
    senders = [labels for where, labels, _ in containers if "head" not in where]
    blue = next(labels for labels in senders if labels["driftline.io/colour"] == "blue")
    green = next(labels for labels in senders if labels["driftline.io/colour"] == "green")
    assert _allowed(objs, blue, green, target_port)
    assert _allowed(objs, green, blue, target_port)
    outsider = {"app.kubernetes.io/name": "driftline", "app.kubernetes.io/instance": "driftline"}
    training = {**outsider, "app.kubernetes.io/component": "training"}
    assert not _allowed(objs, training, green, target_port)
    assert find(objs, "NetworkPolicy", "-serving-shadow")
    named = render_chart("--set", f"serving.runtime={runtime},serving.shadowKeySecret.name=k")
    for where, _labels, container in _serving_containers(named, runtime):
        env = {e["name"]: e for e in container["env"]}
        assert env["DRIFTLINE_SERVE_SHADOW_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "k", where


# What a colour the controller creates may differ in from the chart's own, and nothing else:
# - the version: the chart's colours follow an alias (`champion` on the active colour,
#   `challenger` on the other), the controller pins the version it deploys (RayService: the
#   serve app's `model_version` arg; InferenceService: the predictor's annotation
#   `driftline.io/model-version`, which DRIFTLINE_MODEL_VERSION reads);
# - serveConfigV2 is compared as the YAML it is, not as text (Helm's and PyYAML's emitters differ);
# - the object's metadata: its labels are the controller's (`managed-by: driftline-controller`,
#   `driftline.io/model`, no `helm.sh/chart`) plus the labels the Services select, and it has an
#   ownerReference to the ModelDeployment (garbage-collected with it). Its name, namespace and
#   annotations are the chart's.
CREATED_COLOUR_CASES = [
    ("RayService", ()),
    ("RayService", ("serving.activeColour=green", "nameOverride=market")),
    ("InferenceService", ("serving.hpa.enabled=false",)),
    ("InferenceService", ("serving.hpa.enabled=true", "nameOverride=market")),
    ("InferenceService", ("serving.hpa.enabled=false", "nameOverride=market")),
    ("InferenceService", ("serving.hpa.enabled=true",)),
]


def _versionless(kind: str, spec: Obj) -> tuple[Obj, str | None]:
    """`spec` without the version it serves (serveConfigV2 parsed), and that version."""
    spec = json.loads(json.dumps(spec))
    if kind == "RayService":
        config = yaml.safe_load(spec["serveConfigV2"])
        spec["serveConfigV2"] = config
        (app,) = config["applications"]
        return spec, app["args"].pop("model_version", None)
    return spec, spec["predictor"]["annotations"].pop("driftline.io/model-version", None)


def _version_of(kind: str, body: Obj) -> str | None:
    if kind == "RayService":
        return yaml.safe_load(body["spec"]["serveConfigV2"])["applications"][0]["args"].get(
            "model_version"
        )
    return body["spec"]["predictor"]["annotations"].get("driftline.io/model-version")


def _create_colour(objs: list[Obj], colour: str, shared_crds: Path, home: Path) -> Obj:
    """The colour the controller creates (the real runtime, through a validating API holding the
    rendered Services and the other colour) from the rendered ModelDeployment."""
    (md,) = find(objs, "ModelDeployment")
    runtime = md["spec"]["serving"]["runtime"]
    (chart,) = find(objs, runtime, f"-{colour}")
    api = FakeKubeApi(Validator(shared_crds))
    for obj in [*find(objs, "Service"), *find(objs, runtime)]:
        if obj is not chart:
            api.seed(obj)  # every rendered Service and serving object but the deleted colour
    target = Target(md["metadata"]["name"], "driftline", "uid-md", md["spec"])
    store = Store(f"sqlite:///{home / 'store.db'}")
    context = operator_context(Settings(home=home), store, api, gitops=False)
    kube = getattr(context.runtime_for(target), "delegate", None) or context.runtime_for(target)
    store.close()
    assert isinstance(kube, KubernetesRuntime)
    kube.deploy(colour, "7")  # the colour is missing: the controller creates it
    kind = {"RayService": RAY_SERVICE, "InferenceService": INFERENCE_SERVICE}[runtime]
    created = api.get(kind, "driftline", chart["metadata"]["name"])
    assert created is not None, "the controller created no object under the chart's name"
    assert f"{runtime}/{chart['metadata']['name']}" in api.validate.validated
    return created


@pytest.mark.parametrize(("runtime", "values"), CREATED_COLOUR_CASES)
def test_a_colour_the_controller_creates_is_the_charts_own(
    render_chart: Render,
    runtime: str,
    values: tuple[str, ...],
    shared_crds: Path,
    crd_validator: Callable[[Obj, Path], list[str]],
) -> None:
    """Render the chart, delete one colour, let the controller create it from the rendered
    ModelDeployment: it is the chart's colour, but for the version it pins."""
    objs = render_chart(
        "--set",
        ",".join(
            (
                f"serving.runtime={runtime}",
                # Values that reach the serving pods, so a copy that drops one would show.
                "serving.port=8001,serving.directIngressPort=8200,rateLimit.redis.existingSecret=r",
                "auth.settings.jwtIssuer=i,tracing.otlpEndpoint=http://otel:4318",
                "serving.nodeSelector.pool=serving,imagePullSecrets[0].name=regcred",
                "serving.serveApp.name=ensemble,serving.serveApp.args.batch=8",
                *values,
            )
        ),
    )
    (md,) = find(objs, "ModelDeployment")
    (preview,) = find(objs, "Service", "-preview")
    for colour in ("blue", "green"):
        (chart,) = find(objs, runtime, f"-{colour}")
        crd = shared_crds / SHARED_CRD_FILES[(group_of(chart), runtime)]
        with tempfile.TemporaryDirectory() as home:
            created = _create_colour(objs, colour, shared_crds, Path(home))
        assert crd_validator(created, crd) == []
        mine, my_version = _versionless(runtime, created["spec"])
        theirs, _ = _versionless(runtime, chart["spec"])
        assert mine == theirs, colour
        assert my_version in {"7", None}
        assert _version_of(runtime, created) == "7"
        assert _version_of(runtime, chart) in {"champion", "challenger"}
        assert created["metadata"].get("annotations") == chart["metadata"].get("annotations")
        assert created["metadata"]["ownerReferences"][0]["uid"] == "uid-md"
        selector = {**preview["spec"]["selector"], "driftline.io/colour": colour}
        selector.pop("ray.io/node-type", None)  # KubeRay's own label
        assert selector.items() <= created["metadata"]["labels"].items()
        # The comparison has teeth: without the chart's template the controller's fallback
        # colour is usable but not the chart's.
        serving = {k: v for k, v in md["spec"]["serving"].items() if k != "template"}
        bare = Target(md["metadata"]["name"], "driftline", "u", {**md["spec"], "serving": serving})
        build = manifests.rayservice if runtime == "RayService" else manifests.inference_service
        fallback = build(bare, colour, "7", manifests.colour_services(preview, "driftline"))
        assert _versionless(runtime, fallback["spec"])[0] != theirs


def test_the_controller_scrapes_the_active_service_on_its_named_port(
    rendered: list[Obj], shared_crds: Path, tmp_path: Path
) -> None:
    (md,) = find(rendered, "ModelDeployment")
    api = FakeKubeApi(Validator(shared_crds))
    for service in find(rendered, "Service"):
        api.seed(service)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    context = operator_context(Settings(home=tmp_path), store, api, gitops=False)
    target = Target(md["metadata"]["name"], "driftline", "uid-md", md["spec"])
    runtime = context.runtime_for(target)
    store.close()
    # The GitOps runtime scrapes through the Kubernetes runtime it wraps.
    kube = getattr(runtime, "delegate", runtime)
    assert isinstance(kube, KubernetesRuntime)
    assert isinstance(kube.health_source, ScrapeHealth)
    targets = kube.health_source.targets
    (active,) = find(rendered, "Service", "-active")
    name = active["metadata"]["name"]
    (port,) = [p for p in active["spec"]["ports"] if p["name"] == SERVICE_PORT_NAME]
    # Before Kubernetes lists the Service's endpoints, the Service itself.
    assert targets() == [f"http://{name}.driftline.svc:{port['port']}/metrics"]
    # Then every ready pod behind it, on the port the Service's named port resolves to.
    api.seed(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-x1",
                "namespace": "driftline",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": SERVICE_PORT_NAME, "port": 8000, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.1.0.4"], "conditions": {"ready": True}},
                {"addresses": ["10.1.0.5"], "conditions": {"ready": True}},
            ],
        }
    )
    assert targets() == ["http://10.1.0.4:8000/metrics", "http://10.1.0.5:8000/metrics"]


def test_the_controller_may_read_endpoints_for_per_pod_health(rendered: list[Obj]) -> None:
    (role,) = find(rendered, "Role")
    granted = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert granted[("", "endpoints")] == {"get", "list", "watch"}
    assert granted[("discovery.k8s.io", "endpointslices")] == {"get", "list", "watch"}


# --- graceful shutdown (issue 15) ----------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
def test_serving_pods_outlive_their_drain_and_requests(render_chart: Render, runtime: str) -> None:
    from serving.app import _ingress  # noqa: PLC0415  (imports Ray Serve: only this test)

    objs = render_chart("--set", f"serving.runtime={runtime}")
    (controller,) = find(objs, "Deployment", "-controller")
    controller_env = {
        e["name"]: e.get("value")
        for e in controller["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    drain = float(controller_env["DRIFTLINE_CONTROLLER_DRAIN_S"])
    serving_pods = [
        (where, spec) for obj in find(objs, runtime) for where, spec, _ in pod_specs(obj)
    ]
    assert len(serving_pods) >= 2
    for where, spec in serving_pods:
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        timeout = float(env["DRIFTLINE_SERVE_REQUEST_TIMEOUT_S"])
        # The ingress's own graceful shutdown, as serving/app.py configures it for this timeout.
        shutdown = _ingress(Settings(serving={"request_timeout_s": timeout}))._deployment_config
        sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep == drain, where  # the pod serves as long as the controller drains a colour
        assert drain > timeout, where  # a request admitted before the drain finishes within it
        grace = spec["terminationGracePeriodSeconds"]
        assert grace >= sleep + shutdown.graceful_shutdown_timeout_s, where


def test_shutdown_numbers_that_would_cut_requests_are_refused(render_chart: Render) -> None:
    with pytest.raises(RuntimeError, match=r"drainSeconds \(5\) must exceed"):
        render_chart("--set", "serving.shutdown.drainSeconds=5")
    with pytest.raises(
        RuntimeError, match=r"terminationGracePeriodSeconds \(30\) must be at least"
    ):
        render_chart("--set", "serving.shutdown.terminationGracePeriodSeconds=30")
