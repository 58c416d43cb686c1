"""What a ModelDeployment asks for: drift policy, retraining, shadow, gates and verification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from driftline.config import Settings
from driftline.rollout_policy import (
    DriftPolicy,
    GatePolicy,
    PolicySection,
    QualityTest,
    RetrainingPolicy,
    RolloutPolicy,
    ShadowPolicy,
    VerificationPolicy,
)

__all__ = [
    "BASELINE_GATE",
    "OFFLINE_GATES",
    "ApprovalNeedsGitOpsError",
    "DriftPolicy",
    "GatePolicy",
    "QualityTest",
    "RetrainingPolicy",
    "RolloutPolicy",
    "RolloutSpec",
    "ShadowPolicy",
    "VerificationPolicy",
    "gitops_enabled",
    "required_gates",
]


class ApprovalNeedsGitOpsError(ValueError):
    """`rollout.requireApproval` where promotions are not committed to Git: no reviewer could
    ever merge one, so the candidate would serve unpromoted and every round would fail."""


class RolloutSpec(PolicySection):
    """Everything `decide` needs to know about what is wanted for one model."""

    model_name: str = Field(min_length=1, max_length=128)
    drift_policy: DriftPolicy = DriftPolicy()
    retraining: RetrainingPolicy = RetrainingPolicy()
    rollout: RolloutPolicy = RolloutPolicy()
    paused: bool = False

    @classmethod
    def from_resource(cls, spec: dict[str, Any], *, gitops: bool = False) -> RolloutSpec:
        """Read a ModelDeployment's `spec` (camelCase, defaults as in the CRD) for an operator
        running with GitOps (`gitops`) or not; ApprovalNeedsGitOpsError as `check_approval`."""
        parsed = cls.model_validate({**spec, "modelName": spec["model"]["name"]})
        parsed.check_approval(
            gitops_enabled(spec, operator_gitops=gitops),
            "set spec.gitops.enabled with spec.gitops.repoUrl (or run the controller with "
            "--runtime gitops), or set spec.rollout.requireApproval to false",
        )
        return parsed

    @classmethod
    def from_settings(cls, settings: Settings, *, gitops: bool = False) -> RolloutSpec:
        """The local runtimes' spec: the settings' policy sections, for a controller that
        commits promotions to Git (`gitops`) or not; ApprovalNeedsGitOpsError as
        `check_approval`."""
        spec = cls(
            model_name=settings.registry.model_name,
            drift_policy=settings.drift_policy,
            retraining=settings.retraining,
            rollout=settings.rollout,
            paused=settings.controller.paused,
        )
        spec.check_approval(
            gitops,
            "unset DRIFTLINE_CONTROLLER_REQUIRE_APPROVAL, or step through GitOps: "
            "`driftline controller step --runtime gitops` with DRIFTLINE_CONTROLLER_GITOPS_REPO",
        )
        return spec

    def check_approval(self, gitops: bool, remedy: str) -> None:
        """Refuse approval without GitOps (ApprovalNeedsGitOpsError); `remedy` says what to do."""
        if self.rollout.require_approval and not gitops:
            raise ApprovalNeedsGitOpsError(
                f"rollout.requireApproval needs the GitOps runtime (a reviewer approves by "
                f"merging a promotion branch): {remedy}"
            )


def gitops_enabled(spec: Mapping[str, Any], *, operator_gitops: bool) -> bool:
    """Whether a ModelDeployment's promotions are committed to Git: the operator runs with
    GitOps for every object, or its `spec.gitops.enabled` asks for it."""
    return operator_gitops or bool((spec.get("gitops") or {}).get("enabled"))


# Offline gates every candidate must pass before it may shadow; names are what the audit shows.
OFFLINE_GATES: tuple[str, ...] = ("artifact", "smoke", "onnx_parity", "latency", "beats_champion")
BASELINE_GATE = "beats_baselines"


def required_gates(policy: GatePolicy) -> tuple[str, ...]:
    """Offline gates a candidate must pass under `policy`."""
    return OFFLINE_GATES + ((BASELINE_GATE,) if policy.require_baselines else ())
