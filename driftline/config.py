"""One settings object for every Driftline component, read from ``DRIFTLINE_*`` variables."""

from __future__ import annotations

import os
from datetime import date
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

    # --- drift (owner: drift) -------------------------------------------------------------
    drift_window: int = Field(
        default=250, ge=30, description="Live feature rows per drift window (the null's length)."
    )
    drift_min_rows: int = Field(
        default=30, ge=10, description="Fewest rows any detector accepts in a window."
    )
    drift_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between drift monitor runs."
    )
    drift_alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="False discovery rate / test level of detectors."
    )
    drift_bins: int = Field(default=10, ge=2, le=100, description="Frozen PSI/JS bins per feature.")
    drift_null_windows: int = Field(
        default=200, ge=20, description="Most reference blocks the empirical null slides through."
    )
    drift_prefer_alibi: bool = Field(
        default=False,
        description="Use alibi-detect's KS (the optional `alibi` extra, BSL 1.1) over scipy's.",
    )
    drift_performance_window: int = Field(
        default=250, ge=30, description="Most recent outcomes the performance detectors use."
    )
    drift_min_outcomes: int = Field(
        default=30, ge=10, description="Outcomes needed before performance drift is judged."
    )
    drift_alert_min_severity: Literal["none", "low", "medium", "high", "critical"] = Field(
        default="medium", description="Lowest severity that raises an alert (none..critical)."
    )
    drift_alert_cooldown_s: float = Field(
        default=3600.0, ge=0, description="An alert of the same severity is not repeated sooner."
    )
    drift_outcome_late_s: float = Field(
        default=3 * 86400.0,
        gt=0,
        description="An outcome stored this long after its prediction is counted as late.",
    )
    drift_metrics_host: str = Field(
        default="127.0.0.1", description="Address `driftline drift monitor` serves /metrics on."
    )
    drift_metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Port of the monitor's /metrics (0: none)."
    )
    drift_store_retries: int = Field(
        default=5, ge=0, description="Retries of a store call after a lost connection."
    )
    drift_store_backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles on each further retry."
    )

    # --- ray --------------------------------------------------------------------------------
    ray_address: str | None = Field(
        default=None,
        validation_alias="RAY_ADDRESS",
        description="Existing Ray cluster; unset starts a local head node.",
    )
    ray_num_cpus: float = Field(default=2, gt=0, description="CPUs a local head node offers.")
    ray_dashboard_port: int = Field(default=8265, description="Local head's dashboard/Jobs port.")

    # --- training and evaluation (training branch) ----------------------------------------
    train_trials: int = Field(default=8, ge=1, description="Ray Tune trials per member.")
    train_members: str = Field(
        default="rf,xgb",
        description="Comma-separated ensemble members (known: rf, xgb, hgb).",
    )
    train_seed: int = Field(default=42, description="Seed for search, members and resampling.")
    train_trial_cpus: float | None = Field(
        default=None,
        gt=0,
        description="CPUs one tuning trial or member fit reserves; unset sizes them from the "
        "cluster's free CPUs (at most one), so retraining fits beside serving.",
    )
    train_min_rows: int = Field(
        default=500, ge=100, description="Fewest labelled feature rows a training run accepts."
    )
    train_tune_storage: str | None = Field(
        default=None,
        description="Ray Tune storage path (shared storage on multi-node clusters); "
        "defaults to `home`/tune.",
    )
    reference_rows: int = Field(
        default=1000, ge=50, description="Rows in a version's contiguous reference sample."
    )
    cost_bps: float = Field(
        default=2.0, ge=0, description="Trading cost per unit of position change, basis points."
    )
    periods_per_year: int = Field(default=252, ge=1, description="Bars per year, to annualise.")
    significance_level: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the Diebold-Mariano baseline tests."
    )
    onnx_tolerance: float = Field(
        default=1e-5, gt=0, description="Largest ONNX-versus-native difference registration allows."
    )

    # --- serving (owner: serving) ---------------------------------------------------------
    model_version: str = Field(
        default="champion",
        description="Version or alias a single-colour server (InferenceService predictor) serves.",
    )
    colour: Literal["blue", "green"] = Field(
        default="blue", description="Colour label of a single-colour server."
    )
    serving_port: int = Field(
        default=8000, ge=1, le=65535, description="HTTP port of the InferenceService predictor."
    )
    serve_host: str = Field(default="127.0.0.1", description="Address `driftline serve` binds.")
    serve_port: int = Field(default=8080, ge=1, le=65535, description="HTTP port of the ingress.")
    stream_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between WebSocket stream predictions."
    )
    stream_start: date | None = Field(
        default=None,
        description="First bar (ISO date) the replay stream sends, and where it wraps back to; "
        "unset: the first bar with a full feature window.",
    )
    stream_client_queue: int = Field(
        default=8, ge=1, description="Messages buffered per stream client before dropping."
    )
    serve_max_rows: int = Field(default=4096, ge=1, description="Most rows one request may carry.")
    serve_max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    serve_request_timeout_s: float = Field(
        default=10.0, gt=0, description="End-to-end deadline of one request."
    )
    serve_max_ongoing_requests: int = Field(
        default=64, ge=1, description="Requests one replica works on at once."
    )
    serve_max_queued_requests: int = Field(
        default=128, ge=0, description="Requests waiting per deployment before a 503."
    )
    serve_retry_after_s: int = Field(
        default=1, ge=0, description="`Retry-After` seconds on a 503 (queues full)."
    )
    serve_min_replicas: int = Field(default=1, ge=1, description="Autoscaling lower bound.")
    serve_max_replicas: int = Field(default=2, ge=1, description="Autoscaling upper bound.")
    serve_target_ongoing_requests: float = Field(
        default=16, gt=0, description="Autoscaling target of ongoing requests per replica."
    )
    serve_ingress_cpus: float = Field(default=0.2, ge=0, description="CPUs per ingress replica.")
    serve_member_cpus: float = Field(default=0.2, ge=0, description="CPUs per member replica.")
    serve_light_cpus: float = Field(
        default=0.05, ge=0, description="CPUs per combiner or feature replica."
    )
    serve_batch_size: int = Field(
        default=64, ge=1, description="Most requests merged into one batched member call."
    )
    serve_batch_wait_s: float = Field(
        default=0.0,
        ge=0,
        description="How long a Serve-side batch (member and combiner handle calls) waits to "
        "fill; 0 adds no latency. The ingress never waits: it batches what arrives meanwhile.",
    )
    serve_member_transport: Literal["socket", "serve"] = Field(
        default="socket",
        description="How callers on a member's node reach it: `socket` (a Unix socket per "
        "replica, the Serve handle when none answers) or `serve` (always the Serve handle).",
    )
    serve_member_target_busy: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Autoscaling target of a member replica's busy share (time predicting).",
    )
    serve_access_log: bool = Field(
        default=False,
        description="Serve's access log line per request in every replica (off: requests are "
        "counted in /metrics and errors logged with their correlation id).",
    )
    serve_prefer_onnx: bool = Field(
        default=True, description="Run members through ONNX Runtime when an artifact exists."
    )
    serve_throughput_optimized: bool = Field(
        default=True,
        description="Start Ray with RAY_SERVE_THROUGHPUT_OPTIMIZED (direct ingress and more).",
    )
    serve_write_batch: int = Field(
        default=2048,
        ge=1,
        description="Prediction rows per store write (a request carries one or more rows).",
    )
    serve_write_interval_s: float = Field(
        default=0.5, gt=0, description="Longest a prediction waits before it is written."
    )
    serve_write_buffer: int = Field(
        default=100_000,
        ge=1,
        description="Prediction rows held in memory (while the store is down, say); past it "
        "the oldest requests are dropped and counted.",
    )
    serve_follow_interval_s: float = Field(
        default=5.0, gt=0, description="How often `driftline serve` checks the champion alias."
    )

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
    controller_drain_s: float = Field(
        default=15,
        ge=0,
        description="A colour out of routing stays deployed this long before it is retired, so "
        "requests in flight finish (keep it above serve_request_timeout_s).",
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
        default=True,
        description="Require the candidate to lose to no naive baseline the champion beats.",
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
    controller_verify_max_s: float = Field(
        default=1800,
        gt=0,
        description="Longest verification waits for its minimum requests before rolling back.",
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
    controller_require_approval: bool = Field(
        default=False,
        description="Promotions wait for a reviewer to merge their GitOps branch (needs a repo).",
    )

    # --- security (owner: security; issue 14) --------------------------------------------------
    auth_enabled: bool = Field(
        default=True,
        description="Require a bearer credential (API key or JWT) on every non-public route.",
    )
    auth_key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="Seconds a replica trusts its cached view of an API key; a revocation "
        "reaches every replica within this.",
    )
    auth_oidc_issuer: str | None = Field(
        default=None,
        description="`iss` a JWT must carry (e.g. https://kubernetes.default.svc); unset: JWTs "
        "are refused and only API keys work.",
    )
    auth_oidc_audience: str | None = Field(
        default=None, description="`aud` a JWT must carry (default: `driftline`)."
    )
    auth_jwks_url: str | None = Field(
        default=None, description="URL of the issuer's JWKS (its `jwks_uri`)."
    )
    auth_jwks_file: Path | None = Field(
        default=None,
        description="A JWKS file instead of a URL (e.g. the cluster's service-account keys).",
    )
    auth_jwt_algorithms: str = Field(
        default="RS256,ES256", description="Comma-separated JWT signature algorithms accepted."
    )
    auth_scope_claim: str = Field(
        default="scope",
        description="JWT claim carrying Driftline scopes (space-separated string or a list).",
    )
    auth_jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew tolerated on `exp`, `nbf` and `iat`."
    )
    auth_jwks_refresh_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a fetched JWKS is reused; an unknown `kid` refetches at most this "
        "often / 10.",
    )
    rate_limits: dict[str, tuple[float, int]] = Field(
        default={
            "predict": (100.0, 200),
            "stream": (1.0, 10),
            "read": (20.0, 40),
            "outcomes:write": (10.0, 20),
            "alerts:write": (2.0, 10),
            "admin": (10.0, 20),
        },
        description="Token bucket per principal and route scope, as JSON "
        '`{"predict": [rate_per_s, burst], ...}`; a scope left out is not limited.',
    )
    auth_lookup_rate: tuple[float, int] = Field(
        default=(2.0, 20),
        description="Credential checks that miss the cache (a store query or JWKS fetch) per "
        "client address, as [rate_per_s, burst]: what random keys can cost the store.",
    )
    rate_limit_redis_url: str | None = Field(
        default=None,
        description="Redis (or Valkey) URL that shares the rate limits across replicas; unset: "
        "each replica limits on its own.",
    )
    ws_max_connections: int = Field(
        default=64, ge=1, description="WebSocket connections one replica holds at once."
    )
    ws_max_per_principal: int = Field(
        default=4, ge=1, description="WebSocket connections one principal holds per replica."
    )
    ws_idle_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A WebSocket with no message either way for this long is closed.",
    )
    allow_native_members: bool = Field(
        default=False,
        description="Let serving and the gates unpickle a member's native model (a member "
        "without ONNX, or serve_prefer_onnx off); off, they load ONNX artifacts only.",
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

    @property
    def member_names(self) -> list[str]:
        """`train_members` as a list, in order."""
        return [m.strip() for m in self.train_members.split(",") if m.strip()]

    @cached_property
    def tune_storage(self) -> str:
        """Where Ray Tune keeps trial results and checkpoints."""
        return self.train_tune_storage or str(self.home / "tune")

    def ensure_home(self) -> Path:
        """Create `home` if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
