"""operators.kube.manifests: the Service port the controller scrapes is found by name, and the
colours the controller creates carry the chart's serving env."""

from __future__ import annotations

from typing import Any

from driftline.config import Settings
from operators.kube.manifests import (
    LABEL_COLOUR,
    SERVICE_PORT_NAME,
    ColourServices,
    Target,
    colour_services,
    inference_service,
    isvc_version_patch,
    rayservice,
    service_port,
)


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

# What the chart renders into `spec.serving.env` (helm/driftline/templates/_helpers.tpl,
# `driftline.serving.env`), shortened: the store, the request deadline and the mirror's key.
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
    # The per-colour values are the controller's.
    assert env["DRIFTLINE_MODEL_VERSION"]["value"] == "3"
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


def test_a_version_patch_keeps_the_rest_of_the_env() -> None:
    body = inference_service(_target(env=CHART_ENV), "green", "3", colour_services(PREVIEW, "ml"))
    patch = isvc_version_patch(body, "4")
    (container,) = patch["spec"]["predictor"]["containers"]
    env = _env(container)
    assert env["DRIFTLINE_MODEL_VERSION"]["value"] == "4"
    assert env["DRIFTLINE_DATABASE_URL"] == CHART_ENV[1]
    assert "DRIFTLINE_SERVE_SHADOW_URL" in env


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
