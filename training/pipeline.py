"""The training run, stage by stage: data, features, tuning, fitting, weights, evaluation."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from driftline.config import Settings
from driftline.features import FeatureSpec, default_spec
from driftline.registry import BundleContents, Registration, Registry
from driftline.training_data import data_window, load_training_bars
from training.assessment import (
    evaluation_report,
    feature_importances,
    metrics_for_mlflow,
    reference_sample,
)
from training.dataset import build_dataset
from training.ensemble import learn_weights
from training.fitting import fit_members
from training.members import member_kind
from training.progress import Progress
from training.tuning import tune_members


@dataclass(frozen=True)
class TrainOptions:
    """What to train on and how hard to search."""

    data: Path | None = None
    start: date | None = None
    end: date | None = None
    trials: int = 8
    members: tuple[str, ...] = ("rf", "xgb")


def train(
    settings: Settings,
    options: TrainOptions,
    progress: Progress,
    *,
    spec: FeatureSpec | None = None,
) -> Registration:
    """Run every stage on the connected Ray cluster and register the result."""
    spec = spec or default_spec()
    kinds = [member_kind(name) for name in options.members]
    run_name = f"train-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    bars = load_training_bars(
        settings, spec, path=options.data, start=options.start, end=options.end
    )
    window = data_window(bars, options.data)
    progress(
        "data",
        f"{window['source']} {window['first']}..{window['last']}, {window['rows']} bars, "
        f"sha256 {str(window['file_sha256'])[:12]}",
    )
    lap("data")
    data = build_dataset(
        bars,
        spec,
        horizon=settings.horizon,
        holdout_fraction=settings.holdout_fraction,
        cv_splits=settings.cv_splits,
    )
    dev_dates, hold_dates = data.features.index[data.development], data.features.index[data.holdout]
    progress(
        "features",
        f"{len(spec.names)} features x {len(data.features)} rows (spec {spec.hash[:12]}); "
        f"development {len(data.development)} rows to {dev_dates[-1].date()}, "
        f"hold-out {len(data.holdout)} rows {hold_dates[0].date()}..{hold_dates[-1].date()}, "
        f"{len(data.folds)} walk-forward folds",
    )
    lap("features")

    x_dev, y_dev = data.x(data.development), data.y(data.development)
    tuned = tune_members(
        kinds,
        x=x_dev,
        y=y_dev,
        folds=data.folds,
        trials=options.trials,
        seed=settings.train_seed,
        cpus=settings.train_trial_cpus,
        storage=settings.tune_storage,
        run_name=run_name,
        progress=progress,
    )
    for t in tuned:
        progress("tune", f"{t.name} best: cv rmse {t.cv_rmse:.5f}")
    lap("tune")

    progress("fit", f"fitting {', '.join(t.name for t in tuned)} in parallel as Ray tasks")
    estimators = fit_members(
        {t.name: t.params for t in tuned},
        x_dev,
        y_dev,
        seed=settings.train_seed,
        cpus=settings.train_trial_cpus,
    )
    lap("fit")
    oof = {t.name: t.oof for t in tuned}
    weights = learn_weights(oof, y_dev)
    progress("weights", ", ".join(f"{n} {w:.3f}" for n, w in weights.items()) + " (out-of-fold)")

    report, png = evaluation_report(data, estimators, weights, settings)
    report["cv"] = {t.name: {"rmse": t.cv_rmse, "params": t.params} for t in tuned}
    report["weights"] = weights
    report["data_window"] = window
    report["spec_hash"] = spec.hash
    model = report["model"]["statistical"]
    progress(
        "evaluate",
        f"hold-out rmse {model['rmse']:.5f}, directional accuracy "
        f"{_fmt(model['directional_accuracy'])}, IC {_fmt(model['information_coefficient'])}, "
        f"Sharpe {report['model']['financial']['sharpe']:.2f}",
    )
    progress("verdict", report["summary"])
    importances = feature_importances(data, estimators, weights, seed=settings.train_seed)
    reference = reference_sample(data, oof, weights, settings.reference_rows)
    lap("evaluate")

    registry = Registry(settings)
    metrics = metrics_for_mlflow(report) | {
        **{f"cv_rmse/{t.name}": t.cv_rmse for t in tuned},
        **{f"weight/{n}": w for n, w in weights.items()},
    }
    registration = registry.register(
        BundleContents(
            model_name=registry.name,
            spec=spec,
            estimators=estimators,
            weights=weights,
            intercept=0.0,
            horizon=settings.horizon,
            evaluation=report,
            importances=importances,
            data_window=window,
            reference=reference,
            equity_curve_png=png,
            parity_rows=data.x(data.holdout),
        ),
        params=_params(settings, options, tuned, window),
        metrics=metrics | {f"seconds/{k}": v for k, v in timings.items()},
        tags=_tags(report, spec, window, options),
        input_example=reference.loc[:, spec.names].iloc[-5:],
        run_name=run_name,
    )
    lap("register")
    progress("timings", ", ".join(f"{stage} {s:.1f}s" for stage, s in timings.items()))
    parity = ", ".join(f"{n} {d:.1e}" for n, d in registration.onnx_max_abs_diff.items())
    progress(
        "onnx",
        f"max |onnx - native| on the hold-out: {parity} (tolerance {settings.onnx_tolerance:g})",
    )
    progress(
        "register",
        f"{registry.name} version {registration.version}, aliases "
        f"{', '.join(registration.aliases)}; "
        + (
            "beats all baselines"
            if report["beats_all_baselines"]
            else "does NOT beat all baselines"
        ),
    )
    return registration


def _params(
    settings: Settings, options: TrainOptions, tuned: list[Any], window: dict[str, Any]
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "trials": options.trials,
        "members": ",".join(options.members),
        "cv_splits": settings.cv_splits,
        "horizon": settings.horizon,
        "holdout_fraction": settings.holdout_fraction,
        "seed": settings.train_seed,
        "cost_bps": settings.cost_bps,
        "data_source": window["source"],
        "data_first": window["first"],
        "data_last": window["last"],
    }
    for t in tuned:
        params.update({f"{t.name}.{k}": v for k, v in t.params.items()})
    return params


def _tags(
    report: dict[str, Any], spec: FeatureSpec, window: dict[str, Any], options: TrainOptions
) -> dict[str, str]:
    return {
        "beats_baselines": str(report["beats_all_baselines"]).lower(),
        "baselines_beaten": ",".join(report["baselines_beaten"]) or "none",
        "baselines_not_beaten": ",".join(report["baselines_not_beaten"]) or "none",
        "spec_hash": spec.hash,
        "members": ",".join(options.members),
        "data_source": str(window["source"]),
        "data_window": f"{window['first']}..{window['last']}",
        "data_sha256": str(window["file_sha256"]),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"
