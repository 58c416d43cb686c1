"""kopf handlers for ModelDeployment: thin wrappers that run one controller round per object.

A timer observes every `controller.interval_s` (level-triggered); create/update/resume run a round
at once. The decision lives in `operators.decide`; here are only status, errors and cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from driftline.config import Settings
from driftline.store import AuditEvent, Store, utcnow
from operators.controller import Controller, GateRunner, StepReport
from operators.kube.api import MODEL_DEPLOYMENT
from operators.kube.manifests import Target
from operators.kube.status import desired_status, invalid_spec_conditions, status_patch
from operators.metrics import ControllerMetrics
from operators.observe import DriftSource, Observer, PairedLosses, one_line
from operators.runtimes.base import Runtime
from operators.spec import ApprovalNeedsGitOpsError, RolloutSpec

log = logging.getLogger(__name__)
FINALIZER = "driftline.io/finalizer"
RESOURCE = (MODEL_DEPLOYMENT.group, MODEL_DEPLOYMENT.version, MODEL_DEPLOYMENT.plural)


@dataclass
class OperatorContext:
    """Everything the handlers share: settings, store, and how to build each object's runtime."""

    settings: Settings
    store: Store
    runtime_for: Callable[[Target], Runtime]
    gates_for: Callable[[RolloutSpec, Target], GateRunner]
    drift: DriftSource
    losses: PairedLosses
    holder: str
    # The operator commits every object's promotions to Git (`--runtime gitops`).
    gitops: bool = False
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _faults: dict[str, dict[str, str]] = field(default_factory=dict)

    def controller(self, spec: RolloutSpec, target: Target) -> Controller:
        """A controller for this object as its spec stands now."""
        runtime = self.runtime_for(target)
        return Controller(
            spec,
            self.store,
            runtime,
            Observer(spec, self.store, runtime, self.drift, self.losses),
            self.gates_for(spec, target),
            metrics=self.metrics,
            holder=self.holder,
            lease_s=self.settings.controller.lease_s,
            known_faults=self._faults.setdefault(target.uid, {}),
        )

    def lock(self, uid: str) -> threading.Lock:
        """Timer and change handlers of one object never run a round at the same time."""
        return self._locks.setdefault(uid, threading.Lock())


def reconcile(context: OperatorContext, body: Mapping[str, Any], patch: kopf.Patch) -> StepReport:
    """One controller round for the object in `body`; the status patch goes into `patch`."""
    meta, spec = body["metadata"], dict(body.get("spec") or {})
    status: Mapping[str, Any] = body.get("status") or {}
    generation = int(meta.get("generation", 1))
    try:
        rollout_spec = RolloutSpec.from_resource(spec, gitops=context.gitops)
    except (ValidationError, KeyError, TypeError, ApprovalNeedsGitOpsError) as error:
        message = f"invalid spec: {_validation_line(error)}"
        conditions = invalid_spec_conditions(
            message, generation, list(status.get("conditions") or []), utcnow()
        )
        patch.status.update(status_patch(status, conditions))
        raise kopf.PermanentError(message) from None
    target = Target(meta["name"], meta["namespace"], meta["uid"], spec)
    with context.lock(target.uid):
        try:
            # Building the runtime may fail too (e.g. GitOps without a repository).
            report = context.controller(rollout_spec, target).step()
        except Exception as error:
            raise kopf.TemporaryError(
                f"controller round failed: {one_line(error)}",
                delay=context.settings.controller.interval_s,
            ) from None
    if report.decision is not None and report.world is not None:
        desired = desired_status(target, generation, report.decision, report.world, status)
        changes = status_patch(status, desired)
        if changes:
            patch.status.update(changes)
    return report


def finalize(context: OperatorContext, body: Mapping[str, Any]) -> None:
    """Before the object goes: stop its retraining jobs, hand back the lease, audit it."""
    meta, spec = body["metadata"], dict(body.get("spec") or {})
    target = Target(meta["name"], meta["namespace"], meta["uid"], spec)
    runtime = context.runtime_for(target)
    try:
        jobs = runtime.running_jobs()
        for job_id in jobs:
            runtime.stop_retraining(job_id)
        context.store.controller.release_controller_lease(target.model_name, context.holder)
        context.store.controller.record_audit(
            AuditEvent(
                model_name=target.model_name,
                kind="deleted",
                reason=f"ModelDeployment {target.namespace}/{target.name} deleted; "
                f"stopped {len(jobs)} retraining job(s)",
            )
        )
    except Exception as error:
        raise kopf.TemporaryError(f"cleanup failed: {one_line(error)}", delay=10) from None


def build_registry(context: OperatorContext) -> kopf.OperatorRegistry:
    """A registry with this context's handlers (not kopf's global one: tests build several)."""
    registry = kopf.OperatorRegistry()
    interval = context.settings.controller.interval_s

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        # Our CRD's status schema has no room for kopf's bookkeeping: keep it in annotations.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="driftline.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="driftline.io"
        )
        settings.posting.level = logging.WARNING
        settings.peering.standalone = True  # leadership comes from the Lease, not kopf peering

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    def changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile(context, body, patch)

    @kopf.timer(*RESOURCE, interval=interval, initial_delay=interval, registry=registry)
    def observe(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile(context, body, patch)

    @kopf.on.delete(*RESOURCE, registry=registry)
    def deleted(body: kopf.Body, **_: Any) -> None:
        finalize(context, body)

    return registry


def run_operator(context: OperatorContext, stop: threading.Event) -> None:
    """Run kopf in this thread until `stop` is set (called once this replica leads)."""
    namespace = context.settings.controller.namespace
    scope: dict[str, Any] = {"namespaces": [namespace]} if namespace else {"clusterwide": True}
    asyncio.run(
        kopf.operator(registry=build_registry(context), standalone=True, stop_flag=stop, **scope)
    )


def _validation_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}"
    return one_line(error)
