"""The rollout policy with its one set of defaults: settings, the ModelDeployment CRD and the chart.

Field names are snake_case for settings and camelCase (the alias) for the custom resource's spec.
tests/driftline/test_rollout_policy.py holds the CRD's and the chart's defaults to these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from driftline.contracts import Severity, SeverityField

QualityTest = Literal["diebold-mariano", "paired-t", "wilcoxon"]


class PolicySection(BaseModel):
    """A part of the policy: frozen, read by field name (settings) or camelCase alias (the CRD)."""

    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore"
    )


class DriftPolicy(PolicySection):
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


class RetrainingPolicy(PolicySection):
    """The retraining job: its search size, how long it may run and how often it is retried."""

    trials: int = Field(default=20, ge=1)
    timeout_seconds: float = Field(default=3600, gt=0)
    # A job the cluster cannot place fails fast with the reason, not at the timeout above.
    schedule_timeout_seconds: float = Field(default=60, gt=0)
    # Before that, on Kubernetes, the job's own Ray cluster starts: node scale-up and image pulls
    # take minutes, so a cold start has its own, longer bound.
    start_timeout_seconds: float = Field(default=600, gt=0)
    max_attempts: int = Field(default=2, ge=1)


class ShadowPolicy(PolicySection):
    """Shadow scoring of mirrored traffic before the switch."""

    min_paired_outcomes: int = Field(default=30, ge=1)
    max_duration_seconds: float = Field(default=86400, gt=0)


class GatePolicy(PolicySection):
    """Offline gates and the statistical test shared with the shadow and live checks."""

    test: QualityTest = "diebold-mariano"
    alpha: float = Field(default=0.05, gt=0, le=0.5)
    require_baselines: bool = True
    onnx_tolerance: float = Field(default=1e-5, ge=0)
    latency_budget_ms: float = Field(default=50, ge=0)
    window_bars: int = Field(default=250, ge=20, description="Bars in the latest window.")
    timeout_seconds: float = Field(default=900, gt=0)


class VerificationPolicy(PolicySection):
    """The post-switch window that rolls back on regression."""

    window_seconds: float = Field(default=600, gt=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=250, ge=0)
    min_requests: int = Field(default=20, ge=0)
    # Past the window, too little traffic is not a pass: verification waits for `min_requests`
    # until `max_seconds`, then rolls back as unverified.
    max_seconds: float = Field(default=1800, gt=0)


class RolloutPolicy(PolicySection):
    """Shadow, gates, deployment timeout, drain and verification."""

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
