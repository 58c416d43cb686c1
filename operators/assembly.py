"""Builds controllers and the Kubernetes operator context from Settings (the CLI's wiring)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from driftline.config import Settings
from driftline.contracts import forwarded_env
from driftline.store import Store
from operators.controller import Controller, default_holder
from operators.gate_runner import OfflineGates
from operators.gitops import GitOpsRepository
from operators.health import ScrapeHealth, endpoint_urls
from operators.kube.manifests import SERVICE_PORT_NAME, Target, dns_name, service_port
from operators.metrics import ControllerMetrics
from operators.observe import Observer
from operators.registry_records import RegistryRecords
from operators.runtimes.base import Runtime, RuntimeOperationError
from operators.runtimes.gitops import GitOpsRuntime
from operators.runtimes.local import LocalRayRuntime
from operators.sources import StoreDriftSource, StorePairedLosses
from operators.spec import RolloutSpec, gitops_enabled

if TYPE_CHECKING:
    # The in-cluster parts import the Kubernetes client and kopf (about 35 MiB); the local
    # controller of `driftline up` runs without them.
    from operators.kube.api import Body, KubeApi
    from operators.kube.handlers import OperatorContext


def dashboard_url(settings: Settings) -> str:
    """The Ray dashboard the local runtime talks to."""
    return (
        settings.controller.dashboard_url
        or os.environ.get("RAY_DASHBOARD_ADDRESS")
        or f"http://127.0.0.1:{settings.ray.dashboard_port}"
    )


def local_controller(
    settings: Settings,
    store: Store,
    *,
    metrics: ControllerMetrics | None = None,
    gitops: bool = False,
) -> Controller:
    """A controller for the configured model on the local Ray runtime (optionally via GitOps)."""
    spec = RolloutSpec.from_settings(settings, gitops=gitops)
    records = RegistryRecords(settings)
    runtime: Runtime = LocalRayRuntime(
        settings,
        dashboard_url(settings),
        settings.controller.serve_url,
        records,
        records,
        job_env=forwarded_env(settings),
        serve_env=forwarded_env(settings),
        outcome_hook=settings.controller.outcome_hook,
    )
    if gitops:
        runtime = GitOpsRuntime(runtime, gitops_repository(settings))
    return Controller(
        spec,
        store,
        runtime,
        Observer(spec, store, runtime, *sources(store)),
        OfflineGates(settings, spec.rollout.gates),
        metrics=metrics or ControllerMetrics(),
        holder=default_holder(),
        lease_s=settings.controller.lease_s,
    )


def sources(store: Store) -> tuple[StoreDriftSource, StorePairedLosses]:
    """Drift reports and paired losses from the store (tables of migrations 0002 and 0001)."""
    return (
        StoreDriftSource(store.drift),
        StorePairedLosses(store.controller),
    )


def gitops_repository(
    settings: Settings,
    *,
    remote: str | None = None,
    branch: str | None = None,
    values: str | None = None,
    cooldown_s: float | None = None,
    require_approval: bool | None = None,
) -> GitOpsRepository:
    """The environment repository promotions are committed to."""
    url = remote or settings.controller.gitops_repo
    if not url:
        raise ValueError("GitOps needs a repository: set DRIFTLINE_CONTROLLER_GITOPS_REPO")
    return GitOpsRepository(
        remote=url,
        branch=branch or settings.controller.gitops_branch,
        values_path=values or settings.controller.gitops_values,
        workdir=settings.home / "gitops" / dns_name(Path(url).name or "repo"),
        model_name=settings.registry.model_name,
        cooldown_s=settings.drift_policy.cooldown_seconds if cooldown_s is None else cooldown_s,
        push_attempts=settings.controller.gitops_push_attempts,
        identity=default_holder(),
        require_approval=(
            settings.rollout.require_approval if require_approval is None else require_approval
        ),
    )


def pod_targets(api: KubeApi, namespace: str, service: str) -> Callable[[], list[str]]:
    """Every ready pod's `/metrics` behind `service`, read from its EndpointSlices at each look;
    the Service's own URL on its port named `http` when no endpoint has one listed (e.g. a
    Service without a selector). RuntimeOperationError naming the Service when it has no such
    port or does not exist: the controller never guesses a number."""

    from operators.kube.api import ENDPOINT_SLICE, SERVICE  # noqa: PLC0415

    def targets() -> list[str]:
        selector = f"kubernetes.io/service-name={service}"
        urls = endpoint_urls(api.select(ENDPOINT_SLICE, namespace, selector), SERVICE_PORT_NAME)
        if urls:
            return urls
        port = _named_port(api.get(SERVICE, namespace, service), f"{namespace}/{service}")
        return [f"http://{service}.{namespace}.svc:{port}/metrics"]

    return targets


def _named_port(live: Body | None, where: str) -> int:
    if live is None:
        raise RuntimeOperationError(
            f"Service {where} does not exist: the controller reads serving's metrics through it "
            "(spec.serving.activeServiceName)"
        )
    port = service_port(live)
    if port is None:
        raise RuntimeOperationError(
            f"Service {where} has no port named {SERVICE_PORT_NAME!r}: the controller finds "
            "serving's metrics by that name, never by a number"
        )
    return port


def operator_context(
    settings: Settings, store: Store, api: KubeApi, *, gitops: bool
) -> OperatorContext:
    """The kopf handlers' context: a Kubernetes runtime per ModelDeployment, GitOps when asked."""
    from operators.kube.handlers import OperatorContext  # noqa: PLC0415
    from operators.runtimes.kubernetes import KubernetesRuntime  # noqa: PLC0415

    def records_for(target: Target) -> tuple[Settings, RegistryRecords]:
        tracking = (
            target.section("model").get("trackingUri") or settings.registry.mlflow_tracking_uri
        )
        scoped = settings.updated(
            {"registry": {"model_name": target.model_name, "mlflow_tracking_uri": tracking}}
        )
        return scoped, RegistryRecords(scoped)

    def runtime_for(target: Target) -> Runtime:
        scoped, records = records_for(target)
        serving = target.section("serving")
        service = serving.get("activeServiceName") or dns_name(target.name, "active")
        key = scoped.controller.api_key
        health = ScrapeHealth(
            # By port name at each look: the chart's Service listens on 80, its pods elsewhere.
            pod_targets(api, target.namespace, service),
            target.model_name,
            api_key=None if key is None else key.get_secret_value(),
        )
        runtime: Runtime = KubernetesRuntime(
            api, target, records, records, health, extra_args=scoped.controller.retrain_args
        )
        spec_gitops = target.section("gitops")
        if gitops_enabled(target.spec, operator_gitops=gitops):
            runtime = GitOpsRuntime(
                runtime,
                gitops_repository(
                    scoped,
                    remote=spec_gitops.get("repoUrl"),
                    branch=spec_gitops.get("branch"),
                    values=spec_gitops.get("valuesPath"),
                    cooldown_s=float(target.section("driftPolicy").get("cooldownSeconds", 3600)),
                    require_approval=bool(target.section("rollout").get("requireApproval")),
                ),
            )
        return runtime

    def gates_for(spec: RolloutSpec, target: Target) -> OfflineGates:
        return OfflineGates(records_for(target)[0], spec.rollout.gates)

    drift, losses = sources(store)
    return OperatorContext(
        settings=settings,
        gitops=gitops,
        store=store,
        runtime_for=runtime_for,
        gates_for=gates_for,
        drift=drift,
        losses=losses,
        holder=default_holder(),
    )
