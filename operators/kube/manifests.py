"""Pure builders for every object the Kubernetes runtime creates or patches."""

from __future__ import annotations

import copy
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from driftline.contracts import (
    JOB_ID_ENV,
    ROLLOUT_ID_ENV,
    TRAINING_ENTRYPOINT,
    Colour,
    TrainingRequest,
)
from driftline.rollout_policy import RetrainingPolicy
from operators.actions import SubmitRetraining
from operators.kube import fallback
from operators.kube.api import (
    INFERENCE_SERVICE,
    MODEL_DEPLOYMENT,
    RAY_JOB,
    RAY_SERVICE,
    Body,
    Kind,
)

LABEL_MODEL = "driftline.io/model"
LABEL_COLOUR = "driftline.io/colour"
LABEL_JOB = "driftline.io/job-id"
LABEL_ROLLOUT = "driftline.io/rollout-id"
MANAGED_BY = "driftline-controller"
# KubeRay names a RayJob's cluster after the job plus a suffix; it refuses longer job names.
MAX_RAYJOB_NAME = 47
MAX_LABEL = 63
# The active and preview Services' inference port is found by this name, never by number: the
# Service's own port (80 in the chart) differs from the pods' (the direct ingress).
SERVICE_PORT_NAME = "http"
# Labels KubeRay sets on its pods itself (a Service may select `ray.io/node-type`).
KUBERAY_LABELS = "ray.io/"
# An InferenceService colour's version lives in this predictor (pod) annotation, which the
# container reads through the downward API: a map key Argo CD can leave alone on sync, where an
# entry of the predictor's `containers` list would make it keep the whole list from the cluster.
VERSION_ANNOTATION = "driftline.io/model-version"
VERSION_ENV = "DRIFTLINE_MODEL_VERSION"


@dataclass(frozen=True, slots=True)
class Target:
    """The ModelDeployment whose children these are."""

    name: str
    namespace: str
    uid: str
    spec: dict[str, Any]

    @property
    def model_name(self) -> str:
        """The registered model it serves."""
        return str(self.spec["model"]["name"])

    def section(self, *path: str) -> dict[str, Any]:
        """A nested section of the spec ({} when absent)."""
        node: Any = self.spec
        for key in path:
            node = node.get(key) or {} if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}


@dataclass(frozen=True, slots=True)
class ColourServices:
    """What a colour the controller creates takes from the Services that route to it: the labels
    they select pods by (less the colour), and the preview Service's URL on its port named
    `http`, where the active colour mirrors to (`DRIFTLINE_SERVE_SHADOW_URL`)."""

    labels: dict[str, str] = field(default_factory=dict)
    shadow_url: str | None = None


def colour_services(preview: Body | None, namespace: str) -> ColourServices:
    """`ColourServices` from the preview Service as it exists (none: no labels, no mirroring)."""
    if preview is None:
        return ColourServices()
    selector = (preview.get("spec") or {}).get("selector") or {}
    labels = {
        str(k): str(v)
        for k, v in selector.items()
        if k != LABEL_COLOUR and not str(k).startswith(KUBERAY_LABELS)
    }
    port = service_port(preview)
    name = preview["metadata"]["name"]
    url = None if port is None else f"http://{name}.{namespace}.svc:{port}"
    return ColourServices(labels, url)


def colour_env(base: list[Body], *overrides: list[Body]) -> list[Body]:
    """A container's env: `base`, then each list of `overrides` in turn, an entry replacing the
    one of the same name where it stands or else added at the end."""
    env = [dict(e) for e in base]
    for entries in overrides:
        for entry in entries:
            names = [e.get("name") for e in env]
            if entry.get("name") in names:
                env[names.index(entry.get("name"))] = dict(entry)
            else:
                env.append(dict(entry))
    return env


def label_value(text: str) -> str:
    """`text` as a valid label value: alphanumerics, '-', '_', '.', at most 63 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")[:MAX_LABEL]
    return cleaned.rstrip("-_.") or "x"


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 name from `parts`, shortened with a hash suffix when too long."""
    name = re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower()).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def owner(target: Target) -> Body:
    """The ModelDeployment as an owner body for kopf.adopt."""
    return {
        "apiVersion": MODEL_DEPLOYMENT.api_version,
        "kind": MODEL_DEPLOYMENT.kind,
        "metadata": {"name": target.name, "namespace": target.namespace, "uid": target.uid},
    }


def common_labels(target: Target, component: str) -> dict[str, str]:
    """Labels every child carries."""
    return {
        "app.kubernetes.io/name": "driftline",
        "app.kubernetes.io/instance": label_value(target.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_MODEL: label_value(target.model_name),
    }


# --- retraining ---------------------------------------------------------------------------------
def job_name(target: Target, job_id: str) -> str:
    """The RayJob's name for a controller job id."""
    return dns_name(target.name, "rt", job_id, limit=MAX_RAYJOB_NAME)


def rayjob(target: Target, action: SubmitRetraining, *, extra_args: str = "") -> Body:
    """The KubeRay RayJob that retrains the model for one rollout attempt."""
    retraining = target.section("retraining")
    limits = RetrainingPolicy.model_validate(retraining)
    # KubeRay's own deadlines stop the job when no controller is running; a minute past the
    # controller's limits, so the controller's verdict (audited, with the limit) comes first.
    grace = 60
    request = TrainingRequest(
        trials=int(retraining.get("trials", 20)), extra=tuple(shlex.split(extra_args))
    )
    entrypoint = shlex.split(str(retraining.get("entrypoint", TRAINING_ENTRYPOINT)))
    env = {
        "DRIFTLINE_MODEL_NAME": target.model_name,
        JOB_ID_ENV: action.job_id,
        ROLLOUT_ID_ENV: action.rollout_id,
    }
    tracking = target.section("model").get("trackingUri")
    if tracking:
        env["MLFLOW_TRACKING_URI"] = str(tracking)
    labels = {
        **common_labels(target, "training"),
        LABEL_JOB: label_value(action.job_id),
        LABEL_ROLLOUT: label_value(action.rollout_id),
    }
    spec: Body = {
        "entrypoint": shlex.join([*entrypoint, *request.options()]),
        "runtimeEnvYAML": yaml.safe_dump({"env_vars": env}, sort_keys=True),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": 600,
        "activeDeadlineSeconds": int(limits.timeout_seconds) + grace,
        # KubeRay >= 1.6: fails a job whose cluster is not up and job not submitted in time.
        "preRunningDeadlineSeconds": int(limits.start_timeout_seconds) + grace,
        "backoffLimit": 0,
        "submissionMode": "K8sJobMode",
        "rayClusterSpec": retraining.get("rayClusterSpec")
        or fallback.ray_cluster(
            target.section("serving"), retraining.get("image"), "training", labels, []
        ),
    }
    return _object(RAY_JOB, job_name(target, action.job_id), target, labels, spec)


# --- serving --------------------------------------------------------------------------------
def colour_name(target: Target, colour: Colour) -> str:
    """The serving object of one colour (the chart's `<release>-<colour>`)."""
    return dns_name(target.name, colour)


def pin_version(config_text: str, app_name: str, version: str) -> str:
    """An existing serveConfigV2 with `version` in the named application's args."""
    return _set_args(config_text, app_name, model_version=version)


def serve_config(target: Target, colour: Colour, version: str, live: str) -> str:
    """The serveConfigV2 an existing colour gets when the controller deploys or retires it: the
    template's (the chart's serve app, as Argo CD or Helm last applied the ModelDeployment) with
    the colour's version and colour, so a chart change reaches the colour at its next rollout;
    without a template, the `live` text with only the version pinned."""
    app = str(target.section("serving").get("appName", "driftline"))
    given = target.section("serving", "template", "spec").get("serveConfigV2")
    if not given:
        return pin_version(live, app, version)
    return _set_args(str(given), app, model_version=version, colour=colour)


def served_version(config_text: str, app_name: str) -> str | None:
    """The `model_version` arg of the named application, if any."""
    config = yaml.safe_load(config_text or "") or {}
    for app in config.get("applications", []):
        if app.get("name") == app_name:
            version = (app.get("args") or {}).get("model_version")
            return None if version is None else str(version)
    return None


def serving_template(target: Target, kind: Kind) -> Body:
    """The colour-neutral `kind` object a colour is made from: the spec's `serving.template`
    (the chart renders its own there), or the fallback built from the spec's few fields."""
    given = target.section("serving", "template")
    if given.get("spec"):
        return copy.deepcopy(given)
    serving, labels = target.section("serving"), common_labels(target, "serving")
    build = fallback.inference_service if kind is INFERENCE_SERVICE else fallback.rayservice
    return build(serving, target.model_name, labels)


def rayservice(
    target: Target, colour: Colour, version: str, services: ColourServices | None = None
) -> Body:
    """One colour's RayService: the template with the colour's labels, serve args and env."""
    services = services or ColourServices()
    template = serving_template(target, RAY_SERVICE)
    spec = template["spec"]
    app = str(target.section("serving").get("appName", "driftline"))
    spec["serveConfigV2"] = _set_args(
        spec.get("serveConfigV2", ""), app, model_version=version, colour=colour
    )
    own = _values({"DRIFTLINE_COLOUR": colour, **_shadow_env(services)})
    cluster = spec.get("rayClusterConfig") or {}
    groups = [cluster.get("headGroupSpec") or {}, *(cluster.get("workerGroupSpecs") or [])]
    for group in groups:
        pod = group.get("template") or {}
        metadata = pod.setdefault("metadata", {})
        metadata["labels"] = _colour_labels(metadata.get("labels"), services, colour)
        _colour_containers(target, (pod.get("spec") or {}).get("containers"), own)
    return _colour_object(RAY_SERVICE, target, colour, services, template)


def inference_service(
    target: Target, colour: Colour, version: str, services: ColourServices | None = None
) -> Body:
    """One colour's KServe InferenceService: the template with the colour's labels, version
    annotation and env (the version read from it, colour, where it mirrors to)."""
    services = services or ColourServices()
    template = serving_template(target, INFERENCE_SERVICE)
    predictor = template["spec"].setdefault("predictor", {})
    predictor["labels"] = _colour_labels(predictor.get("labels"), services, colour)
    predictor["annotations"] = {**(predictor.get("annotations") or {}), VERSION_ANNOTATION: version}
    own = [version_env(), *_values({"DRIFTLINE_COLOUR": colour, **_shadow_env(services)})]
    _colour_containers(target, predictor.get("containers"), own)
    return _colour_object(INFERENCE_SERVICE, target, colour, services, template)


def version_env() -> Body:
    """The predictor's DRIFTLINE_MODEL_VERSION, read from its version annotation."""
    path = f"metadata.annotations['{VERSION_ANNOTATION}']"
    return {"name": VERSION_ENV, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def isvc_version(body: Body) -> str | None:
    """The version an InferenceService's predictor serves: its version annotation, or the
    literal env value of an object made before the annotation."""
    predictor = body.get("spec", {}).get("predictor", {})
    annotated = (predictor.get("annotations") or {}).get(VERSION_ANNOTATION)
    if annotated is not None:
        return str(annotated)
    literal = _literal_versions(predictor)
    return literal[0] if literal else None


def isvc_version_patch(body: Body, version: str) -> Body:
    """A merge patch setting the predictor's version annotation; an object made before the
    annotation also gets its env entry turned into the annotation's reader (containers are
    replaced as a list)."""
    predictor = body["spec"]["predictor"]
    patch: Body = {"annotations": {VERSION_ANNOTATION: version}}
    if _literal_versions(predictor):
        patch["containers"] = [
            {**c, "env": colour_env(c.get("env") or [], [version_env()])}
            for c in predictor["containers"]
        ]
    return {"spec": {"predictor": patch}}


def service_port(service: Body | None, name: str = SERVICE_PORT_NAME) -> int | None:
    """The number of a Service's port called `name`, if the Service has one."""
    for port in ((service or {}).get("spec") or {}).get("ports") or []:
        if port.get("name") == name:
            return int(port["port"])
    return None


def selector_patch(colour: Colour) -> Body:
    """Point a Service at one colour; only the colour key of its selector changes."""
    return {"spec": {"selector": {LABEL_COLOUR: colour}}}


# --- shared pieces ------------------------------------------------------------------------------
def _set_args(config_text: str, app_name: str, **args: str) -> str:
    """A serveConfigV2 with `args` set in the named application's args."""
    config = yaml.safe_load(config_text or "") or {}
    for app in config.get("applications", []):
        if app.get("name") == app_name:
            app.setdefault("args", {}).update(args)
            return yaml.safe_dump(config, sort_keys=True)
    raise ValueError(f"serveConfigV2 has no application named {app_name!r}")


def _colour_labels(
    given: dict[str, str] | None, services: ColourServices, colour: Colour
) -> dict[str, str]:
    """A colour's pod labels: the template's, the Services' selector labels and the colour."""
    return {**(given or {}), **services.labels, LABEL_COLOUR: colour}


def _colour_containers(target: Target, containers: list[Body] | None, own: list[Body]) -> None:
    """Give each container the spec's `serving.env` and the controller's own entries."""
    extra = [e for e in target.section("serving").get("env") or [] if isinstance(e, dict)]
    for container in containers or []:
        container["env"] = colour_env(container.get("env") or [], extra, own)


def _values(env: dict[str, str]) -> list[Body]:
    """Env entries with literal values."""
    return [{"name": name, "value": value} for name, value in env.items()]


def _literal_versions(predictor: Body) -> list[str]:
    """The literal DRIFTLINE_MODEL_VERSION values in a predictor's containers (objects made
    before the version annotation)."""
    return [
        str(e["value"])
        for c in predictor.get("containers") or []
        for e in c.get("env") or []
        if e.get("name") == VERSION_ENV and "value" in e
    ]


def _colour_object(
    kind: Kind, target: Target, colour: Colour, services: ColourServices, template: Body
) -> Body:
    """The colour's object: the controller's labels, the template's annotations and spec."""
    labels = {**common_labels(target, "serving"), **services.labels, LABEL_COLOUR: colour}
    body = _object(kind, colour_name(target, colour), target, labels, template["spec"])
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return body


def _shadow_env(services: ColourServices) -> dict[str, str]:
    """`DRIFTLINE_SERVE_SHADOW_URL` when the preview Service has a port `http`."""
    url = services.shadow_url
    return {} if url is None else {"DRIFTLINE_SERVE_SHADOW_URL": url}


def _object(kind: Kind, name: str, target: Target, labels: dict[str, str], spec: Body) -> Body:
    body: Body = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": spec,
    }
    # Owner reference and namespace: children are garbage-collected with their ModelDeployment.
    import kopf  # noqa: PLC0415  (the operator's; the local controller renders without it)

    kopf.adopt(body, owner=kopf.Body(cast(kopf.RawBody, owner(target))))
    return body
