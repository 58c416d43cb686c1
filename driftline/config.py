"""One settings object for every Driftline component, read from ``DRIFTLINE_*`` variables.

Fields are grouped by component (``settings.serving.port``, ``settings.drift.window``); each keeps
the flat variable it always had (``DRIFTLINE_SERVE_PORT``, ``DRIFTLINE_DRIFT_WINDOW``): a section's
variable is ``DRIFTLINE_<ENV_PREFIX><FIELD>`` unless its ``env_names`` say otherwise. The rollout
policy is the one ``driftline.rollout_policy`` shares with the ModelDeployment custom resource.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from driftline.rollout_policy import DriftPolicy, RetrainingPolicy, RolloutPolicy
from driftline.symbols import Symbol

Path_ = tuple[str, ...]


class _Section(BaseModel):
    """A group of settings; its variables are ``DRIFTLINE_<env_prefix><field>`` by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env_prefix: ClassVar[str] = ""
    # Fields whose variable breaks the prefix rule (names kept from the flat settings).
    env_names: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable `field` is read from."""
        return cls.env_names.get(field) or f"DRIFTLINE_{cls.env_prefix}{field}".upper()


class StoreSettings(_Section):
    """The store: which database and how many connections."""

    env_prefix: ClassVar[str] = ""
    env_names: ClassVar[Mapping[str, str]] = {
        "pool_size": "DRIFTLINE_DB_POOL_SIZE",
    }

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; defaults to SQLite under `home`.",
    )
    pool_size: int = Field(default=5, ge=1, description="PostgreSQL connection pool size.")
    store_breaker_threshold: int = Field(
        default=3,
        ge=1,
        description="Store calls that run out of retries before the circuit opens (fail fast).",
    )
    store_breaker_reset_s: float = Field(
        default=10.0, gt=0, description="Seconds an open store circuit waits before a trial call."
    )
    predictions_retention_days: int = Field(
        default=90, ge=1, description="Days predictions (and quarantined ones) are kept."
    )
    drift_retention_days: int = Field(
        default=365, ge=1, description="Days drift reports and their scores are kept."
    )
    audit_retention_days: int = Field(
        default=1095,
        ge=1,
        description="Days audit events are kept (the longest: every decision's trail).",
    )


class BreakerSettings(_Section):
    """Circuit breakers on member replicas and MLflow (driftline.breakers); the store's are in
    `store`, as its calls fail only after their retries."""

    env_prefix: ClassVar[str] = "BREAKER_"

    threshold: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed calls to a member or MLflow that open its circuit "
        "(calls then fail at once).",
    )
    reset_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an open member or MLflow circuit refuses calls before trial calls "
        "go through (a success closes it, a failure opens it again).",
    )


class RegistrySettings(_Section):
    """The MLflow registry and the model it holds."""

    env_prefix: ClassVar[str] = ""
    # MLflow's own variable, so that stock MLflow tooling and Driftline agree.
    env_names: ClassVar[Mapping[str, str]] = {"mlflow_tracking_uri": "MLFLOW_TRACKING_URI"}

    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI; defaults to SQLite under `home`.",
    )
    model_name: str = Field(default="market-ensemble", description="Registered model name.")
    allow_native_members: bool = Field(
        default=False,
        description="Let serving and the gates unpickle a member's native model (a member "
        "without ONNX, or serve_prefer_onnx off); off, they load ONNX artifacts only.",
    )


class DataSettings(_Section):
    """The market data a model is trained and served on."""

    env_prefix: ClassVar[str] = ""
    env_names: ClassVar[Mapping[str, str]] = {
        "path": "DRIFTLINE_DATA_PATH",
    }

    symbol: Symbol = Field(default="SPX", description="Symbol the default data set describes.")
    path: Path | None = Field(
        default=None,
        description="OHLCV CSV or Parquet file; unset means the S&P 500 data `arch` ships.",
    )
    max_gap_days: int = Field(
        default=14, ge=1, description="Largest calendar gap between bars before data is refused."
    )


class TrainingSettings(_Section):
    """Training and evaluation: target, folds, search and the figures reported."""

    env_prefix: ClassVar[str] = "TRAIN_"
    env_names: ClassVar[Mapping[str, str]] = {
        "horizon": "DRIFTLINE_HORIZON",
        "holdout_fraction": "DRIFTLINE_HOLDOUT_FRACTION",
        "cv_splits": "DRIFTLINE_CV_SPLITS",
        "reference_rows": "DRIFTLINE_REFERENCE_ROWS",
        "cost_bps": "DRIFTLINE_COST_BPS",
        "periods_per_year": "DRIFTLINE_PERIODS_PER_YEAR",
        "significance_level": "DRIFTLINE_SIGNIFICANCE_LEVEL",
    }

    horizon: int = Field(default=1, ge=1, le=20, description="Target horizon in bars.")
    holdout_fraction: float = Field(
        default=0.2, gt=0.0, lt=0.5, description="Final share of rows that tuning never sees."
    )
    cv_splits: int = Field(default=4, ge=2, le=20, description="Walk-forward folds.")
    trials: int = Field(default=8, ge=1, description="Ray Tune trials per member.")
    members: str = Field(
        default="rf,xgb",
        description="Comma-separated ensemble members (known: rf, xgb, hgb).",
    )
    seed: int = Field(default=42, description="Seed for search, members and resampling.")
    trial_cpus: float | None = Field(
        default=None,
        gt=0,
        description="CPUs one tuning trial or member fit reserves; unset sizes them from the "
        "cluster's free CPUs (at most one), so retraining fits beside serving.",
    )
    min_rows: int = Field(
        default=500, ge=100, description="Fewest labelled feature rows a training run accepts."
    )
    tune_storage: str | None = Field(
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

    @property
    def member_names(self) -> list[str]:
        """`members` as a list, in order."""
        return [m.strip() for m in self.members.split(",") if m.strip()]


class DriftSettings(_Section):
    """The drift monitor: windows, detectors, alerts and its /metrics."""

    env_prefix: ClassVar[str] = "DRIFT_"

    window: int = Field(
        default=250, ge=30, description="Live feature rows per drift window (the null's length)."
    )
    min_rows: int = Field(
        default=30, ge=10, description="Fewest rows any detector accepts in a window."
    )
    interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between drift monitor runs."
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="False discovery rate / test level of detectors."
    )
    bins: int = Field(default=10, ge=2, le=100, description="Frozen PSI/JS bins per feature.")
    null_windows: int = Field(
        default=200, ge=20, description="Most reference blocks the empirical null slides through."
    )
    prefer_alibi: bool = Field(
        default=False,
        description="Use alibi-detect's KS detector when the `driftline[alibi]` extra is "
        "installed (BSL 1.1); the default scipy path decides the same.",
    )
    performance_window: int = Field(
        default=250, ge=30, description="Most recent outcomes the performance detectors use."
    )
    min_outcomes: int = Field(
        default=30, ge=10, description="Outcomes needed before performance drift is judged."
    )
    alert_min_severity: Literal["none", "low", "medium", "high", "critical"] = Field(
        default="medium", description="Lowest severity that raises an alert (none..critical)."
    )
    alert_cooldown_s: float = Field(
        default=3600.0, ge=0, description="An alert of the same severity is not repeated sooner."
    )
    outcome_late_s: float = Field(
        default=3 * 86400.0,
        gt=0,
        description="An outcome stored this long after its prediction is counted as late.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address `driftline drift monitor` serves /metrics on."
    )
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Port of the monitor's /metrics (0: none)."
    )
    store_retries: int = Field(
        default=5, ge=0, description="Retries of a store call after a lost connection."
    )
    store_backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles on each further retry."
    )


class RaySettings(_Section):
    """The Ray cluster Driftline runs on."""

    env_prefix: ClassVar[str] = "RAY_"
    env_names: ClassVar[Mapping[str, str]] = {
        "address": "RAY_ADDRESS",
    }

    address: str | None = Field(
        default=None,
        description="Existing Ray cluster; unset starts a local head node.",
    )
    num_cpus: float = Field(default=2, gt=0, description="CPUs a local head node offers.")
    dashboard_port: int = Field(default=8265, description="Local head's dashboard/Jobs port.")


class ServingSettings(_Section):
    """Serving: ports, limits, autoscaling, batching and the prediction writer."""

    env_prefix: ClassVar[str] = "SERVE_"
    env_names: ClassVar[Mapping[str, str]] = {
        "model_version": "DRIFTLINE_MODEL_VERSION",
        "colour": "DRIFTLINE_COLOUR",
        "predictor_port": "DRIFTLINE_SERVING_PORT",
        "stream_interval_s": "DRIFTLINE_STREAM_INTERVAL_S",
        "stream_start": "DRIFTLINE_STREAM_START",
        "stream_client_queue": "DRIFTLINE_STREAM_CLIENT_QUEUE",
    }

    model_version: str = Field(
        default="champion",
        description="Version or alias a single-colour server (InferenceService predictor) serves.",
    )
    colour: Literal["blue", "green"] = Field(
        default="blue", description="Colour label of a single-colour server."
    )
    predictor_port: int = Field(
        default=8000, ge=1, le=65535, description="HTTP port of the InferenceService predictor."
    )
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
    host: str = Field(default="127.0.0.1", description="Address `driftline serve` binds.")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port of the ingress.")
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) the serving port presents: with `tls_key` it "
        "serves HTTPS and WSS only.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`.")
    max_rows: int = Field(default=4096, ge=1, description="Most rows one request may carry.")
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="End-to-end deadline of one request."
    )
    max_ongoing_requests: int = Field(
        default=64, ge=1, description="Requests one replica works on at once."
    )
    max_queued_requests: int = Field(
        default=128, ge=0, description="Requests waiting per deployment before a 503."
    )
    retry_after_s: int = Field(
        default=1, ge=0, description="`Retry-After` seconds on a 503 (queues full)."
    )
    min_replicas: int = Field(default=1, ge=1, description="Autoscaling lower bound.")
    max_replicas: int = Field(default=2, ge=1, description="Autoscaling upper bound.")
    target_ongoing_requests: float = Field(
        default=16, gt=0, description="Autoscaling target of ongoing requests per replica."
    )
    ingress_cpus: float = Field(default=0.2, ge=0, description="CPUs per ingress replica.")
    member_cpus: float = Field(default=0.2, ge=0, description="CPUs per member replica.")
    light_cpus: float = Field(
        default=0.05, ge=0, description="CPUs per combiner or feature replica."
    )
    batch_size: int = Field(
        default=64, ge=1, description="Most requests merged into one batched member call."
    )
    batch_wait_s: float = Field(
        default=0.0,
        ge=0,
        description="How long a Serve-side batch (member and combiner handle calls) waits to "
        "fill; 0 adds no latency. The ingress never waits: it batches what arrives meanwhile.",
    )
    member_transport: Literal["socket", "serve"] = Field(
        default="socket",
        description="How callers on a member's node reach it: `socket` (a Unix socket per "
        "replica, the Serve handle when none answers) or `serve` (always the Serve handle).",
    )
    member_target_busy: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Autoscaling target of a member replica's busy share (time predicting).",
    )
    access_log: bool = Field(
        default=False,
        description="Serve's access log line per request in every replica (off: requests are "
        "counted in /metrics and errors logged with their correlation id).",
    )
    prefer_onnx: bool = Field(
        default=True, description="Run members through ONNX Runtime when an artifact exists."
    )
    throughput_optimized: bool = Field(
        default=True,
        description="Start Ray with RAY_SERVE_THROUGHPUT_OPTIMIZED (direct ingress and more).",
    )
    write_batch: int = Field(
        default=2048,
        ge=1,
        description="Prediction rows per store write (a request carries one or more rows).",
    )
    write_interval_s: float = Field(
        default=0.5, gt=0, description="Longest a prediction waits before it is written."
    )
    write_buffer: int = Field(
        default=100_000,
        ge=1,
        description="Prediction rows held in memory (while the store is down, say); past it "
        "the oldest requests are dropped and counted.",
    )
    write_spool_dir: Path | None = Field(
        default=None,
        description="Where predictions spill to a local file once the memory buffer is full "
        "(the store down, say); unset: `home`/spool.",
    )
    write_spool_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Largest spool file per ingress replica; past it the oldest requests are "
        "dropped and counted. 0 turns spilling off.",
    )
    follow_interval_s: float = Field(
        default=5.0, gt=0, description="How often `driftline serve` checks the champion alias."
    )
    shadow_url: str | None = Field(
        default=None,
        description="Base URL of the shadow colour's server, where an InferenceService "
        "predictor or a one-colour ingress (a RayService) mirrors what it answers over HTTP "
        "(the chart's preview Service, which the controller points at the shadow colour); "
        "unset: it never mirrors.",
    )
    shadow_key: SecretStr | None = Field(
        default=None,
        description="API key (scope `predict`) a predictor presents when it mirrors; a request "
        "presenting it is a mirror, answered but not logged (its sender stores the answer as "
        "the shadow's). Unset: no mirroring.",
    )
    shadow_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a server that mirrors over HTTP reads from the store which colour "
        "the controller mirrors to.",
    )

    @property
    def tls(self) -> tuple[Path, Path] | None:
        """(certificate, key) when the serving port speaks TLS; one without the other raises."""
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError(
                "TLS needs both DRIFTLINE_SERVE_TLS_CERT and DRIFTLINE_SERVE_TLS_KEY "
                "(--tls-cert and --tls-key)"
            )
        return self.tls_cert, self.tls_key

    @property
    def scheme(self) -> str:
        """`https` when the serving port has a certificate, else `http`."""
        return "https" if self.tls is not None else "http"


class ControllerSettings(_Section):
    """The rollout controller's process: where it listens, how often it acts, GitOps."""

    env_prefix: ClassVar[str] = "CONTROLLER_"

    host: str = Field(
        default="127.0.0.1",
        description="Address the controller's /metrics, /healthz, /readyz bind (0.0.0.0 in pods).",
    )
    port: int = Field(default=8081, ge=0, le=65535, description="Controller HTTP port.")
    interval_s: float = Field(
        default=15.0, gt=0, description="Seconds between observe-decide-act rounds."
    )
    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="Store lease a local controller holds; others wait it out.",
    )
    paused: bool = Field(default=False, description="Observe and report, act on nothing.")
    retrain_args: str = Field(
        default="", description="Extra arguments for the training job (e.g. `--members rf,xgb`)."
    )
    gitops_repo: str | None = Field(
        default=None, description="GitOps repository URL or path the gitops runtime commits to."
    )
    gitops_branch: str = Field(default="main", description="Branch it pushes to.")
    gitops_values: str = Field(
        default="gitops/environments/dev/values.yaml",
        description="Values file whose `model.version` a promotion edits.",
    )
    gitops_push_attempts: int = Field(default=4, ge=1, description="Push retries.")
    dashboard_url: str | None = Field(
        default=None,
        description="Ray dashboard (Jobs and Serve REST APIs) of the local runtime; "
        "unset: RAY_DASHBOARD_ADDRESS, else 127.0.0.1:`ray.dashboard_port`.",
    )
    serve_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Serving ingress the local runtime scrapes for /metrics during verification.",
    )
    outcome_hook: str | None = Field(
        default=None, description="Ingress `outcome_hook` arg when the controller deploys it first."
    )
    namespace: str = Field(
        default="default", description="Namespace the Kubernetes runtime watches (empty: all)."
    )
    lease_name: str = Field(
        default="driftline-controller", description="Kubernetes Lease used for leader election."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key (scope `read`) the controller sends when it reads serving's "
        "/metrics; unset: it sends none, which serving refuses while auth is on.",
    )


class ObservabilitySettings(_Section):
    """Logging and traces."""

    env_prefix: ClassVar[str] = ""
    env_names: ClassVar[Mapping[str, str]] = {"otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT"}

    log_level: str = Field(default="INFO", description="Root log level.")
    log_json: bool | None = Field(
        default=None,
        description="JSON log lines (true) or text (false); unset: text on a terminal, else JSON.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP/HTTP) that receives traces; unset: no traces.",
    )
    trace_ratio: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "Share of serving requests traced (a caller's sampled traceparent is always "
            "followed; controller rounds are all traced); OTEL_TRACES_SAMPLER decides instead "
            "when set."
        ),
    )


class AuthSettings(_Section):
    """Authentication, scopes, rate limits and WebSocket caps (driftline.auth)."""

    env_prefix: ClassVar[str] = "AUTH_"
    env_names: ClassVar[Mapping[str, str]] = {
        "rate_limits": "DRIFTLINE_RATE_LIMITS",
        "rate_limit_redis_url": "DRIFTLINE_RATE_LIMIT_REDIS_URL",
        "ws_max_connections": "DRIFTLINE_WS_MAX_CONNECTIONS",
        "ws_max_per_principal": "DRIFTLINE_WS_MAX_PER_PRINCIPAL",
        "ws_idle_timeout_s": "DRIFTLINE_WS_IDLE_TIMEOUT_S",
    }

    enabled: bool = Field(
        default=True,
        description="Require a bearer credential (API key or JWT) on every non-public route.",
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="Seconds a replica trusts its cached view of an API key; a revocation "
        "reaches every replica within this.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="`iss` a JWT must carry (e.g. https://kubernetes.default.svc); unset: JWTs "
        "are refused and only API keys work.",
    )
    oidc_audience: str | None = Field(
        default=None, description="`aud` a JWT must carry (default: `driftline`)."
    )
    jwks_url: str | None = Field(
        default=None, description="URL of the issuer's JWKS (its `jwks_uri`)."
    )
    jwks_file: Path | None = Field(
        default=None,
        description="A JWKS file instead of a URL (e.g. the cluster's service-account keys).",
    )
    jwt_algorithms: str = Field(
        default="RS256,ES256", description="Comma-separated JWT signature algorithms accepted."
    )
    scope_claim: str = Field(
        default="scope",
        description="JWT claim carrying Driftline scopes (space-separated string or a list).",
    )
    jwt_leeway_s: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew tolerated on `exp`, `nbf` and `iat`."
    )
    jwks_refresh_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a fetched JWKS is reused; an unknown `kid` refetches at most this "
        "often / 10.",
    )
    rate_limits: dict[str, tuple[float, int]] = Field(
        default={
            # A limit is abuse control, not capacity planning: one client may use the whole
            # ingress (~1,500 requests/s at 16 connections on 2 cores) without a 429.
            "predict": (5000.0, 10000),
            "stream": (1.0, 10),
            "read": (20.0, 40),
            "outcomes:write": (10.0, 20),
            "alerts:write": (2.0, 10),
            "admin": (10.0, 20),
        },
        description="Token bucket per principal and route scope, as JSON "
        '`{"predict": [rate_per_s, burst], ...}`; a scope left out is not limited.',
    )
    lookup_rate: tuple[float, int] = Field(
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
        default=16, ge=1, description="WebSocket connections one principal holds per replica."
    )
    ws_idle_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A WebSocket with no message either way for this long is closed.",
    )

    @field_validator("rate_limits", "lookup_rate", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        # Environment variables carry these as JSON text.
        return json.loads(value) if isinstance(value, str) else value


# The rollout policy's variables keep their flat `controller_*` names; the policy's own field
# names are the custom resource's (camelCase there).
POLICY_ENV: Mapping[str, Path_] = {
    "DRIFTLINE_CONTROLLER_RETRAIN_AT": ("drift_policy", "retrain_at"),
    "DRIFTLINE_CONTROLLER_SUSTAINED_REPORTS": ("drift_policy", "sustained_reports"),
    "DRIFTLINE_CONTROLLER_COOLDOWN_S": ("drift_policy", "cooldown_seconds"),
    "DRIFTLINE_CONTROLLER_RETRAIN_TRIALS": ("retraining", "trials"),
    "DRIFTLINE_CONTROLLER_RETRAIN_TIMEOUT_S": ("retraining", "timeout_seconds"),
    "DRIFTLINE_CONTROLLER_JOB_START_S": ("retraining", "start_timeout_seconds"),
    "DRIFTLINE_CONTROLLER_RETRAIN_ATTEMPTS": ("retraining", "max_attempts"),
    "DRIFTLINE_CONTROLLER_DEPLOY_TIMEOUT_S": ("rollout", "deploy_timeout_seconds"),
    "DRIFTLINE_CONTROLLER_DRAIN_S": ("rollout", "drain_seconds"),
    "DRIFTLINE_CONTROLLER_REQUIRE_APPROVAL": ("rollout", "require_approval"),
    "DRIFTLINE_CONTROLLER_SHADOW_MIN_PAIRS": ("rollout", "shadow", "min_paired_outcomes"),
    "DRIFTLINE_CONTROLLER_SHADOW_MAX_S": ("rollout", "shadow", "max_duration_seconds"),
    "DRIFTLINE_CONTROLLER_GATE_TEST": ("rollout", "gates", "test"),
    "DRIFTLINE_CONTROLLER_GATE_ALPHA": ("rollout", "gates", "alpha"),
    "DRIFTLINE_CONTROLLER_GATE_BASELINES": ("rollout", "gates", "require_baselines"),
    "DRIFTLINE_CONTROLLER_GATE_WINDOW_BARS": ("rollout", "gates", "window_bars"),
    "DRIFTLINE_CONTROLLER_LATENCY_BUDGET_MS": ("rollout", "gates", "latency_budget_ms"),
    "DRIFTLINE_ONNX_TOLERANCE": ("rollout", "gates", "onnx_tolerance"),
    "DRIFTLINE_CONTROLLER_VERIFY_WINDOW_S": ("rollout", "verification", "window_seconds"),
    "DRIFTLINE_CONTROLLER_VERIFY_MAX_ERROR_RATE": ("rollout", "verification", "max_error_rate"),
    "DRIFTLINE_CONTROLLER_VERIFY_MAX_P99_MS": ("rollout", "verification", "max_p99_latency_ms"),
    "DRIFTLINE_CONTROLLER_VERIFY_MIN_REQUESTS": ("rollout", "verification", "min_requests"),
    "DRIFTLINE_CONTROLLER_VERIFY_MAX_S": ("rollout", "verification", "max_seconds"),
}


class Settings(BaseSettings):
    """Driftline's configuration; every component takes it as an argument.

    Values come from the environment (see the module docstring), then an optional ``.env``-style
    file named by ``DRIFTLINE_ENV_FILE``; defaults need no setup. In code, override by section:
    ``Settings(home=tmp, drift={"window": 60}, rollout={"gates": {"alpha": 0.1}})``.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    home: Path = Field(
        default=Path(".driftline"),
        description="Directory for local state (DRIFTLINE_HOME): SQLite store, MLflow store, "
        "Ray logs, caches.",
    )
    store: StoreSettings = StoreSettings()
    registry: RegistrySettings = RegistrySettings()
    breakers: BreakerSettings = BreakerSettings()
    data: DataSettings = DataSettings()
    training: TrainingSettings = TrainingSettings()
    drift: DriftSettings = DriftSettings()
    ray: RaySettings = RaySettings()
    serving: ServingSettings = ServingSettings()
    controller: ControllerSettings = ControllerSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    auth: AuthSettings = AuthSettings()
    drift_policy: DriftPolicy = DriftPolicy()
    retraining: RetrainingPolicy = RetrainingPolicy()
    rollout: RolloutPolicy = RolloutPolicy()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flat variables fill nested sections, so pydantic-settings' own env sources stay out.
        return init_settings, _FlatEnvironment(settings_cls)

    @classmethod
    def env_paths(cls) -> dict[str, Path_]:
        """Every environment variable Driftline reads, with the attribute path it sets."""
        return {**dict(_field_env()), **POLICY_ENV}

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Ray jobs and Serve replicas run in other working directories; paths must not move.
        return value.expanduser().resolve()

    def updated(self, update: Mapping[str, Any]) -> Settings:
        """A validated copy with `update` merged in by section: ``{"drift": {"window": 60}}``."""
        return type(self).model_validate(_merge(self.model_dump(), update))

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """pydantic's copy, refusing a key that is not a field (a flat pre-section name)."""
        unknown = sorted(set(update or {}) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"not Settings fields: {unknown}; use .updated({{section: {{...}}}})")
        return super().model_copy(update=update, deep=deep)

    @cached_property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL, defaulting to SQLite under `home`."""
        return self.store.database_url or f"sqlite:///{self.home / 'driftline.db'}"

    @cached_property
    def tracking_uri(self) -> str:
        """MLflow tracking URI, defaulting to SQLite under `home`."""
        return self.registry.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @cached_property
    def artifact_root(self) -> Path:
        """Where a local MLflow store keeps artifacts."""
        return self.home / "mlartifacts"

    @cached_property
    def tune_storage(self) -> str:
        """Where Ray Tune keeps trial results and checkpoints."""
        return self.training.tune_storage or str(self.home / "tune")

    @property
    def spool_dir(self) -> Path:
        """Where the prediction writer spills, defaulting to `home`/spool."""
        return self.serving.write_spool_dir or self.home / "spool"

    def ensure_home(self) -> Path:
        """Create `home` if needed and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def _field_env() -> Iterator[tuple[str, Path_]]:
    """Section fields by their section's rule; a top-level plain field as DRIFTLINE_<NAME>."""
    for name, info in Settings.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, _Section):
            for field in kind.model_fields:
                yield kind.env_name(field), (name, field)
        elif not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            yield f"DRIFTLINE_{name.upper()}", (name,)


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        old = merged.get(key)
        nested = isinstance(value, Mapping) and isinstance(old, Mapping)
        merged[key] = _merge(old, value) if nested else value  # type: ignore[arg-type]
    return merged


class _FlatEnvironment(PydanticBaseSettingsSource):
    """Reads each `Settings.env_paths()` variable from the environment or DRIFTLINE_ENV_FILE."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        return flat_values(_environment())


def flat_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings `environ`'s variables set, nested by section (the values still text)."""
    found: dict[str, Any] = {}
    for env, path in Settings.env_paths().items():
        if env in environ:
            found = _merge(found, _nest(path, environ[env]))
    return found


def _environment() -> dict[str, str]:
    """Variables by upper-case name; the process environment wins over the env file."""
    file = os.environ.get("DRIFTLINE_ENV_FILE")
    from_file = dotenv_values(file) if file else {}
    merged = {**from_file, **os.environ}
    return {key.upper(): value for key, value in merged.items() if value is not None}


def _nest(path: Path_, value: Any) -> dict[str, Any]:
    head, *rest = path
    return {head: _nest(tuple(rest), value) if rest else value}
