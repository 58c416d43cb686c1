"""Ray Tune over walk-forward folds: each trial fits one member per fold and reports as it goes.

All members are searched in one Tune experiment (`trials` samples per member, the member a grid
dimension), so trials of different members share the cluster's CPUs and Tune's actors.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import tune
from ray.tune.search import BasicVariantGenerator

from driftline.splits import Fold
from training.members import MemberKind, member_kind
from training.progress import Progress, TuneProgress
from training.resources import SchedulingWatchdog

Array = npt.NDArray[np.float64]
OOF_FILE = "oof.npy"


@dataclass(frozen=True)
class TunedMember:
    """A member's best parameters, its pooled out-of-fold RMSE and out-of-fold predictions."""

    name: str
    params: dict[str, Any]
    cv_rmse: float
    oof: Array  # one entry per development row; NaN where no fold validated it


def fold_trial(config: dict[str, Any], *, seed: int, x: Array, y: Array, folds: list[Fold]) -> None:
    """Fit the configured member fold by fold, reporting the pooled out-of-fold RMSE."""
    name = config["member"]
    kind, params = member_kind(name), config[name]
    oof = np.full(y.shape, np.nan)
    for number, fold in enumerate(folds, start=1):
        started = time.perf_counter()
        estimator = kind.build(params, seed).fit(x[fold.train], y[fold.train])
        oof[fold.validation] = estimator.predict(x[fold.validation])
        seen = np.isfinite(oof)
        metrics = {
            "fold": number,
            "folds": len(folds),
            "rmse": float(np.sqrt(np.mean((oof[seen] - y[seen]) ** 2))),
            "fold_seconds": time.perf_counter() - started,
        }
        if number < len(folds):
            tune.report(metrics)
            continue
        # The last report carries the out-of-fold predictions the ensemble weights learn from.
        with tempfile.TemporaryDirectory() as directory:
            np.save(Path(directory) / OOF_FILE, oof)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def search_space(kinds: Sequence[MemberKind]) -> dict[str, Any]:
    """The member as a grid dimension, and each member's own space under its name."""
    return {"member": tune.grid_search([k.name for k in kinds])} | {
        k.name: k.space() for k in kinds
    }


def tune_members(
    kinds: Sequence[MemberKind],
    *,
    x: Array,
    y: Array,
    folds: list[Fold],
    trials: int,
    seed: int,
    cpus: float,
    storage: str,
    run_name: str,
    progress: Progress,
) -> list[TunedMember]:
    """Search each member's space with `trials` random samples; keep each one's lowest CV RMSE."""
    trainable = tune.with_resources(
        tune.with_parameters(fold_trial, seed=seed, x=x, y=y, folds=folds), {"cpu": cpus}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(kinds),
        tune_config=tune.TuneConfig(
            num_samples=trials,
            search_alg=BasicVariantGenerator(random_state=seed),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=storage,
            verbose=0,
            callbacks=[TuneProgress(progress, trials, len(kinds)), SchedulingWatchdog(cpus)],
        ),
    )
    results = tuner.fit()
    if results.errors:
        failed = len(results.errors)
        raise RuntimeError(f"{failed} tuning trial(s) failed; first: {results.errors[0]}")
    best: dict[str, Any] = {}
    for index in range(len(results)):
        result = results[index]
        assert result.config is not None
        assert result.metrics is not None
        name = result.config["member"]
        if name not in best or result.metrics["rmse"] < best[name].metrics["rmse"]:
            best[name] = result
    tuned = []
    for kind in kinds:
        result = best[kind.name]
        assert result.checkpoint is not None
        with result.checkpoint.as_directory() as directory:
            oof = np.load(Path(directory) / OOF_FILE)
        tuned.append(
            TunedMember(kind.name, dict(result.config[kind.name]), result.metrics["rmse"], oof)
        )
    # Trial files are scratch: the run's evidence goes to MLflow.
    shutil.rmtree(Path(storage) / run_name, ignore_errors=True)
    return tuned
