"""operators.kube.manifests: the Service port the controller scrapes is found by name, and the
colours the controller creates are the chart's template (or the fallback) with their colour."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from driftline.config import Settings
from operators.kube.manifests import (
    LABEL_COLOUR,
    SERVICE_PORT_NAME,
    VERSION_ANNOTATION,
    ColourServices,
    Target,
    colour_env,
    colour_services,
    inference_service,
    isvc_version,
    isvc_version_patch,
    rayservice,
    serve_config,
    service_port,
    version_env,
)
from tests.operators.kube.cluster import Validator


def test_service_port_is_found_by_name_not_position() -> None:
    service = {
        "spec": {
            "ports": [
                {"name": "grpc", "port": 9000, "targetPort": "grpc"},
                {"name": SERVICE_PORT_NAME, "port": 80, "targetPort": "ingress"},
            ]
        }
    }
    assert service_port(service) == 80
    assert service_port(service, "grpc") == 9000
    assert service_port(service, "metrics") is None
    assert service_port(None) is None


# --- the colours the controller creates carry the chart's serving env (issue 13) ----------------

# The env the chart gives its serving pods (helm/driftline/templates/_helpers.tpl,
# `driftline.serving.env`), shortened: the store, the request deadline and the mirror's key. A
# hand-written ModelDeployment may give it as `spec.serving.env`.
CHART_ENV: list[dict[str, Any]] = [
    {"name": "DRIFTLINE_MODEL_NAME", "value": "market-ensemble"},
    {
        "name": "DRIFTLINE_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "driftline-database", "key": "url"}},
    },
    {"name": "DRIFTLINE_SERVE_REQUEST_TIMEOUT_S", "value": "10"},
    {
        "name": "DRIFTLINE_SERVE_SHADOW_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "driftline-shadow-key", "key": "key", "optional": True}
        },
    },
]
RELEASE = {"app.kubernetes.io/name": "driftline", "app.kubernetes.io/instance": "prod"}
PREVIEW: dict[str, Any] = {
    "metadata": {"name": "prod-driftline-preview", "namespace": "ml"},
    "spec": {
        "selector": {
            **RELEASE,
            "app.kubernetes.io/component": "serving",
            LABEL_COLOUR: "green",
            "ray.io/node-type": "worker",
        },
        "ports": [
            {"name": "grpc", "port": 9000, "targetPort": "grpc"},
            {"name": SERVICE_PORT_NAME, "port": 80, "targetPort": "http"},
        ],
    },
}


def _target(**serving: Any) -> Target:
    """The chart's ModelDeployment of release `prod` (named `prod-driftline`, like its objects)."""
    spec = {"model": {"name": "market-ensemble"}, "serving": {"port": 8000, **serving}}
    return Target("prod-driftline", "ml", "md-uid", spec)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), names  # each variable once
    return {e["name"]: e for e in container["env"]}


def test_an_inference_service_it_creates_logs_to_the_store_and_mirrors() -> None:
    services = colour_services(PREVIEW, "ml")
    body = inference_service(_target(env=CHART_ENV), "blue", "3", services)
    predictor = body["spec"]["predictor"]
    (container,) = predictor["containers"]
    env = _env(container)
    # The store, the deadline and the mirror's key, as the chart's own predictors get them.
    for given in CHART_ENV:
        assert env[given["name"]] == given, given["name"]
    # The per-colour values are the controller's; the version is the predictor's annotation,
    # which the container reads through the downward API.
    assert predictor["annotations"] == {VERSION_ANNOTATION: "3"}
    assert env["DRIFTLINE_MODEL_VERSION"] == version_env()
    assert "value" not in env["DRIFTLINE_MODEL_VERSION"]
    assert env["DRIFTLINE_COLOUR"]["value"] == "blue"
    assert env["DRIFTLINE_SERVING_PORT"]["value"] == "8000"
    # It mirrors to the preview Service, on the port named `http` (80), not the pods' 8000.
    assert env["DRIFTLINE_SERVE_SHADOW_URL"]["value"] == "http://prod-driftline-preview.ml.svc:80"
    # Every variable is one the server reads.
    for name in env:
        assert name in Settings.env_paths() or name == "MLFLOW_TRACKING_URI", name
    # The Services reach it: their selector's labels, and the port they target by name.
    assert predictor["labels"][LABEL_COLOUR] == "blue"
    assert RELEASE.items() <= predictor["labels"].items()
    assert "ray.io/node-type" not in predictor["labels"]
    assert container["ports"][0]["name"] == SERVICE_PORT_NAME
    # The root filesystem is read-only: the model is downloaded under /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in predictor["volumes"]


def test_a_version_patch_sets_only_the_version_annotation() -> None:
    # One map key: Argo CD ignores it and syncs the containers (image, probes) as the chart says.
    body = inference_service(_target(env=CHART_ENV), "green", "3", colour_services(PREVIEW, "ml"))
    assert isvc_version_patch(body, "4") == {
        "spec": {"predictor": {"annotations": {VERSION_ANNOTATION: "4"}}}
    }


def test_a_version_patch_moves_an_older_objects_literal_version_to_the_annotation() -> None:
    body = inference_service(_target(env=CHART_ENV), "green", "3", colour_services(PREVIEW, "ml"))
    predictor = body["spec"]["predictor"]
    del predictor["annotations"]
    (container,) = predictor["containers"]
    container["env"] = [
        {"name": "DRIFTLINE_MODEL_VERSION", "value": "3"}
        if e["name"] == "DRIFTLINE_MODEL_VERSION"
        else e
        for e in container["env"]
    ]
    assert isvc_version(body) == "3"
    patch = isvc_version_patch(body, "4")["spec"]["predictor"]
    assert patch["annotations"] == {VERSION_ANNOTATION: "4"}
    (patched,) = patch["containers"]
    env = _env(patched)
    assert env["DRIFTLINE_MODEL_VERSION"] == version_env()
    assert env["DRIFTLINE_DATABASE_URL"] == CHART_ENV[1]
    assert "DRIFTLINE_SERVE_SHADOW_URL" in env
    assert [e["name"] for e in patched["env"]] == [e["name"] for e in container["env"]]


def test_without_a_preview_service_or_env_nothing_is_invented() -> None:
    body = inference_service(_target(), "green", "3")
    env = _env(body["spec"]["predictor"]["containers"][0])
    assert set(env) == {
        "DRIFTLINE_MODEL_NAME",
        "DRIFTLINE_MODEL_VERSION",
        "DRIFTLINE_COLOUR",
        "DRIFTLINE_SERVING_PORT",
    }
    no_port = {**PREVIEW, "spec": {**PREVIEW["spec"], "ports": []}}
    assert colour_services(no_port, "ml").shadow_url is None
    assert colour_services(None, "ml") == ColourServices()


def test_a_rayservice_it_creates_carries_the_same_env() -> None:
    body = rayservice(_target(env=CHART_ENV), "green", "3", colour_services(PREVIEW, "ml"))
    cluster = body["spec"]["rayClusterConfig"]
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [group["template"] for group in cluster["workerGroupSpecs"]]
    for template in templates:
        (container,) = template["spec"]["containers"]
        env = _env(container)
        assert env["DRIFTLINE_DATABASE_URL"] == CHART_ENV[1]
        assert env["DRIFTLINE_SERVE_SHADOW_KEY"] == CHART_ENV[3]
        assert env["DRIFTLINE_COLOUR"]["value"] == "green"
        assert env["DRIFTLINE_SERVE_SHADOW_URL"]["value"] == (
            "http://prod-driftline-preview.ml.svc:80"
        )
        assert RELEASE.items() <= template["metadata"]["labels"].items()


# --- the template the chart renders, coloured; the fallback without one (issue 13) ---------------

TEMPLATE_RAY: dict[str, Any] = {
    "spec": {
        "serveConfigV2": yaml.safe_dump(
            {
                "applications": [
                    {
                        "name": "ensemble",
                        "import_path": "serving.app:build_app",
                        "args": {"model_name": "market-ensemble", "num_cpus": 0.25},
                    }
                ]
            }
        ),
        "rayClusterConfig": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {
                "rayStartParams": {"num-cpus": "0"},
                "template": {
                    "metadata": {"labels": {**RELEASE, "driftline.io/ray": "true"}},
                    "spec": {
                        "nodeSelector": {"pool": "serving"},
                        "containers": [{"name": "ray-head", "env": CHART_ENV}],
                    },
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "serve",
                    "template": {
                        "metadata": {"labels": dict(RELEASE)},
                        "spec": {"containers": [{"name": "ray-worker", "env": CHART_ENV}]},
                    },
                }
            ],
        },
    }
}


def test_a_rayservice_is_the_template_with_its_colour() -> None:
    target = _target(appName="ensemble", template=TEMPLATE_RAY)
    body = rayservice(target, "green", "3", colour_services(PREVIEW, "ml"))
    cluster = body["spec"]["rayClusterConfig"]
    # Everything the controller does not own is the template's, copied.
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}
    head = cluster["headGroupSpec"]["template"]
    assert head["spec"]["nodeSelector"] == {"pool": "serving"}
    assert head["metadata"]["labels"] == {
        **RELEASE,
        "driftline.io/ray": "true",
        "app.kubernetes.io/component": "serving",  # the preview Service selects it
        LABEL_COLOUR: "green",
    }
    # The template's env, then the colour's own, last.
    (worker,) = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"]
    assert worker["env"] == [
        *CHART_ENV,
        {"name": "DRIFTLINE_COLOUR", "value": "green"},
        {"name": "DRIFTLINE_SERVE_SHADOW_URL", "value": "http://prod-driftline-preview.ml.svc:80"},
    ]
    (app,) = yaml.safe_load(body["spec"]["serveConfigV2"])["applications"]
    assert app["args"] == {
        "model_name": "market-ensemble",
        "num_cpus": 0.25,
        "model_version": "3",
        "colour": "green",
    }
    # The template itself is untouched (the next colour starts from it again).
    head = TEMPLATE_RAY["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    assert head["spec"]["containers"][0]["env"] == CHART_ENV
    assert LABEL_COLOUR not in head["metadata"]["labels"]
    assert "colour" not in TEMPLATE_RAY["spec"]["serveConfigV2"]


def test_an_existing_colours_serve_config_is_rebuilt_from_the_template() -> None:
    # The chart's serve app reaches the colour at its next deploy, whatever the live text says.
    live = yaml.safe_dump(
        {"applications": [{"name": "ensemble", "args": {"num_cpus": 9, "stale": True}}]}
    )
    rebuilt = serve_config(_target(appName="ensemble", template=TEMPLATE_RAY), "blue", "5", live)
    (app,) = yaml.safe_load(rebuilt)["applications"]
    assert app["import_path"] == "serving.app:build_app"
    assert app["args"] == {
        "model_name": "market-ensemble",
        "num_cpus": 0.25,
        "model_version": "5",
        "colour": "blue",
    }
    # Without a template (a hand-written ModelDeployment) only the version is pinned.
    pinned = serve_config(_target(appName="ensemble"), "blue", "5", live)
    (app,) = yaml.safe_load(pinned)["applications"]
    assert app["args"] == {"num_cpus": 9, "stale": True, "model_version": "5"}


def test_an_inference_service_is_the_template_with_its_colour_and_version() -> None:
    predictor = {
        "labels": dict(RELEASE),
        "serviceAccountName": "prod-driftline-serving",
        "containers": [{"name": "kserve-container", "env": CHART_ENV}],
    }
    template = {
        "metadata": {"annotations": {"serving.kserve.io/autoscalerClass": "external"}},
        "spec": {"predictor": predictor},
    }
    body = inference_service(_target(template=template), "blue", "4")
    assert body["metadata"]["annotations"] == {"serving.kserve.io/autoscalerClass": "external"}
    built = body["spec"]["predictor"]
    assert built["serviceAccountName"] == "prod-driftline-serving"
    assert "minReplicas" not in built  # the template's HPA owns the replicas
    assert built["labels"] == {**RELEASE, LABEL_COLOUR: "blue"}
    (container,) = built["containers"]
    assert container["env"] == [
        *CHART_ENV,
        version_env(),
        {"name": "DRIFTLINE_COLOUR", "value": "blue"},
    ]
    assert built["annotations"] == {VERSION_ANNOTATION: "4"}
    assert isvc_version(body) == "4"


def test_spec_env_goes_over_the_templates_and_the_controllers_values_win() -> None:
    base = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    extra = [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]
    own = [{"name": "C", "value": "mine"}, {"name": "DRIFTLINE_COLOUR", "value": "blue"}]
    assert colour_env(base, extra, own) == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},  # replaced where it stands
        {"name": "C", "value": "mine"},
        {"name": "DRIFTLINE_COLOUR", "value": "blue"},
    ]
    assert base == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_the_fallback_rayservice_serves_on_the_ports_the_services_target() -> None:
    target = _target(env=CHART_ENV, directIngressPort=8200, importPath="serving.app:x")
    body = rayservice(target, "blue", "3", colour_services(PREVIEW, "ml"))
    cluster = body["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    (worker,) = cluster["workerGroupSpecs"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # Serve replicas run on workers
    for group in (head, worker):
        (container,) = group["template"]["spec"]["containers"]
        ports = _ports(container)
        # The preview Service targets `ingress` (Ray's direct ingress) by name: the port exists
        # and Serve is told to serve there.
        assert ports["ingress"] == 8200
        assert ports["serve"] == 8000
        assert ports["metrics"] == 8080
        env = _env(container)
        assert env["RAY_SERVE_THROUGHPUT_OPTIMIZED"]["value"] == "1"
        assert env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]["value"] == "8200"
        assert env["DRIFTLINE_DATABASE_URL"] == CHART_ENV[1]
        assert env["DRIFTLINE_COLOUR"]["value"] == "blue"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"], probe
            port = container[probe]["httpGet"]["port"]
            assert port in ports or isinstance(port, int), (probe, port)
    assert {"gcs", "dashboard", "client"} <= set(_ports(head["template"]["spec"]["containers"][0]))
    # A worker takes traffic only once its ingress replica answers on the fast path.
    (container,) = worker["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "ingress"}
    config = yaml.safe_load(body["spec"]["serveConfigV2"])
    assert config["http_options"]["port"] == 8000
    (app,) = config["applications"]
    assert app["import_path"] == "serving.app:x"
    assert app["args"] == {"model_name": "market-ensemble", "model_version": "3", "colour": "blue"}


def test_the_fallback_inference_service_has_its_named_port_and_probes() -> None:
    body = inference_service(_target(port=8001), "green", "3", colour_services(PREVIEW, "ml"))
    assert body["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "RawDeployment"}
    predictor = body["spec"]["predictor"]
    assert predictor["automountServiceAccountToken"] is False
    (container,) = predictor["containers"]
    assert _ports(container) == {SERVICE_PORT_NAME: 8001}
    assert _env(container)["DRIFTLINE_SERVING_PORT"]["value"] == "8001"
    probes = {p: container[p]["httpGet"] for p in ("startupProbe", "livenessProbe")}
    assert probes == {p: {"path": "/v2/health/live", "port": "http"} for p in probes}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}


@pytest.mark.parametrize("runtime", ["RayService", "InferenceService"])
def test_the_fallback_colours_are_schema_valid(runtime: str, validator: Validator) -> None:
    build = rayservice if runtime == "RayService" else inference_service
    body = build(
        _target(runtime=runtime, env=CHART_ENV), "green", "3", colour_services(PREVIEW, "ml")
    )
    validator(body)
    assert validator.validated == [f"{runtime}/prod-driftline-green"]
