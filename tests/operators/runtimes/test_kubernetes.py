"""KubernetesRuntime against a validating fake API: every object it writes is schema-valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftline.store import Store
from operators.actions import SubmitRetraining
from operators.controller import Controller
from operators.kube import manifests as m
from operators.kube.api import INFERENCE_SERVICE, RAY_JOB, RAY_SERVICE, SERVICE
from operators.observations import JobStatus
from operators.observe import Observer
from operators.runtimes.kubernetes import SHADOW_ANNOTATION, KubernetesRuntime
from operators.spec import RolloutSpec
from operators.states import Phase
from tests.operators.fakes import Clock, FakeDrift, FakeGates, FakeHealth, FakeLosses, FakeRegistry
from tests.operators.kube.cluster import FakeKubeApi, model_deployment


def _runtime(kube: FakeKubeApi, registry: FakeRegistry, **spec: object) -> KubernetesRuntime:
    body = model_deployment(**spec)
    target = m.Target("driftline", "ml", body["metadata"]["uid"], body["spec"])
    return KubernetesRuntime(kube, target, registry, registry, FakeHealth())


def _version(kube: FakeKubeApi, colour: str) -> str | None:
    body = kube.get(RAY_SERVICE, "ml", f"driftline-{colour}")
    assert body is not None
    return m.served_version(body["spec"]["serveConfigV2"], "driftline")


def _selector(kube: FakeKubeApi, service: str) -> str:
    body = kube.get(SERVICE, "ml", service)
    assert body is not None
    return str(body["spec"]["selector"][m.LABEL_COLOUR])


def test_reads_the_charts_colours_and_resolves_aliases(kube: FakeKubeApi) -> None:
    observed = _runtime(kube, FakeRegistry(champion="5")).observe_serving()
    assert (observed.routed, observed.shadow) == ("blue", None)
    assert list(observed.colours) == ["blue"]  # green follows the challenger alias: idle
    assert observed.colours["blue"].version == "5"
    assert observed.colours["blue"].ready


def test_a_whole_rollout_writes_only_valid_objects(kube: FakeKubeApi, tmp_path: Path) -> None:
    registry, drift, clock = FakeRegistry(), FakeDrift(), Clock()
    runtime = _runtime(kube, registry)
    spec = RolloutSpec.from_resource(model_deployment()["spec"])
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    observer = Observer(spec, store, runtime, drift, FakeLosses())
    controller = Controller(spec, store, runtime, observer, FakeGates(), clock=clock)

    drift.add("critical", clock.now)
    report = controller.step()
    assert report.decision is not None
    assert report.decision.state.phase is Phase.RETRAINING
    (job,) = kube.of(RAY_JOB)
    assert job["spec"]["entrypoint"] == "python -m training.job --trials 4"
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    job_id = env["DRIFTLINE_JOB_ID"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "md-uid-1"
    assert len(job["metadata"]["name"]) <= m.MAX_RAYJOB_NAME
    assert runtime.running_jobs() == (job_id,)

    job["status"] = {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete"}
    kube.seed(job)
    registry.job_versions[job_id] = "2"
    seen = []
    for _ in range(8):
        clock.advance(30)
        report = controller.step()
        assert report.decision is not None
        active = kube.get(SERVICE, "ml", "driftline-active")
        assert active is not None
        seen.append(
            (
                report.decision.state.phase.value,
                _selector(kube, "driftline-active"),
                active["metadata"].get("annotations", {}).get(SHADOW_ANNOTATION),
                _selector(kube, "driftline-preview"),
                _version(kube, "green"),
            )
        )
    # Shadow first (preview selects green and the annotation marks it mirrored), then the switch
    # (blue becomes the shadow), then promotion (no shadow).
    assert ("deploying", "blue", "green", "green", "2") in seen
    assert ("verifying", "green", "blue", "blue", "2") in seen
    assert seen[-1] == ("promoted", "green", "", "blue", "2")
    assert registry.champion == "2"
    assert _version(kube, "blue") == "challenger"  # chart-owned: retired to the alias, not deleted
    written = {name for verb, _, name in kube.writes() if verb != "delete"}
    assert written <= {v.split("/", 1)[1] for v in kube.validate.validated}
    store.close()


def test_colours_it_creates_are_owned_and_deleted_on_retire(kube: FakeKubeApi) -> None:
    for colour in ("blue", "green"):
        kube.delete(RAY_SERVICE, "ml", f"driftline-{colour}")
    runtime = _runtime(kube, FakeRegistry(), serving={"importPath": "serving.app:colour_app"})
    runtime.deploy("green", "7")
    created = kube.get(RAY_SERVICE, "ml", "driftline-green")
    assert created is not None
    assert created["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert created["metadata"]["labels"][m.LABEL_COLOUR] == "green"
    config = yaml.safe_load(created["spec"]["serveConfigV2"])
    assert config["applications"][0]["import_path"] == "serving.app:colour_app"
    assert config["applications"][0]["args"]["model_version"] == "7"
    runtime.deploy("green", "8")
    assert _version(kube, "green") == "8"
    runtime.retire("green")
    assert kube.get(RAY_SERVICE, "ml", "driftline-green") is None


def test_inference_service_mode(kube: FakeKubeApi) -> None:
    runtime = _runtime(kube, FakeRegistry(), serving={"runtime": "InferenceService"})
    runtime.deploy("green", "3")
    (isvc,) = kube.of(INFERENCE_SERVICE)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert m.isvc_version(isvc) == "3"
    assert runtime.observe_serving().colours["green"].ready is False
    isvc["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    kube.seed(isvc)
    runtime.deploy("green", "4")
    observed = runtime.observe_serving().colours["green"]
    assert (observed.version, observed.ready, observed.retiring) == ("4", True, False)
    isvc["metadata"]["deletionTimestamp"] = "2026-12-02T15:00:00Z"
    kube.seed(isvc)
    assert runtime.observe_serving().colours["green"].retiring is True


def test_a_colour_it_creates_gets_the_specs_env_and_mirrors_to_the_preview_service(
    kube: FakeKubeApi,
) -> None:
    database = {"secretKeyRef": {"name": "driftline-database", "key": "url"}}
    env = [{"name": "DRIFTLINE_DATABASE_URL", "valueFrom": database}]
    runtime = _runtime(kube, FakeRegistry(), serving={"runtime": "InferenceService", "env": env})
    runtime.deploy("green", "3")
    (isvc,) = kube.of(INFERENCE_SERVICE)
    (container,) = isvc["spec"]["predictor"]["containers"]
    found = {e["name"]: e for e in container["env"]}
    assert found["DRIFTLINE_DATABASE_URL"]["valueFrom"] == database
    preview = kube.get(SERVICE, "ml", "driftline-preview")
    assert preview is not None
    # The preview Service's port named `http`, read from the Service the chart rendered.
    port = m.service_port(preview)
    assert found["DRIFTLINE_SERVE_SHADOW_URL"]["value"] == f"http://driftline-preview.ml.svc:{port}"


def test_stop_deletes_the_job_and_failed_jobs_are_not_running(kube: FakeKubeApi) -> None:
    runtime = _runtime(kube, FakeRegistry())
    runtime.submit_retraining(SubmitRetraining("abc-1", "abc", "drift:r"))
    runtime.submit_retraining(SubmitRetraining("abc-1", "abc", "drift:r"))
    assert len(kube.of(RAY_JOB)) == 1
    runtime.submit_retraining(SubmitRetraining("def-1", "def", "drift:s"))
    failed = kube.get(RAY_JOB, "ml", m.job_name(runtime.target, "def-1"))
    assert failed is not None
    failed["status"] = {"jobDeploymentStatus": "Failed", "message": "OOMKilled"}
    kube.seed(failed)
    assert runtime.running_jobs() == ("abc-1",)
    observed = runtime.observe_job("def-1")
    assert (observed.status.value, observed.message) == ("failed", "OOMKilled")
    runtime.stop_retraining("abc-1")
    assert runtime.observe_job("abc-1").status.value == "absent"


_HEAD_NOT_READY = {
    "type": "HeadPodReady",
    "status": "False",
    "reason": "HeadPodNotReady",
    "message": "containers with unready status: [ray-head]",
    "lastTransitionTime": "2026-12-06T10:00:00Z",
}
_PROVISIONING = {
    "type": "RayClusterProvisioned",
    "status": "False",
    "reason": "RayClusterPodsProvisioning",
    "message": "",
    "lastTransitionTime": "2026-12-06T10:00:00Z",
}
_PRE_RUNNING = "The RayJob has passed the preRunningDeadlineSeconds. PreRunningDeadlineSeconds: 660"


@pytest.mark.parametrize(
    ("status", "expected", "message"),
    [
        # Created, not yet reconciled: KubeRay has not set a deployment status.
        (None, JobStatus.STARTING, "RayJob not yet picked up by the KubeRay operator"),
        # Its RayCluster coming up (node scale-up, image pulls): the job is not submitted yet.
        (
            {
                "jobDeploymentStatus": "Initializing",
                "jobStatus": "",
                "rayClusterName": "driftline-rt-abc-1-x7k2p",
                "rayClusterStatus": {
                    "conditions": [
                        _PROVISIONING,
                        _HEAD_NOT_READY,
                    ],
                    "desiredWorkerReplicas": 2,
                },
            },
            JobStatus.STARTING,
            "Ray cluster driftline-rt-abc-1-x7k2p starting: RayClusterProvisioned: "
            "RayClusterPodsProvisioning; HeadPodReady: containers with unready status: "
            "[ray-head]; 0 of 2 workers ready",
        ),
        (
            {"jobDeploymentStatus": "Initializing"},
            JobStatus.STARTING,
            "Ray cluster not created yet starting",
        ),
        # Cluster ready, the submitter pod not through `ray job submit` yet.
        (
            {"jobDeploymentStatus": "Running", "jobStatus": ""},
            JobStatus.STARTING,
            "Ray cluster ready; the submitter has not submitted the job yet",
        ),
        # Submitted: from here Ray's own status, and the 60 s schedule bound.
        (
            {"jobDeploymentStatus": "Running", "jobStatus": "PENDING", "message": "waiting"},
            JobStatus.PENDING,
            "waiting",
        ),
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, JobStatus.RUNNING, ""),
        # KubeRay's own deadline: its reason and message, whatever the Ray job's status.
        (
            {
                "jobDeploymentStatus": "Failed",
                "jobStatus": "",
                "reason": "PreRunningDeadlineExceeded",
                "message": _PRE_RUNNING,
            },
            JobStatus.FAILED,
            f"PreRunningDeadlineExceeded: {_PRE_RUNNING}",
        ),
        (
            {"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed"},
            JobStatus.FAILED,
            "ValidationFailed",
        ),
    ],
)
def test_kuberay_statuses_map_to_job_statuses(
    kube: FakeKubeApi, status: dict[str, object] | None, expected: JobStatus, message: str
) -> None:
    runtime = _runtime(kube, FakeRegistry())
    runtime.submit_retraining(SubmitRetraining("abc-1", "abc", "drift:r"))
    (job,) = kube.of(RAY_JOB)
    if status is not None:
        job["status"] = status
        kube.seed(job)
    observed = runtime.observe_job("abc-1")
    assert (observed.status, observed.message) == (expected, message)
    assert runtime.running_jobs() == (() if expected.finished else ("abc-1",))


def test_kuberays_deadlines_back_up_the_controllers_limits(kube: FakeKubeApi) -> None:
    retraining = {"timeoutSeconds": 1800, "startTimeoutSeconds": 300}
    runtime = _runtime(kube, FakeRegistry(), retraining=retraining)
    runtime.submit_retraining(SubmitRetraining("abc-1", "abc", "drift:r"))
    (job,) = kube.of(RAY_JOB)  # written through the validating API: KubeRay's schema has both
    # A minute past the controller's own limits, so its audited verdict comes first.
    assert job["spec"]["preRunningDeadlineSeconds"] == 360
    assert job["spec"]["activeDeadlineSeconds"] == 1860


def test_the_charts_training_cluster_is_used_verbatim(kube: FakeKubeApi) -> None:
    cluster = {
        "headGroupSpec": {
            "rayStartParams": {},
            "template": {"spec": {"containers": [{"name": "ray-head", "image": "train:9"}]}},
        }
    }
    runtime = _runtime(kube, FakeRegistry(), retraining={"rayClusterSpec": cluster, "trials": 2})
    runtime.submit_retraining(SubmitRetraining("abc-1", "abc", "drift:r"))
    (job,) = kube.of(RAY_JOB)
    assert job["spec"]["rayClusterSpec"] == cluster


@pytest.mark.parametrize("name", ["a" * 80, "Driftline_Prod"])
def test_names_are_valid_dns_labels(name: str) -> None:
    target = m.Target(name, "ml", "u", model_deployment()["spec"])
    job = m.job_name(target, "0123456789ab-12")
    assert len(job) <= m.MAX_RAYJOB_NAME
    assert job == job.lower()
    assert len(m.colour_name(target, "green")) <= 63
