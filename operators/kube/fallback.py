"""Serving and training templates for a ModelDeployment the chart did not render.

The chart puts its own colour-neutral serving object in `spec.serving.template` and its training
cluster in `spec.retraining.rayClusterSpec`; a hand-written ModelDeployment may carry neither.
These stand in, built from the spec's few fields. They follow the chart's pods where a colour
would otherwise take no traffic (the named ports the Services target, the probes that put a pod
behind them, Serve's direct ingress) and leave out what needs the chart's values (service
accounts, graceful shutdown, scheduling).
"""

from __future__ import annotations

from typing import Any

import yaml

from driftline.contracts import RAYSERVICE_IMPORT_PATH, serve_ray_env
from operators.kube.api import Body

# The Services target pods by these port names (helm/driftline/templates/serving/services.yaml).
SERVE_PORT_NAME = "serve"
INGRESS_PORT_NAME = "ingress"
POD_SECURITY: Body = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY: Body = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_RESOURCES: Body = {
    "requests": {"cpu": "500m", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
_RAYLET_HEALTH_PORT = 52365
_METRICS_PORT = 8080


def rayservice(serving: dict[str, Any], model_name: str, labels: dict[str, str]) -> Body:
    """A colour-neutral RayService template: `{"spec": {serveConfigV2, rayClusterConfig}}`."""
    port = int(serving.get("port", 8000))
    app = {
        "name": serving.get("appName", "driftline"),
        "import_path": serving.get("importPath", RAYSERVICE_IMPORT_PATH),
        "route_prefix": "/",
        "args": {"model_name": model_name},
    }
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": port},  # noqa: S104  (in the pod)
        "applications": [app],
    }
    env = _direct_ingress_env(int(serving.get("directIngressPort", 8100)))
    cluster = ray_cluster(serving, serving.get("image"), "serving", labels, env)
    text = yaml.safe_dump(config, sort_keys=True)
    return {"spec": {"serveConfigV2": text, "rayClusterConfig": cluster}}


def inference_service(serving: dict[str, Any], model_name: str, labels: dict[str, str]) -> Body:
    """A colour-neutral InferenceService template (raw deployment): annotations and predictor."""
    replicas = serving.get("replicas") or {}
    port = int(serving.get("port", 8000))
    container = {
        "name": "kserve-container",
        "image": serving.get("image") or "driftline-serving:latest",
        "command": ["python", "-m", "serving.kserve_server"],
        "env": [
            {"name": "DRIFTLINE_MODEL_NAME", "value": model_name},
            {"name": "DRIFTLINE_SERVING_PORT", "value": str(port)},
        ],
        # The active and preview Services target this port by name.
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "startupProbe": _probe("/v2/health/live", "http", period=5, failures=60),
        "livenessProbe": _probe("/v2/health/live", "http", period=10, failures=3),
        "readinessProbe": _probe("/v2/health/ready", "http", period=5, failures=3),
        "resources": serving.get("resources") or DEFAULT_RESOURCES,
        "securityContext": CONTAINER_SECURITY,
        # The root filesystem is read-only: the registry's downloads and HOME live in /tmp.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    predictor = {
        "minReplicas": int(replicas.get("min", 1)),
        "maxReplicas": int(replicas.get("max", 4)),
        "labels": labels,
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    return {
        "metadata": {"annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
        "spec": {"predictor": predictor},
    }


def ray_cluster(
    serving: dict[str, Any], image: object, component: str, labels: dict[str, str], env: list[Body]
) -> Body:
    """A restricted RayClusterSpec: one head (no CPUs for tasks: Serve replicas and trials go
    to workers), workers per the spec's replicas, the chart's ports and probes."""
    replicas = serving.get("replicas") or {}
    is_serving = component == "serving"

    def pod(group: str) -> Body:
        return _ray_pod(
            group,
            image=str(image or f"driftline-{component}:latest"),
            labels=labels,
            env=env,
            resources=serving.get("resources") or DEFAULT_RESOURCES,
            serving=serving,
            is_serving=is_serving,
        )

    head_params = {"metrics-export-port": str(_METRICS_PORT), "dashboard-host": "0.0.0.0"}  # noqa: S104
    return {
        "headGroupSpec": {
            "rayStartParams": {**head_params, "num-cpus": "0"},
            "template": pod("head"),
        },
        "workerGroupSpecs": [
            {
                "groupName": "serve" if is_serving else "trials",
                "replicas": int(replicas.get("min", 1)),
                "minReplicas": int(replicas.get("min", 1)),
                "maxReplicas": int(replicas.get("max", 4)),
                "rayStartParams": {"metrics-export-port": str(_METRICS_PORT)},
                "template": pod("worker"),
            }
        ],
    }


def _ray_pod(
    group: str,
    *,
    image: str,
    labels: dict[str, str],
    env: list[Body],
    resources: Body,
    serving: dict[str, Any],
    is_serving: bool,
) -> Body:
    """One Ray pod template, as the chart's `driftline.ray.podTemplate` builds it."""
    ports = []
    if group == "head":
        ports += [_port("gcs", 6379), _port("dashboard", 8265), _port("client", 10001)]
    if is_serving:
        ports += [
            _port(SERVE_PORT_NAME, int(serving.get("port", 8000))),
            _port(INGRESS_PORT_NAME, int(serving.get("directIngressPort", 8100))),
        ]
    ports.append(_port("metrics", _METRICS_PORT))
    container: Body = {
        "name": f"ray-{group}",
        "image": image,
        "env": env,
        "ports": ports,
        **_ray_probes(group, is_serving),
        "resources": resources,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            # Ray's session dir and object store: the root filesystem is read-only.
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108
        ],
    }
    return {
        "metadata": {"labels": labels},
        "spec": {
            "securityContext": POD_SECURITY,
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }


def _ray_probes(group: str, is_serving: bool) -> Body:
    """The head is healthy while its GCS answers, a worker while its raylet does; a serving
    worker is ready only while its ingress replica answers on the fast path."""
    if group == "head":
        return {
            "startupProbe": _probe("/api/gcs_healthz", "dashboard", period=5, failures=60),
            "readinessProbe": _probe("/api/gcs_healthz", "dashboard", period=5, failures=10),
            "livenessProbe": _probe("/api/gcs_healthz", "dashboard", period=10, failures=120),
        }
    raylet = "/api/local_raylet_healthz"
    ready = (
        _probe("/v2/health/ready", INGRESS_PORT_NAME, period=5, failures=10)
        if is_serving
        else _probe(raylet, _RAYLET_HEALTH_PORT, period=5, failures=10)
    )
    return {
        "startupProbe": _probe(raylet, _RAYLET_HEALTH_PORT, period=5, failures=60),
        "readinessProbe": ready,
        "livenessProbe": _probe(raylet, _RAYLET_HEALTH_PORT, period=10, failures=120),
    }


def _direct_ingress_env(port: int) -> list[Body]:
    """What Serve reads when Ray starts to serve HTTP on `port` itself (the chart's Ray env)."""
    values = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", **serve_ray_env(port)}
    return [{"name": name, "value": value} for name, value in values.items()]


def _probe(path: str, port: str | int, *, period: int, failures: int) -> Body:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _port(name: str, number: int) -> Body:
    return {"name": name, "containerPort": number}
