"""What a ModelDeployment asks for: drift policy, retraining, shadow, gates and verification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from driftline.config import Settings
from driftline.contracts import TRAINING_ENTRYPOINT, Severity, SeverityField

QualityTest = Literal["diebold-mariano", "paired-t", "wilcoxon"]


class _Section(BaseModel):
    # camelCase aliases read the custom resource's spec as written; snake_case reads settings.
    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )


class DriftPolicy(_Section):
    """When drift starts a retraining."""

    retrain_at: SeverityField = Severity.HIGH
    sustained_reports: int = Field(default=2, ge=1)
    cooldown_seconds: float = Field(default=3600, ge=0)

    @field_validator("retrain_at")
    @classmethod
    def _at_least_medium(cls, value: Severity) -> Severity:
        # Retraining on low drift would retrain on noise: the CRD allows medium and above.
        if value < Severity.MEDIUM:
            raise ValueError("retrainAt must be medium, high or critical")
        return value


class RetrainingPolicy(_Section):
    """The retraining job: how long it may run and how often it is retried."""

    entrypoint: str = TRAINING_ENTRYPOINT
    trials: int = Field(default=20, ge=1)
    timeout_seconds: float = Field(default=3600, gt=0)
    # A job the cluster cannot place fails fast with the reason, not at the timeout above.
    schedule_timeout_seconds: float = Field(default=60, gt=0)
    max_attempts: int = Field(default=2, ge=1)
    image: str | None = None
    ray_cluster_spec: dict[str, Any] | None = None


class ShadowPolicy(_Section):
    """Shadow scoring of mirrored traffic before the switch."""

    min_paired_outcomes: int = Field(default=30, ge=1)
    max_duration_seconds: float = Field(default=86400, gt=0)


class GatePolicy(_Section):
    """Offline gates and the statistical test shared with the shadow and live checks."""

    test: QualityTest = "diebold-mariano"
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    require_baselines: bool = True
    onnx_tolerance: float = Field(default=1e-5, ge=0)
    latency_budget_ms: float = Field(default=50, ge=0)
    window_bars: int = Field(default=250, ge=20, description="Bars in the latest window.")
    timeout_seconds: float = Field(default=900, gt=0)


class VerificationPolicy(_Section):
    """The post-switch window that rolls back on regression."""

    window_seconds: float = Field(default=600, gt=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=250, ge=0)
    min_requests: int = Field(default=20, ge=0)
    # Past the window, too little traffic is not a pass: verification waits for `min_requests`
    # until `max_seconds`, then rolls back as unverified.
    max_seconds: float = Field(default=1800, gt=0)


class RolloutPolicy(_Section):
    """Shadow, gates, deployment timeout and verification."""

    strategy: Literal["BlueGreen"] = "BlueGreen"
    deploy_timeout_seconds: float = Field(default=900, gt=0)
    # Requests routed to a colour before it left routing end within the serving deadline;
    # retiring it sooner would cut them off.
    drain_seconds: float = Field(default=15, ge=0)
    # A reviewer merges the promotion commit (pushed to a branch of its own) before it counts.
    require_approval: bool = False
    shadow: ShadowPolicy = ShadowPolicy()
    gates: GatePolicy = GatePolicy()
    verification: VerificationPolicy = VerificationPolicy()


class RolloutSpec(_Section):
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
        """The local runtimes' spec: the controller section of the settings."""
        return cls(
            model_name=settings.model_name,
            drift_policy=DriftPolicy(
                retrain_at=settings.controller_retrain_at,
                sustained_reports=settings.controller_sustained_reports,
                cooldown_seconds=settings.controller_cooldown_s,
            ),
            retraining=RetrainingPolicy(
                trials=settings.controller_retrain_trials,
                timeout_seconds=settings.controller_retrain_timeout_s,
                max_attempts=settings.controller_retrain_attempts,
            ),
            rollout=RolloutPolicy(
                deploy_timeout_seconds=settings.controller_deploy_timeout_s,
                drain_seconds=settings.controller_drain_s,
                require_approval=settings.controller_require_approval,
                shadow=ShadowPolicy(
                    min_paired_outcomes=settings.controller_shadow_min_pairs,
                    max_duration_seconds=settings.controller_shadow_max_s,
                ),
                gates=GatePolicy(
                    test=settings.controller_gate_test,
                    alpha=settings.controller_gate_alpha,
                    require_baselines=settings.controller_gate_baselines,
                    latency_budget_ms=settings.controller_latency_budget_ms,
                    window_bars=settings.controller_gate_window_bars,
                ),
                verification=VerificationPolicy(
                    window_seconds=settings.controller_verify_window_s,
                    max_error_rate=settings.controller_verify_max_error_rate,
                    max_p99_latency_ms=settings.controller_verify_max_p99_ms,
                    min_requests=settings.controller_verify_min_requests,
                    max_seconds=settings.controller_verify_max_s,
                ),
            ),
            paused=settings.controller_paused,
        )


# Offline gates every candidate must pass before it may shadow; names are what the audit shows.
OFFLINE_GATES: tuple[str, ...] = ("artifact", "smoke", "onnx_parity", "latency", "beats_champion")
BASELINE_GATE = "beats_baselines"


def required_gates(policy: GatePolicy) -> tuple[str, ...]:
    """Offline gates a candidate must pass under `policy`."""
    return OFFLINE_GATES + ((BASELINE_GATE,) if policy.require_baselines else ())
