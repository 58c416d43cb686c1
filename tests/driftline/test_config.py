"""Settings by section: every flat DRIFTLINE_* variable still sets what it always set."""

from __future__ import annotations

import json
import operator
import types
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from driftline.config import Settings, flat_values
from driftline.contracts import Severity

# The flat settings as they were before sections (issue 12): field, its variable, where it went.
# Frozen here so that a variable dropped or moved by accident fails a row.
FLAT_FIELDS: list[tuple[str, str, str]] = [
    ("home", "DRIFTLINE_HOME", "home"),
    ("database_url", "DRIFTLINE_DATABASE_URL", "store.database_url"),
    ("db_pool_size", "DRIFTLINE_DB_POOL_SIZE", "store.pool_size"),
    ("mlflow_tracking_uri", "MLFLOW_TRACKING_URI", "registry.mlflow_tracking_uri"),
    ("model_name", "DRIFTLINE_MODEL_NAME", "registry.model_name"),
    ("symbol", "DRIFTLINE_SYMBOL", "data.symbol"),
    ("data_path", "DRIFTLINE_DATA_PATH", "data.path"),
    ("log_level", "DRIFTLINE_LOG_LEVEL", "observability.log_level"),
    ("log_json", "DRIFTLINE_LOG_JSON", "observability.log_json"),
    ("otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "observability.otlp_endpoint"),
    ("trace_ratio", "DRIFTLINE_TRACE_RATIO", "observability.trace_ratio"),
    ("horizon", "DRIFTLINE_HORIZON", "training.horizon"),
    ("holdout_fraction", "DRIFTLINE_HOLDOUT_FRACTION", "training.holdout_fraction"),
    ("cv_splits", "DRIFTLINE_CV_SPLITS", "training.cv_splits"),
    ("max_gap_days", "DRIFTLINE_MAX_GAP_DAYS", "data.max_gap_days"),
    ("drift_window", "DRIFTLINE_DRIFT_WINDOW", "drift.window"),
    ("drift_min_rows", "DRIFTLINE_DRIFT_MIN_ROWS", "drift.min_rows"),
    ("drift_interval_s", "DRIFTLINE_DRIFT_INTERVAL_S", "drift.interval_s"),
    ("drift_alpha", "DRIFTLINE_DRIFT_ALPHA", "drift.alpha"),
    ("drift_bins", "DRIFTLINE_DRIFT_BINS", "drift.bins"),
    ("drift_null_windows", "DRIFTLINE_DRIFT_NULL_WINDOWS", "drift.null_windows"),
    ("drift_prefer_alibi", "DRIFTLINE_DRIFT_PREFER_ALIBI", "drift.prefer_alibi"),
    ("drift_performance_window", "DRIFTLINE_DRIFT_PERFORMANCE_WINDOW", "drift.performance_window"),
    ("drift_min_outcomes", "DRIFTLINE_DRIFT_MIN_OUTCOMES", "drift.min_outcomes"),
    ("drift_alert_min_severity", "DRIFTLINE_DRIFT_ALERT_MIN_SEVERITY", "drift.alert_min_severity"),
    ("drift_alert_cooldown_s", "DRIFTLINE_DRIFT_ALERT_COOLDOWN_S", "drift.alert_cooldown_s"),
    ("drift_outcome_late_s", "DRIFTLINE_DRIFT_OUTCOME_LATE_S", "drift.outcome_late_s"),
    ("drift_metrics_host", "DRIFTLINE_DRIFT_METRICS_HOST", "drift.metrics_host"),
    ("drift_metrics_port", "DRIFTLINE_DRIFT_METRICS_PORT", "drift.metrics_port"),
    ("drift_store_retries", "DRIFTLINE_DRIFT_STORE_RETRIES", "drift.store_retries"),
    ("drift_store_backoff_s", "DRIFTLINE_DRIFT_STORE_BACKOFF_S", "drift.store_backoff_s"),
    ("ray_address", "RAY_ADDRESS", "ray.address"),
    ("ray_num_cpus", "DRIFTLINE_RAY_NUM_CPUS", "ray.num_cpus"),
    ("ray_dashboard_port", "DRIFTLINE_RAY_DASHBOARD_PORT", "ray.dashboard_port"),
    ("train_trials", "DRIFTLINE_TRAIN_TRIALS", "training.trials"),
    ("train_members", "DRIFTLINE_TRAIN_MEMBERS", "training.members"),
    ("train_seed", "DRIFTLINE_TRAIN_SEED", "training.seed"),
    ("train_trial_cpus", "DRIFTLINE_TRAIN_TRIAL_CPUS", "training.trial_cpus"),
    ("train_min_rows", "DRIFTLINE_TRAIN_MIN_ROWS", "training.min_rows"),
    ("train_tune_storage", "DRIFTLINE_TRAIN_TUNE_STORAGE", "training.tune_storage"),
    ("reference_rows", "DRIFTLINE_REFERENCE_ROWS", "training.reference_rows"),
    ("cost_bps", "DRIFTLINE_COST_BPS", "training.cost_bps"),
    ("periods_per_year", "DRIFTLINE_PERIODS_PER_YEAR", "training.periods_per_year"),
    ("significance_level", "DRIFTLINE_SIGNIFICANCE_LEVEL", "training.significance_level"),
    ("onnx_tolerance", "DRIFTLINE_ONNX_TOLERANCE", "rollout.gates.onnx_tolerance"),
    ("model_version", "DRIFTLINE_MODEL_VERSION", "serving.model_version"),
    ("colour", "DRIFTLINE_COLOUR", "serving.colour"),
    ("serving_port", "DRIFTLINE_SERVING_PORT", "serving.predictor_port"),
    ("serve_host", "DRIFTLINE_SERVE_HOST", "serving.host"),
    ("serve_port", "DRIFTLINE_SERVE_PORT", "serving.port"),
    ("serve_tls_cert", "DRIFTLINE_SERVE_TLS_CERT", "serving.tls_cert"),
    ("serve_tls_key", "DRIFTLINE_SERVE_TLS_KEY", "serving.tls_key"),
    ("stream_interval_s", "DRIFTLINE_STREAM_INTERVAL_S", "serving.stream_interval_s"),
    ("stream_start", "DRIFTLINE_STREAM_START", "serving.stream_start"),
    ("stream_client_queue", "DRIFTLINE_STREAM_CLIENT_QUEUE", "serving.stream_client_queue"),
    ("serve_max_rows", "DRIFTLINE_SERVE_MAX_ROWS", "serving.max_rows"),
    ("serve_max_body_bytes", "DRIFTLINE_SERVE_MAX_BODY_BYTES", "serving.max_body_bytes"),
    ("serve_request_timeout_s", "DRIFTLINE_SERVE_REQUEST_TIMEOUT_S", "serving.request_timeout_s"),
    (
        "serve_max_ongoing_requests",
        "DRIFTLINE_SERVE_MAX_ONGOING_REQUESTS",
        "serving.max_ongoing_requests",
    ),
    (
        "serve_max_queued_requests",
        "DRIFTLINE_SERVE_MAX_QUEUED_REQUESTS",
        "serving.max_queued_requests",
    ),
    ("serve_retry_after_s", "DRIFTLINE_SERVE_RETRY_AFTER_S", "serving.retry_after_s"),
    ("serve_min_replicas", "DRIFTLINE_SERVE_MIN_REPLICAS", "serving.min_replicas"),
    ("serve_max_replicas", "DRIFTLINE_SERVE_MAX_REPLICAS", "serving.max_replicas"),
    (
        "serve_target_ongoing_requests",
        "DRIFTLINE_SERVE_TARGET_ONGOING_REQUESTS",
        "serving.target_ongoing_requests",
    ),
    ("serve_ingress_cpus", "DRIFTLINE_SERVE_INGRESS_CPUS", "serving.ingress_cpus"),
    ("serve_member_cpus", "DRIFTLINE_SERVE_MEMBER_CPUS", "serving.member_cpus"),
    ("serve_light_cpus", "DRIFTLINE_SERVE_LIGHT_CPUS", "serving.light_cpus"),
    ("serve_batch_size", "DRIFTLINE_SERVE_BATCH_SIZE", "serving.batch_size"),
    ("serve_batch_wait_s", "DRIFTLINE_SERVE_BATCH_WAIT_S", "serving.batch_wait_s"),
    ("serve_member_transport", "DRIFTLINE_SERVE_MEMBER_TRANSPORT", "serving.member_transport"),
    (
        "serve_member_target_busy",
        "DRIFTLINE_SERVE_MEMBER_TARGET_BUSY",
        "serving.member_target_busy",
    ),
    ("serve_access_log", "DRIFTLINE_SERVE_ACCESS_LOG", "serving.access_log"),
    ("serve_prefer_onnx", "DRIFTLINE_SERVE_PREFER_ONNX", "serving.prefer_onnx"),
    (
        "serve_throughput_optimized",
        "DRIFTLINE_SERVE_THROUGHPUT_OPTIMIZED",
        "serving.throughput_optimized",
    ),
    ("serve_write_batch", "DRIFTLINE_SERVE_WRITE_BATCH", "serving.write_batch"),
    ("serve_write_interval_s", "DRIFTLINE_SERVE_WRITE_INTERVAL_S", "serving.write_interval_s"),
    ("serve_write_buffer", "DRIFTLINE_SERVE_WRITE_BUFFER", "serving.write_buffer"),
    (
        "store_breaker_threshold",
        "DRIFTLINE_STORE_BREAKER_THRESHOLD",
        "store.store_breaker_threshold",
    ),
    ("store_breaker_reset_s", "DRIFTLINE_STORE_BREAKER_RESET_S", "store.store_breaker_reset_s"),
    ("breaker_threshold", "DRIFTLINE_BREAKER_THRESHOLD", "breakers.threshold"),
    ("breaker_reset_s", "DRIFTLINE_BREAKER_RESET_S", "breakers.reset_s"),
    (
        "predictions_retention_days",
        "DRIFTLINE_PREDICTIONS_RETENTION_DAYS",
        "store.predictions_retention_days",
    ),
    ("drift_retention_days", "DRIFTLINE_DRIFT_RETENTION_DAYS", "store.drift_retention_days"),
    ("audit_retention_days", "DRIFTLINE_AUDIT_RETENTION_DAYS", "store.audit_retention_days"),
    ("serve_write_spool_dir", "DRIFTLINE_SERVE_WRITE_SPOOL_DIR", "serving.write_spool_dir"),
    ("serve_write_spool_bytes", "DRIFTLINE_SERVE_WRITE_SPOOL_BYTES", "serving.write_spool_bytes"),
    ("serve_follow_interval_s", "DRIFTLINE_SERVE_FOLLOW_INTERVAL_S", "serving.follow_interval_s"),
    ("serve_shadow_url", "DRIFTLINE_SERVE_SHADOW_URL", "serving.shadow_url"),
    ("serve_shadow_key", "DRIFTLINE_SERVE_SHADOW_KEY", "serving.shadow_key"),
    ("serve_shadow_poll_s", "DRIFTLINE_SERVE_SHADOW_POLL_S", "serving.shadow_poll_s"),
    ("controller_host", "DRIFTLINE_CONTROLLER_HOST", "controller.host"),
    ("controller_port", "DRIFTLINE_CONTROLLER_PORT", "controller.port"),
    ("controller_interval_s", "DRIFTLINE_CONTROLLER_INTERVAL_S", "controller.interval_s"),
    ("controller_lease_s", "DRIFTLINE_CONTROLLER_LEASE_S", "controller.lease_s"),
    ("controller_paused", "DRIFTLINE_CONTROLLER_PAUSED", "controller.paused"),
    ("controller_retrain_at", "DRIFTLINE_CONTROLLER_RETRAIN_AT", "drift_policy.retrain_at"),
    (
        "controller_sustained_reports",
        "DRIFTLINE_CONTROLLER_SUSTAINED_REPORTS",
        "drift_policy.sustained_reports",
    ),
    ("controller_cooldown_s", "DRIFTLINE_CONTROLLER_COOLDOWN_S", "drift_policy.cooldown_seconds"),
    ("controller_retrain_trials", "DRIFTLINE_CONTROLLER_RETRAIN_TRIALS", "retraining.trials"),
    (
        "controller_retrain_timeout_s",
        "DRIFTLINE_CONTROLLER_RETRAIN_TIMEOUT_S",
        "retraining.timeout_seconds",
    ),
    (
        "controller_job_start_s",
        "DRIFTLINE_CONTROLLER_JOB_START_S",
        "retraining.start_timeout_seconds",
    ),
    (
        "controller_retrain_attempts",
        "DRIFTLINE_CONTROLLER_RETRAIN_ATTEMPTS",
        "retraining.max_attempts",
    ),
    ("controller_retrain_args", "DRIFTLINE_CONTROLLER_RETRAIN_ARGS", "controller.retrain_args"),
    (
        "controller_deploy_timeout_s",
        "DRIFTLINE_CONTROLLER_DEPLOY_TIMEOUT_S",
        "rollout.deploy_timeout_seconds",
    ),
    ("controller_drain_s", "DRIFTLINE_CONTROLLER_DRAIN_S", "rollout.drain_seconds"),
    (
        "controller_shadow_min_pairs",
        "DRIFTLINE_CONTROLLER_SHADOW_MIN_PAIRS",
        "rollout.shadow.min_paired_outcomes",
    ),
    (
        "controller_shadow_max_s",
        "DRIFTLINE_CONTROLLER_SHADOW_MAX_S",
        "rollout.shadow.max_duration_seconds",
    ),
    ("controller_gate_test", "DRIFTLINE_CONTROLLER_GATE_TEST", "rollout.gates.test"),
    ("controller_gate_alpha", "DRIFTLINE_CONTROLLER_GATE_ALPHA", "rollout.gates.alpha"),
    (
        "controller_gate_baselines",
        "DRIFTLINE_CONTROLLER_GATE_BASELINES",
        "rollout.gates.require_baselines",
    ),
    (
        "controller_gate_window_bars",
        "DRIFTLINE_CONTROLLER_GATE_WINDOW_BARS",
        "rollout.gates.window_bars",
    ),
    (
        "controller_latency_budget_ms",
        "DRIFTLINE_CONTROLLER_LATENCY_BUDGET_MS",
        "rollout.gates.latency_budget_ms",
    ),
    (
        "controller_verify_window_s",
        "DRIFTLINE_CONTROLLER_VERIFY_WINDOW_S",
        "rollout.verification.window_seconds",
    ),
    (
        "controller_verify_max_error_rate",
        "DRIFTLINE_CONTROLLER_VERIFY_MAX_ERROR_RATE",
        "rollout.verification.max_error_rate",
    ),
    (
        "controller_verify_max_p99_ms",
        "DRIFTLINE_CONTROLLER_VERIFY_MAX_P99_MS",
        "rollout.verification.max_p99_latency_ms",
    ),
    (
        "controller_verify_min_requests",
        "DRIFTLINE_CONTROLLER_VERIFY_MIN_REQUESTS",
        "rollout.verification.min_requests",
    ),
    (
        "controller_verify_max_s",
        "DRIFTLINE_CONTROLLER_VERIFY_MAX_S",
        "rollout.verification.max_seconds",
    ),
    ("controller_gitops_repo", "DRIFTLINE_CONTROLLER_GITOPS_REPO", "controller.gitops_repo"),
    ("controller_gitops_branch", "DRIFTLINE_CONTROLLER_GITOPS_BRANCH", "controller.gitops_branch"),
    ("controller_gitops_values", "DRIFTLINE_CONTROLLER_GITOPS_VALUES", "controller.gitops_values"),
    (
        "controller_gitops_push_attempts",
        "DRIFTLINE_CONTROLLER_GITOPS_PUSH_ATTEMPTS",
        "controller.gitops_push_attempts",
    ),
    ("controller_dashboard_url", "DRIFTLINE_CONTROLLER_DASHBOARD_URL", "controller.dashboard_url"),
    ("controller_serve_url", "DRIFTLINE_CONTROLLER_SERVE_URL", "controller.serve_url"),
    ("controller_outcome_hook", "DRIFTLINE_CONTROLLER_OUTCOME_HOOK", "controller.outcome_hook"),
    ("controller_namespace", "DRIFTLINE_CONTROLLER_NAMESPACE", "controller.namespace"),
    ("controller_lease_name", "DRIFTLINE_CONTROLLER_LEASE_NAME", "controller.lease_name"),
    ("controller_api_key", "DRIFTLINE_CONTROLLER_API_KEY", "controller.api_key"),
    ("allow_native_members", "DRIFTLINE_ALLOW_NATIVE_MEMBERS", "registry.allow_native_members"),
    (
        "controller_require_approval",
        "DRIFTLINE_CONTROLLER_REQUIRE_APPROVAL",
        "rollout.require_approval",
    ),
    ("auth_enabled", "DRIFTLINE_AUTH_ENABLED", "auth.enabled"),
    ("auth_key_cache_ttl_s", "DRIFTLINE_AUTH_KEY_CACHE_TTL_S", "auth.key_cache_ttl_s"),
    ("auth_oidc_issuer", "DRIFTLINE_AUTH_OIDC_ISSUER", "auth.oidc_issuer"),
    ("auth_oidc_audience", "DRIFTLINE_AUTH_OIDC_AUDIENCE", "auth.oidc_audience"),
    ("auth_jwks_url", "DRIFTLINE_AUTH_JWKS_URL", "auth.jwks_url"),
    ("auth_jwks_file", "DRIFTLINE_AUTH_JWKS_FILE", "auth.jwks_file"),
    ("auth_jwt_algorithms", "DRIFTLINE_AUTH_JWT_ALGORITHMS", "auth.jwt_algorithms"),
    ("auth_scope_claim", "DRIFTLINE_AUTH_SCOPE_CLAIM", "auth.scope_claim"),
    ("auth_jwt_leeway_s", "DRIFTLINE_AUTH_JWT_LEEWAY_S", "auth.jwt_leeway_s"),
    ("auth_jwks_refresh_s", "DRIFTLINE_AUTH_JWKS_REFRESH_S", "auth.jwks_refresh_s"),
    ("rate_limits", "DRIFTLINE_RATE_LIMITS", "auth.rate_limits"),
    ("auth_lookup_rate", "DRIFTLINE_AUTH_LOOKUP_RATE", "auth.lookup_rate"),
    ("rate_limit_redis_url", "DRIFTLINE_RATE_LIMIT_REDIS_URL", "auth.rate_limit_redis_url"),
    ("ws_max_connections", "DRIFTLINE_WS_MAX_CONNECTIONS", "auth.ws_max_connections"),
    ("ws_max_per_principal", "DRIFTLINE_WS_MAX_PER_PRINCIPAL", "auth.ws_max_per_principal"),
    ("ws_idle_timeout_s", "DRIFTLINE_WS_IDLE_TIMEOUT_S", "auth.ws_idle_timeout_s"),
]


def _field(path: str) -> FieldInfo:
    model: Any = Settings
    *sections, leaf = path.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    return model.model_fields[leaf]  # type: ignore[no-any-return]


# A valid value unlike the default `d`, by the field's type.
_OTHER: dict[Any, Callable[[Any, Path], Any]] = {
    bool: lambda d, _: d is False,  # True flips to False, and so does unset (None)
    int: lambda d, _: d + 1,
    float: lambda d, _: d / 2 if d else 0.5,
    str: lambda d, _: "somewhere-else",
    Path: lambda d, tmp: (tmp / "elsewhere").resolve(),
    date: lambda d, _: date(2001, 2, 3),
}


def _other_value(field: FieldInfo, tmp_path: Path) -> tuple[str, Any]:
    """A valid value unlike the default, as the variable's text and as read back."""
    kind, default = field.annotation, field.default
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        choice = next(c for c in get_args(kind) if c != default)
        return choice, choice
    if isinstance(kind, type) and issubclass(kind, Severity):
        level = Severity.CRITICAL if default != Severity.CRITICAL else Severity.HIGH
        return level.label, level
    if kind is SecretStr:
        return "dl_secret", SecretStr("dl_secret")
    if get_origin(kind) in (dict, tuple):
        # Structured values travel as JSON text.
        value = {"predict": (1.5, 3)} if get_origin(kind) is dict else (1.5, 3)
        return json.dumps(value), value
    value = _OTHER[kind](default, tmp_path)
    text = str(value).lower() if kind is bool else repr(value) if kind is float else str(value)
    return text, value


def _read(settings: Settings, path: str) -> Any:
    return operator.attrgetter(path)(settings)


def test_every_flat_variable_is_read_and_nothing_else():
    assert set(Settings.env_paths()) == {env for _, env, _ in FLAT_FIELDS}
    assert {env: ".".join(p) for env, p in Settings.env_paths().items()} == {
        env: path for _, env, path in FLAT_FIELDS
    }


# Resources (CPU reservations, replicas, pools, concurrency and connection limits, memory and
# disk bounds): their rows only check where the variable lands, so no test ever gives one a
# value users do not run with.
RESOURCE_VARIABLES = {
    "DRIFTLINE_RAY_NUM_CPUS",
    "DRIFTLINE_TRAIN_TRIAL_CPUS",
    "DRIFTLINE_SERVE_INGRESS_CPUS",
    "DRIFTLINE_SERVE_MEMBER_CPUS",
    "DRIFTLINE_SERVE_LIGHT_CPUS",
    "DRIFTLINE_DB_POOL_SIZE",
    "DRIFTLINE_SERVE_MIN_REPLICAS",
    "DRIFTLINE_SERVE_MAX_REPLICAS",
    "DRIFTLINE_SERVE_MAX_ONGOING_REQUESTS",
    "DRIFTLINE_SERVE_MAX_QUEUED_REQUESTS",
    "DRIFTLINE_SERVE_TARGET_ONGOING_REQUESTS",
    "DRIFTLINE_SERVE_MEMBER_TARGET_BUSY",
    "DRIFTLINE_SERVE_WRITE_BUFFER",
    "DRIFTLINE_SERVE_WRITE_SPOOL_BYTES",
    "DRIFTLINE_STREAM_CLIENT_QUEUE",
    "DRIFTLINE_WS_MAX_CONNECTIONS",
    "DRIFTLINE_WS_MAX_PER_PRINCIPAL",
}
VALUE_FIELDS = [f for f in FLAT_FIELDS if f[1] not in RESOURCE_VARIABLES]
RESOURCE_FIELDS = [f for f in FLAT_FIELDS if f[1] in RESOURCE_VARIABLES]


@pytest.mark.parametrize(("name", "env", "path"), VALUE_FIELDS, ids=[f[0] for f in VALUE_FIELDS])
def test_a_flat_variable_sets_its_field_at_its_new_place(
    name: str, env: str, path: str, tmp_path: Path
):
    # Parsed from an explicit environment, not this process's.
    text, expected = _other_value(_field(path), tmp_path)
    assert _read(Settings(), path) != expected
    assert _read(Settings(**flat_values({env: text})), path) == expected


@pytest.mark.parametrize(
    ("name", "env", "path"), RESOURCE_FIELDS, ids=[f[0] for f in RESOURCE_FIELDS]
)
def test_a_resource_variable_reaches_its_field(name: str, env: str, path: str):
    # No value is given to a resource here: the row checks where the variable lands, so nothing
    # is ever parsed with a resource users do not run.
    assert Settings.env_paths()[env] == tuple(path.split("."))


def test_the_process_environment_wins_over_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env_file = tmp_path / "driftline.env"
    env_file.write_text("DRIFTLINE_DRIFT_WINDOW=77\nDRIFTLINE_SERVE_PORT=9001\n")
    monkeypatch.setenv("DRIFTLINE_ENV_FILE", str(env_file))
    monkeypatch.setenv("DRIFTLINE_SERVE_PORT", "9002")
    settings = Settings()
    assert (settings.drift.window, settings.serving.port) == (77, 9002)


def test_section_keywords_override_one_field_and_keep_the_environment(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("DRIFTLINE_SERVE_HOST", "0.0.0.0")
    monkeypatch.setenv("DRIFTLINE_CONTROLLER_GATE_TEST", "wilcoxon")
    settings = Settings(serving={"port": 9003}, rollout={"gates": {"alpha": 0.1}})
    assert (settings.serving.host, settings.serving.port) == ("0.0.0.0", 9003)
    assert (settings.rollout.gates.test, settings.rollout.gates.alpha) == ("wilcoxon", 0.1)


def test_flat_keywords_and_unknown_section_fields_are_refused():
    flat: dict[str, Any] = {"drift_window": 60}
    with pytest.raises(ValidationError, match="drift_window"):
        Settings(**flat)
    with pytest.raises(ValidationError, match="windw"):
        Settings(drift={"windw": 60})


def test_updated_validates_and_does_not_reread_the_environment(monkeypatch: pytest.MonkeyPatch):
    settings = Settings(drift={"alpha": 0.01})
    monkeypatch.setenv("DRIFTLINE_DRIFT_ALPHA", "0.2")
    copy = settings.updated({"drift": {"window": 60}, "registry": {"model_name": "m"}})
    assert (copy.drift.window, copy.drift.alpha, copy.registry.model_name) == (60, 0.01, "m")
    assert copy.home == settings.home
    with pytest.raises(ValidationError):
        settings.updated({"drift": {"window": 1}})


def test_derived_paths_follow_home_unless_set(tmp_path: Path):
    settings = Settings(home=tmp_path)
    assert settings.store_url == f"sqlite:///{tmp_path / 'driftline.db'}"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.tune_storage == str(tmp_path / "tune")
    assert settings.artifact_root == tmp_path / "mlartifacts"
    moved = Settings(
        store={"database_url": "postgresql://x/y"}, training={"tune_storage": "s3://t"}
    )
    assert (moved.store_url, moved.tune_storage) == ("postgresql://x/y", "s3://t")


def test_member_names_split_the_members_list():
    assert Settings(training={"members": " rf, xgb ,,hgb"}).training.member_names == [
        "rf",
        "xgb",
        "hgb",
    ]


def test_a_copy_with_a_flat_name_is_refused():
    flat: dict[str, Any] = {"drift_window": 60}
    with pytest.raises(ValueError, match="drift_window"):
        Settings().model_copy(update=flat)
