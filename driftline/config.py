"""One settings object for every Driftline component, read from ``DRIFTLINE_*`` variables."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Driftline's configuration; every component takes it as an argument.

    Values come from ``DRIFTLINE_<FIELD>`` environment variables, then an optional
    ``.env``-style file named by ``DRIFTLINE_ENV_FILE``; defaults need no setup.
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_",
        env_file=os.environ.get("DRIFTLINE_ENV_FILE"),
        extra="ignore",
        frozen=True,
    )

    # --- core -----------------------------------------------------------------------------
    home: Path = Field(
        default=Path(".driftline"),
        description="Directory for local state: SQLite store, MLflow store, Ray logs, caches.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; defaults to SQLite under `home`.",
    )
    db_pool_size: int = Field(default=5, ge=1, description="PostgreSQL connection pool size.")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        # MLflow's own variable wins so that stock MLflow tooling and Driftline agree.
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking and registry URI; defaults to SQLite under `home`.",
    )
    model_name: str = Field(default="market-ensemble", description="Registered model name.")
    symbol: str = Field(default="SPX", description="Symbol the default data set describes.")
    data_path: Path | None = Field(
        default=None,
        description="OHLCV CSV or Parquet file; unset means the S&P 500 data `arch` ships.",
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    log_json: bool = Field(default=True, description="Emit JSON log lines.")

    # --- modelling ------------------------------------------------------------------------
    horizon: int = Field(default=1, ge=1, le=20, description="Target horizon in bars.")
    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=0.5, description="Final share of rows that tuning never sees."
    )
    cv_splits: int = Field(default=4, ge=2, le=20, description="Walk-forward folds.")
    max_gap_days: int = Field(
        default=14, ge=1, description="Largest calendar gap between bars before data is refused."
    )

    # --- ray --------------------------------------------------------------------------------
    ray_address: str | None = Field(
        default=None,
        validation_alias="RAY_ADDRESS",
        description="Existing Ray cluster; unset starts a local head node.",
    )
    ray_num_cpus: float = Field(default=2, gt=0, description="CPUs a local head node offers.")
    ray_dashboard_port: int = Field(default=8265, description="Local head's dashboard/Jobs port.")

    # --- controller (operators/) -------------------------------------------------------------
    controller_host: str = Field(
        default="127.0.0.1",
        description="Address the controller's /metrics, /healthz, /readyz bind (0.0.0.0 in pods).",
    )
    controller_port: int = Field(default=8081, ge=0, le=65535, description="Controller HTTP port.")
    controller_interval_s: float = Field(
        default=15.0, gt=0, description="Seconds between observe-decide-act rounds."
    )
    controller_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="Store lease a local controller holds; others wait it out.",
    )
    controller_paused: bool = Field(
        default=False, description="Observe and report, act on nothing."
    )
    controller_retrain_at: Literal["medium", "high", "critical"] = Field(
        default="high", description="Drift severity that starts a retraining."
    )
    controller_sustained_reports: int = Field(
        default=2, ge=1, description="Consecutive drift reports at or above it before acting."
    )
    controller_cooldown_s: float = Field(
        default=3600, ge=0, description="Minimum seconds from the end of a rollout to the next."
    )
    controller_retrain_trials: int = Field(
        default=20, ge=1, description="Tuning trials per member."
    )
    controller_retrain_timeout_s: float = Field(
        default=3600, gt=0, description="A retraining job running longer is stopped and failed."
    )
    controller_retrain_attempts: int = Field(default=2, ge=1, description="Attempts per rollout.")
    controller_retrain_args: str = Field(
        default="", description="Extra arguments for the training job (e.g. `--members rf,xgb`)."
    )
    controller_deploy_timeout_s: float = Field(
        default=900, gt=0, description="A candidate colour not ready by then fails the rollout."
    )
    controller_shadow_min_pairs: int = Field(
        default=30, ge=1, description="Paired outcomes the shadow quality gate needs."
    )
    controller_shadow_max_s: float = Field(
        default=86400, gt=0, description="Shadow period after which too few pairs reject."
    )
    controller_gate_test: Literal["diebold-mariano", "paired-t", "wilcoxon"] = Field(
        default="diebold-mariano", description="Test on paired losses used by every quality gate."
    )
    controller_gate_alpha: float = Field(default=0.05, gt=0, le=0.5, description="Its level.")
    controller_gate_baselines: bool = Field(
        default=True, description="Require the candidate to beat the naive baselines."
    )
    controller_gate_window_bars: int = Field(
        default=250, ge=20, description="Bars in the latest walk-forward window the gates score."
    )
    controller_latency_budget_ms: float = Field(
        default=50, ge=0, description="p99 budget for one-row in-process ensemble inference."
    )
    controller_verify_window_s: float = Field(
        default=600, gt=0, description="Post-switch verification window."
    )
    controller_verify_max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Error rate that rolls back during verification."
    )
    controller_verify_max_p99_ms: float = Field(
        default=250, ge=0, description="p99 latency (ms) that rolls back during verification."
    )
    controller_verify_min_requests: int = Field(
        default=20, ge=0, description="Requests needed before error rate and latency are judged."
    )
    controller_gitops_repo: str | None = Field(
        default=None, description="GitOps repository URL or path the gitops runtime commits to."
    )
    controller_gitops_branch: str = Field(default="main", description="Branch it pushes to.")
    controller_gitops_values: str = Field(
        default="gitops/environments/dev/values.yaml",
        description="Values file whose `model.version` a promotion edits.",
    )
    controller_gitops_push_attempts: int = Field(default=4, ge=1, description="Push retries.")
    controller_dashboard_url: str | None = Field(
        default=None,
        description="Ray dashboard (Jobs and Serve REST APIs) of the local runtime; "
        "unset: RAY_DASHBOARD_ADDRESS, else 127.0.0.1:`ray_dashboard_port`.",
    )
    controller_serve_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Serving ingress the local runtime scrapes for /metrics during verification.",
    )
    controller_outcome_hook: str | None = Field(
        default=None, description="Ingress `outcome_hook` arg when the controller deploys it first."
    )
    controller_namespace: str = Field(
        default="default", description="Namespace the Kubernetes runtime watches (empty: all)."
    )
    controller_lease_name: str = Field(
        default="driftline-controller", description="Kubernetes Lease used for leader election."
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Ray jobs and Serve replicas run in other working directories; paths must not move.
        return value.expanduser().resolve()

    @cached_property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL, defaulting to SQLite under `home`."""
        return self.database_url or f"sqlite:///{self.home / 'driftline.db'}"

    @cached_property
    def tracking_uri(self) -> str:
        """MLflow tracking URI, defaulting to SQLite under `home`."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @cached_property
    def artifact_root(self) -> Path:
        """Where a local MLflow store keeps artifacts."""
        return self.home / "mlartifacts"

    def ensure_home(self) -> Path:
        """Create `home` if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
