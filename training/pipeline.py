"""The training run, stage by stage: data, features, tuning, fitting, weights, evaluation."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
from training.dataset import Dataset, build_dataset
from training.ensemble import INTERCEPT, learn_weights
from training.fitting import fit_members
from training.members import member_kind
from training.progress import Progress
from training.resources import cluster_cpus, trial_cpus
from training.tuning import TunedMember, tune_members


@dataclass(frozen=True)
class TrainOptions:
    """What to train on and how hard to search."""

    data: Path | None = None
    start: date | None = None
    end: date | None = None
    trials: int = 8
    members: tuple[str, ...] = ("rf", "xgb")


@dataclass
class Stopwatch:
    """Seconds spent in each stage, in order."""

    laps: dict[str, float] = field(default_factory=dict)
    _mark: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        """Close `stage` at now."""
        now = time.perf_counter()
        self.laps[stage] = now - self._mark
        self._mark = now


@dataclass(frozen=True)
class Assessment:
    """What the run is judged and remembered by."""

    report: dict[str, Any]
    equity_png: bytes
    importances: dict[str, Any]
    reference: pd.DataFrame


def train(
    settings: Settings,
    options: TrainOptions,
    progress: Progress,
    *,
    spec: FeatureSpec | None = None,
) -> Registration:
    """Run every stage on the connected Ray cluster and register the result."""
    spec = spec or default_spec()
    run_name = f"train-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    watch = Stopwatch()
    bars = load_training_bars(
        settings, spec, path=options.data, start=options.start, end=options.end
    )
    window = data_window(bars, options.data)
    progress(
        "data",
        f"{window['source']} {window['first']}..{window['last']}, {window['rows']} bars, "
        f"sha256 {str(window['file_sha256'])[:12]}",
    )
    watch.lap("data")
    data = _features(bars, spec, settings, progress)
    watch.lap("features")
    x_dev, y_dev = data.x(data.development), data.y(data.development)
    cluster = cluster_cpus()
    cpus = trial_cpus(settings.training.trial_cpus, cluster)
    progress("resources", f"{cpus:g} CPUs per trial and fit ({cluster.describe()})")
    tuned = tune_members(
        [member_kind(name) for name in options.members],
        x=x_dev,
        y=y_dev,
        folds=data.folds,
        trials=options.trials,
        seed=settings.training.seed,
        cpus=cpus,
        storage=settings.tune_storage,
        run_name=run_name,
        progress=progress,
    )
    for t in tuned:
        progress("tune", f"{t.name} best: cv rmse {t.cv_rmse:.5f}")
    watch.lap("tune")
    progress("fit", f"fitting {', '.join(t.name for t in tuned)} in parallel as Ray tasks")
    estimators = fit_members(
        {t.name: t.params for t in tuned},
        x_dev,
        y_dev,
        seed=settings.training.seed,
        cpus=cpus,
    )
    watch.lap("fit")
    weights = learn_weights({t.name: t.oof for t in tuned}, y_dev)
    progress("weights", ", ".join(f"{n} {w:.3f}" for n, w in weights.items()) + " (out-of-fold)")
    assessment = _assess(
        data, estimators, weights, tuned=tuned, settings=settings, progress=progress
    )
    assessment.report.update(data_window=window, spec_hash=spec.hash)
    watch.lap("evaluate")
    registration = _register(
        settings,
        spec=spec,
        estimators=estimators,
        weights=weights,
        assessment=assessment,
        data=data,
        tuned=tuned,
        options=options,
        run_name=run_name,
        watch=watch,
    )
    watch.lap("register")
    _announce(registration, assessment.report, settings, watch, progress)
    return registration


def _features(
    bars: pd.DataFrame, spec: FeatureSpec, settings: Settings, progress: Progress
) -> Dataset:
    data = build_dataset(
        bars,
        spec,
        horizon=settings.training.horizon,
        holdout_fraction=settings.training.holdout_fraction,
        cv_splits=settings.training.cv_splits,
    )
    dev, hold = data.features.index[data.development], data.features.index[data.holdout]
    progress(
        "features",
        f"{len(spec.names)} features x {len(data.features)} rows (spec {spec.hash[:12]}); "
        f"development {len(dev)} rows to {dev[-1].date()}, "
        f"hold-out {len(hold)} rows {hold[0].date()}..{hold[-1].date()}, "
        f"{len(data.folds)} walk-forward folds",
    )
    return data


def _assess(
    data: Dataset,
    estimators: dict[str, Any],
    weights: dict[str, float],
    *,
    tuned: list[TunedMember],
    settings: Settings,
    progress: Progress,
) -> Assessment:
    report, png = evaluation_report(data, estimators, weights, settings)
    report["cv"] = {t.name: {"rmse": t.cv_rmse, "params": t.params} for t in tuned}
    report["weights"] = weights
    model = report["model"]["statistical"]
    progress(
        "evaluate",
        f"hold-out rmse {model['rmse']:.5f}, directional accuracy "
        f"{_fmt(model['directional_accuracy'])}, IC {_fmt(model['information_coefficient'])}, "
        f"Sharpe {report['model']['financial']['sharpe']:.2f}",
    )
    progress("verdict", report["summary"])
    importances = feature_importances(data, estimators, weights, seed=settings.training.seed)
    oof = {t.name: t.oof for t in tuned}
    reference = reference_sample(data, oof, weights, settings.training.reference_rows)
    return Assessment(report, png, importances, reference)


def _register(
    settings: Settings,
    *,
    spec: FeatureSpec,
    estimators: dict[str, Any],
    weights: dict[str, float],
    assessment: Assessment,
    data: Dataset,
    tuned: list[TunedMember],
    options: TrainOptions,
    run_name: str,
    watch: Stopwatch,
) -> Registration:
    registry = Registry(settings)
    report = assessment.report
    metrics = metrics_for_mlflow(report) | {
        **{f"cv_rmse/{t.name}": t.cv_rmse for t in tuned},
        **{f"weight/{n}": w for n, w in weights.items()},
        **{f"seconds/{k}": v for k, v in watch.laps.items()},
    }
    return registry.register(
        BundleContents(
            model_name=registry.name,
            spec=spec,
            estimators=estimators,
            weights=weights,
            intercept=INTERCEPT,
            horizon=settings.training.horizon,
            evaluation=report,
            importances=assessment.importances,
            data_window=report["data_window"],
            reference=assessment.reference,
            equity_curve_png=assessment.equity_png,
            parity_rows=data.x(data.holdout),
        ),
        params=_params(settings, options, tuned, report["data_window"]),
        metrics=metrics,
        tags=_tags(report, spec, options),
        input_example=assessment.reference.loc[:, spec.names].iloc[-5:],
        run_name=run_name,
    )


def _announce(
    registration: Registration,
    report: dict[str, Any],
    settings: Settings,
    watch: Stopwatch,
    progress: Progress,
) -> None:
    parity = ", ".join(f"{n} {d:.1e}" for n, d in registration.onnx_max_abs_diff.items())
    tolerance = settings.rollout.gates.onnx_tolerance
    progress("onnx", f"max |onnx - native| on the hold-out: {parity} (tolerance {tolerance:g})")
    verdict = (
        "beats all baselines"
        if report["beats_all_baselines"]
        else (
            "does NOT beat all baselines (beats: "
            + (", ".join(report["baselines_beaten"]) or "none")
            + ")"
        )
    )
    progress(
        "register",
        f"{settings.registry.model_name} version {registration.version}, aliases "
        f"{', '.join(registration.aliases)}; {verdict}",
    )
    progress("timings", ", ".join(f"{stage} {s:.1f}s" for stage, s in watch.laps.items()))


def _params(
    settings: Settings, options: TrainOptions, tuned: list[TunedMember], window: dict[str, Any]
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "trials": options.trials,
        "members": ",".join(options.members),
        "cv_splits": settings.training.cv_splits,
        "horizon": settings.training.horizon,
        "holdout_fraction": settings.training.holdout_fraction,
        "seed": settings.training.seed,
        "cost_bps": settings.training.cost_bps,
        "data_source": window["source"],
        "data_first": window["first"],
        "data_last": window["last"],
    }
    for t in tuned:
        params.update({f"{t.name}.{k}": v for k, v in t.params.items()})
    return params


def _tags(report: dict[str, Any], spec: FeatureSpec, options: TrainOptions) -> dict[str, str]:
    window = report["data_window"]
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
