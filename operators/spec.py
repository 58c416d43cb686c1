"""What a ModelDeployment asks for: drift policy, retraining, shadow, gates and verification."""

from __future__ import annotations

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
    "DriftPolicy",
    "GatePolicy",
    "QualityTest",
    "RetrainingPolicy",
    "RolloutPolicy",
    "RolloutSpec",
    "ShadowPolicy",
    "VerificationPolicy",
    "required_gates",
]


class RolloutSpec(PolicySection):
    """Everything `decide` needs to know about what is wanted for one model."""

    model_name: str = Field(min_length=1, max_length=128)
    drift_policy: DriftPolicy = DriftPolicy()
    retraining: RetrainingPolicy = RetrainingPolicy()
    rollout: RolloutPolicy = RolloutPolicy()
    paused: bool = False

    @classmethod
    def from_resource(cls, spec: dict[str, Any]) -> RolloutSpec:
        """Read a ModelDeployment's `spec` (camelCase, defaults as in the CRD)."""
        return cls.model_validate({**spec, "modelName": spec["model"]["name"]})

    @classmethod
    def from_settings(cls, settings: Settings) -> RolloutSpec:
        """The local runtimes' spec: the settings' policy sections."""
        return cls(
            model_name=settings.registry.model_name,
            drift_policy=settings.drift_policy,
            retraining=settings.retraining,
            rollout=settings.rollout,
            paused=settings.controller.paused,
        )


# Offline gates every candidate must pass before it may shadow; names are what the audit shows.
OFFLINE_GATES: tuple[str, ...] = ("artifact", "smoke", "onnx_parity", "latency", "beats_champion")
BASELINE_GATE = "beats_baselines"


def required_gates(policy: GatePolicy) -> tuple[str, ...]:
    """Offline gates a candidate must pass under `policy`."""
    return OFFLINE_GATES + ((BASELINE_GATE,) if policy.require_baselines else ())
