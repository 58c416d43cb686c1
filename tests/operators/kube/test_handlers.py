"""kopf handlers called as kopf calls them: status is schema-valid and written only when changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from driftline.config import Settings
from driftline.store import Store, utcnow
from operators.kube import manifests as m
from operators.kube.api import RAY_JOB
from operators.kube.handlers import FINALIZER, OperatorContext, build_registry, finalize, reconcile
from operators.runtimes.kubernetes import KubernetesRuntime
from tests.operators.fakes import FakeDrift, FakeGates, FakeHealth, FakeLosses, FakeRegistry
from tests.operators.kube.cluster import FakeKubeApi, merge_patch, model_deployment


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def context(kube: FakeKubeApi, store: Store, tmp_path: Path) -> OperatorContext:
    registry = FakeRegistry()

    def runtime_for(target: m.Target) -> KubernetesRuntime:
        return KubernetesRuntime(kube, target, registry, registry, FakeHealth())

    return OperatorContext(
        settings=Settings(home=tmp_path, controller={"interval_s": 7}),
        store=store,
        runtime_for=runtime_for,
        gates_for=lambda spec, target: FakeGates(),
        drift=FakeDrift(),
        losses=FakeLosses(),
        holder="pod-a",
    )


def _apply(body: dict[str, Any], patch: kopf.Patch) -> dict[str, Any]:
    return merge_patch(body, {"status": dict(patch.get("status") or {})})


def test_status_is_valid_carries_generation_and_is_written_only_when_changed(
    context: OperatorContext, kube: FakeKubeApi
) -> None:
    body = model_deployment()
    patch = kopf.Patch()
    reconcile(context, body, patch)
    body = _apply(body, patch)
    kube.validate(body)
    status = body["status"]
    assert (status["state"], status["activeColour"], status["activeVersion"]) == (
        "Stable",
        "blue",
        "1",
    )
    assert status["observedGeneration"] == 3
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "Serving"
    assert conditions["Progressing"]["reason"] == "Idle"
    assert all(c["observedGeneration"] == 3 for c in conditions.values())

    again = kopf.Patch()
    reconcile(context, body, again)
    assert "status" not in again


def test_drift_starts_a_rollout_and_the_status_follows(
    context: OperatorContext, kube: FakeKubeApi
) -> None:
    body = model_deployment()
    context.drift.add("critical", utcnow())  # type: ignore[attr-defined]
    patch = kopf.Patch()
    reconcile(context, body, patch)
    body = _apply(body, patch)
    kube.validate(body)
    status = body["status"]
    assert status["state"] == "Retraining"
    assert status["drift"]["severity"] == "critical"
    assert status["candidate"]["jobName"] == kube.of(RAY_JOB)[0]["metadata"]["name"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Progressing"]["status"], conditions["Progressing"]["reason"]) == (
        "True",
        "Retraining",
    )
    assert "submit retraining job" in status["lastDecision"]["actions"][0]


def test_an_invalid_spec_is_a_permanent_error_with_a_condition(
    context: OperatorContext, kube: FakeKubeApi
) -> None:
    body = model_deployment(rollout={"gates": {"alpha": 3}})
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=r"invalid spec: rollout.gates.alpha"):
        reconcile(context, body, patch)
    # The API server would refuse this spec already; the handler's own check is the backstop.
    body = _apply(model_deployment(), patch)
    kube.validate(body)
    (degraded,) = body["status"]["conditions"]
    assert (degraded["type"], degraded["reason"]) == ("Degraded", "InvalidSpec")


def test_approval_without_gitops_is_an_invalid_spec_not_a_failing_round(
    context: OperatorContext, kube: FakeKubeApi
) -> None:
    body = model_deployment(rollout={"requireApproval": True})
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match="requireApproval needs the GitOps runtime"):
        reconcile(context, body, patch)
    body = _apply(body, patch)
    kube.validate(body)
    (degraded,) = body["status"]["conditions"]
    assert (degraded["type"], degraded["reason"]) == ("Degraded", "InvalidSpec")
    assert "spec.gitops.enabled" in degraded["message"]
    # An operator that commits every object's promotions to Git follows the same spec.
    context.gitops = True
    reconcile(context, model_deployment(rollout={"requireApproval": True}), kopf.Patch())


def test_a_runtime_that_cannot_be_built_is_a_temporary_error(context: OperatorContext) -> None:
    def broken(_target: m.Target) -> KubernetesRuntime:
        raise ValueError("GitOps needs a repository: set DRIFTLINE_CONTROLLER_GITOPS_REPO")

    context.runtime_for = broken
    with pytest.raises(kopf.TemporaryError, match="GitOps needs a repository") as error:
        reconcile(context, model_deployment(), kopf.Patch())
    assert error.value.delay == 7


def test_a_store_outage_is_a_temporary_error(context: OperatorContext) -> None:
    # Unreachable, and no retries: the store's retry policy has its own tests.
    context.store = Store("sqlite:////nonexistent/dir/store.db", retries=0)
    with pytest.raises(kopf.TemporaryError) as error:
        reconcile(context, model_deployment(), kopf.Patch())
    assert error.value.delay == 7
    assert "controller round failed: StoreUnavailableError" in str(error.value)


def test_finalizer_stops_jobs_and_records_the_deletion(
    context: OperatorContext, kube: FakeKubeApi, store: Store
) -> None:
    body = model_deployment()
    context.drift.add("critical", utcnow())  # type: ignore[attr-defined]
    reconcile(context, body, kopf.Patch())
    assert len(kube.of(RAY_JOB)) == 1
    finalize(context, body)
    assert kube.of(RAY_JOB) == []
    (event,) = store.controller.audit_events(kind="deleted")
    assert "stopped 1 retraining job" in event.reason


def test_the_registry_has_every_handler_and_the_finalizer(context: OperatorContext) -> None:
    registry = build_registry(context)
    changing = registry._changing.get_all_handlers()
    reasons = {h.reason.value if h.reason else "resume" for h in changing}
    assert reasons == {"create", "update", "resume", "delete"}
    assert all(h.initial for h in changing if h.reason is None)  # resume: on operator start
    (deleted,) = [h for h in changing if h.reason is not None and h.reason.value == "delete"]
    assert deleted.requires_finalizer
    (timer,) = registry._spawning.get_all_handlers()
    assert timer.interval == 7  # type: ignore[attr-defined]
    assert FINALIZER == "driftline.io/finalizer"
