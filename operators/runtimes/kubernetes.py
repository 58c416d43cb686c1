"""KubernetesRuntime: KubeRay RayJobs retrain, a RayService (or InferenceService) per colour
serves, and the active Service's selector moves traffic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.contracts import CHALLENGER, CHAMPION, COLOURS, Colour
from operators.actions import SetChampion, SubmitRetraining
from operators.kube import manifests as m
from operators.kube.api import INFERENCE_SERVICE, RAY_JOB, RAY_SERVICE, SERVICE, Body, Kind, KubeApi
from operators.observations import ColourObservation, Health, JobObservation, JobStatus
from operators.runtimes.base import (
    ChampionRecord,
    HealthSource,
    JobVersions,
    RuntimeOperationError,
    ServingObservation,
)

SHADOW_ANNOTATION = "driftline.io/shadow-colour"
# A RayJob's `status.jobStatus` is the Ray job's, once KubeRay has submitted it; before that it
# is empty ("New") while the job's own RayCluster starts and the submitter runs.
_JOB_STATUS = {
    "": JobStatus.STARTING,
    "PENDING": JobStatus.PENDING,
    "RUNNING": JobStatus.RUNNING,
    "SUCCEEDED": JobStatus.SUCCEEDED,
    "FAILED": JobStatus.FAILED,
    "STOPPED": JobStatus.STOPPED,
}
# KubeRay's terminal failures of the RayJob itself (its deadlines, a failed submitter, a spec it
# refused), whatever the Ray job's own status.
_DEPLOYMENT_FAILED = frozenset({"Failed", "ValidationFailed"})


class KubernetesRuntime:
    """Acts on one ModelDeployment's children through the API server."""

    name = "kubernetes"

    def __init__(
        self,
        api: KubeApi,
        target: m.Target,
        champion: ChampionRecord,
        versions: JobVersions,
        health_source: HealthSource,
        *,
        extra_args: str = "",
    ) -> None:
        self.api, self.target = api, target
        self.champion, self.versions, self.health_source = champion, versions, health_source
        self.extra_args = extra_args

    # --- observing ------------------------------------------------------------------------
    def observe_serving(self) -> ServingObservation:
        active = self._service(self._active_service)
        routed = _colour(active.get("spec", {}).get("selector", {}).get(m.LABEL_COLOUR))
        annotations = active.get("metadata", {}).get("annotations") or {}
        shadow = _colour(annotations.get(SHADOW_ANNOTATION))
        colours: dict[Colour, ColourObservation] = {}
        for colour in COLOURS:
            observed = self._observe_colour(colour)
            if observed is not None:
                colours[colour] = observed
        return ServingObservation(routed, shadow if shadow != routed else None, colours)

    def observe_job(self, job_id: str) -> JobObservation:
        body = self.api.get(RAY_JOB, self.target.namespace, m.job_name(self.target, job_id))
        if body is None:
            return JobObservation(job_id, JobStatus.ABSENT)
        status = _job_status(body)
        version = None
        if status is JobStatus.SUCCEEDED:
            times = body.get("status") or {}
            started, ended = _time(times.get("startTime")), _time(times.get("endTime"))
            version = self.versions.version_for(job_id, started, ended)
        return JobObservation(job_id, status, version, _job_message(body, status))

    def running_jobs(self) -> tuple[str, ...]:
        selector = f"{m.LABEL_MODEL}={m.label_value(self.target.model_name)}"
        jobs = self.api.select(RAY_JOB, self.target.namespace, selector)
        return tuple(
            sorted(
                body["metadata"]["labels"][m.LABEL_JOB]
                for body in jobs
                if not _job_status(body).finished
                and m.LABEL_JOB in body["metadata"].get("labels", {})
            )
        )

    def champion_version(self) -> str | None:
        return self.champion.get()

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        return self.health_source.health(colour, version, since)

    # --- acting ---------------------------------------------------------------------------
    def submit_retraining(self, action: SubmitRetraining) -> None:
        body = m.rayjob(self.target, action, extra_args=self.extra_args)
        self.api.create(RAY_JOB, self.target.namespace, body)

    def stop_retraining(self, job_id: str) -> None:
        self.api.delete(RAY_JOB, self.target.namespace, m.job_name(self.target, job_id))

    def deploy(self, colour: Colour, version: str) -> None:
        kind, name = self._serving_kind, m.colour_name(self.target, colour)
        existing = self.api.get(kind, self.target.namespace, name)
        if existing is None:
            self.api.create(kind, self.target.namespace, self._new_colour(colour, version))
            return
        patch = self._version_patch(colour, existing, version)
        self.api.patch(kind, self.target.namespace, name, patch)

    def route(self, active: Colour, shadow: Colour | None) -> None:
        namespace = self.target.namespace
        if shadow is not None:
            # The preview Service is the mirror target: it must select the shadow first.
            self.api.patch(SERVICE, namespace, self._preview_service, m.selector_patch(shadow))
        patch = m.selector_patch(active)
        patch["metadata"] = {"annotations": {SHADOW_ANNOTATION: shadow or ""}}
        self.api.patch(SERVICE, namespace, self._active_service, patch)

    def retire(self, colour: Colour) -> None:
        kind, name = self._serving_kind, m.colour_name(self.target, colour)
        existing = self.api.get(kind, self.target.namespace, name)
        if existing is None:
            return
        if _owned_by(existing, self.target.uid):
            self.api.delete(kind, self.target.namespace, name)
        else:
            # The chart owns this colour: leave it following the challenger alias (idle).
            patch = self._version_patch(colour, existing, CHALLENGER)
            self.api.patch(kind, self.target.namespace, name, patch)

    def set_champion(self, action: SetChampion) -> None:
        self.champion.set(action)

    # --- helpers --------------------------------------------------------------------------
    @property
    def _serving_kind(self) -> Kind:
        runtime = self.target.section("serving").get("runtime", "RayService")
        return INFERENCE_SERVICE if runtime == "InferenceService" else RAY_SERVICE

    @property
    def _active_service(self) -> str:
        name = self.target.section("serving").get("activeServiceName")
        return str(name or m.dns_name(self.target.name, "active"))

    @property
    def _preview_service(self) -> str:
        name = self.target.section("serving").get("previewServiceName")
        return str(name or m.dns_name(self.target.name, "preview"))

    @property
    def _app_name(self) -> str:
        return str(self.target.section("serving").get("appName", "driftline"))

    def _service(self, name: str) -> Body:
        body = self.api.get(SERVICE, self.target.namespace, name)
        if body is None:
            raise RuntimeOperationError(f"Service {self.target.namespace}/{name} does not exist")
        return body

    def _observe_colour(self, colour: Colour) -> ColourObservation | None:
        kind = self._serving_kind
        body = self.api.get(kind, self.target.namespace, m.colour_name(self.target, colour))
        if body is None:
            return None
        if kind is RAY_SERVICE:
            version = m.served_version(
                body.get("spec", {}).get("serveConfigV2", ""), self._app_name
            )
        else:
            version = m.isvc_version(body)
        if version in {None, "", CHALLENGER}:
            return None  # idle: a chart colour that follows the challenger alias serves no pin
        if version == CHAMPION:
            version = self.champion.get()
        ready, message = _readiness(kind, body.get("status") or {})
        deleting = bool((body.get("metadata") or {}).get("deletionTimestamp"))
        return ColourObservation(version, ready, message, retiring=deleting)

    def _new_colour(self, colour: Colour, version: str) -> Body:
        # The Services that will route to it: their selector's labels, and the preview Service's
        # named port as the address the colour mirrors to.
        preview = self.api.get(SERVICE, self.target.namespace, self._preview_service)
        services = m.colour_services(preview, self.target.namespace)
        if self._serving_kind is INFERENCE_SERVICE:
            return m.inference_service(self.target, colour, version, services)
        return m.rayservice(self.target, colour, version, services)

    def _version_patch(self, colour: Colour, existing: Body, version: str) -> Body:
        # The controller's fields only (the Argo CD Applications ignore exactly these): the
        # predictor's version annotation, or the whole serveConfigV2, one YAML string, rebuilt
        # from the ModelDeployment's template so the chart's serve app reaches this colour now.
        if self._serving_kind is INFERENCE_SERVICE:
            return m.isvc_version_patch(existing, version)
        live = existing.get("spec", {}).get("serveConfigV2", "")
        return {"spec": {"serveConfigV2": m.serve_config(self.target, colour, version, live)}}


def _colour(value: object) -> Colour | None:
    return value if value in COLOURS else None


def _job_status(body: Body) -> JobStatus:
    status: Mapping[str, Any] = body.get("status") or {}
    if status.get("jobDeploymentStatus") in _DEPLOYMENT_FAILED:
        return JobStatus.FAILED
    return _JOB_STATUS.get(str(status.get("jobStatus") or "").upper(), JobStatus.PENDING)


def _job_message(body: Body, status: JobStatus) -> str:
    """What KubeRay says about the job: its failure reason, or how far its cluster got."""
    observed: Mapping[str, Any] = body.get("status") or {}
    message, reason = str(observed.get("message") or ""), str(observed.get("reason") or "")
    if status is JobStatus.STARTING:
        return _starting_message(observed)
    return f"{reason}: {message}" if reason and message else reason or message


def _starting_message(status: Mapping[str, Any]) -> str:
    deployment = status.get("jobDeploymentStatus") or ""
    if not deployment:
        return "RayJob not yet picked up by the KubeRay operator"
    if deployment == "Running":
        return "Ray cluster ready; the submitter has not submitted the job yet"
    if deployment != "Initializing":
        return f"RayJob {deployment}; the job is not submitted yet"
    cluster: Mapping[str, Any] = status.get("rayClusterStatus") or {}
    waiting = [
        f"{c.get('type')}: {c.get('message') or c.get('reason') or c.get('status')}"
        for c in cluster.get("conditions") or []
        if c.get("status") != "True"
    ]
    desired = cluster.get("desiredWorkerReplicas")
    if desired:
        waiting.append(f"{cluster.get('readyWorkerReplicas', 0)} of {desired} workers ready")
    name = status.get("rayClusterName") or "not created yet"
    return f"Ray cluster {name} starting" + (f": {'; '.join(waiting)}" if waiting else "")


def _readiness(kind: Kind, status: Mapping[str, Any]) -> tuple[bool, str]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            return ready, str(condition.get("message") or condition.get("reason") or "")
    if kind is RAY_SERVICE and status.get("serviceStatus"):
        return status["serviceStatus"] == "Running", str(status["serviceStatus"])
    return False, "no Ready condition yet"


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _owned_by(body: Body, uid: str) -> bool:
    owners = body.get("metadata", {}).get("ownerReferences") or []
    return any(owner.get("uid") == uid for owner in owners)
