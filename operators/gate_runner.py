"""Runs the offline gates: loads both bundles and the bars, scores the latest walk-forward window.

The window is the candidate's hold-out (the bars after its development period, which neither its
tuning nor its fit saw), cut to its last `window_bars` bars with a known outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import Settings
from operators import gates
from operators.observe import one_line
from operators.runtimes.base import RuntimeOperationError
from operators.spec import GatePolicy
from operators.states import GateResult

Array = gates.Array


class OfflineGates:
    """Every offline gate of one candidate, via the registry (only `driftline.registry` calls
    MLflow) and the configured bars."""

    def __init__(
        self,
        settings: Settings,
        policy: GatePolicy,
        *,
        bars: Callable[[], pd.DataFrame] | None = None,
        latency_samples: int = 50,
        latency_rounds: int = 3,
    ) -> None:
        self.settings, self.policy = settings, policy
        self._bars = bars or self._load_bars
        self.latency_samples, self.latency_rounds = latency_samples, latency_rounds

    def run(self, version: str, champion_version: str) -> tuple[GateResult, ...]:
        """Verdicts on `version` against `champion_version`; a registry outage raises."""
        from driftline.registry import EnsemblePredictor  # noqa: PLC0415 - MLflow imports slowly

        candidate, error = self._load(version)
        if candidate is None:
            return (gates.artifact_gate(error),)
        allow_native = self.settings.registry.allow_native_members
        try:
            fast = EnsemblePredictor(candidate, allow_native=allow_native)
            # Unpickling native members only where allowed; else registration's parity stands.
            native = EnsemblePredictor(candidate, prefer_onnx=False) if allow_native else None
        except Exception as failure:
            return (gates.artifact_gate(one_line(failure)),)
        results = [gates.artifact_gate(None, members=len(candidate.members))]
        window = self._guard("smoke", lambda: self._window(candidate))
        if isinstance(window, GateResult):
            return (*results, window)
        rows, target, previous, train_mean = window
        predicted = self._guard("smoke", lambda: fast.predict(rows)[0])
        if isinstance(predicted, GateResult):
            return (*results, predicted)
        results.append(gates.smoke_gate(np.asarray(predicted, dtype=np.float64), len(rows)))
        results.append(
            self._guard("onnx_parity", lambda: self._parity(candidate, native, rows, predicted))
        )
        results.append(self._guard("latency", lambda: self._latency(fast, rows)))
        loss = (np.asarray(predicted, dtype=np.float64) - target) ** 2
        horizon = int(getattr(candidate, "horizon", self.settings.training.horizon))
        scored = self._guard(
            "beats_champion", lambda: self._champion_loss(champion_version, rows.index, target)
        )
        if isinstance(scored, GateResult):
            return (*results, scored)
        usable, champion_loss = scored
        results.append(
            gates.champion_gate(
                loss[usable], champion_loss, self.policy.test, self.policy.alpha, horizon=horizon
            )
        )
        if self.policy.require_baselines:
            baselines = {
                "zero_return": target**2,
                "previous_return": (previous - target) ** 2,
                "buy_and_hold": (train_mean - target) ** 2,
            }
            results.append(
                gates.baselines_gate(
                    loss[usable],
                    champion_loss,
                    {name: b[usable] for name, b in baselines.items()},
                    self.policy.test,
                    horizon=horizon,
                )
            )
        return tuple(results)

    # --- pieces -----------------------------------------------------------------------------
    def _load(self, version: str) -> tuple[Any, str | None]:
        from driftline.registry import ModelNotFoundError, Registry  # noqa: PLC0415

        try:
            return Registry(self.settings).load_bundle(version), None
        except ModelNotFoundError as missing:
            return None, one_line(missing)
        except Exception as error:
            if _unreachable(error):
                raise RuntimeOperationError(f"registry unreachable: {one_line(error)}") from None
            return None, one_line(error)  # downloaded but unreadable: a corrupt artifact

    def _window(self, bundle: Any) -> tuple[pd.DataFrame, Array, Array, float]:
        from driftline.features import compute_matrix  # noqa: PLC0415
        from driftline.targets import forward_log_return  # noqa: PLC0415

        bars = self._bars()
        horizon = int(getattr(bundle, "horizon", self.settings.training.horizon))
        features = compute_matrix(bars, bundle.spec)
        close = bars["close"]
        target = forward_log_return(close, horizon).reindex(features.index)
        log_close = pd.Series(np.log(close.to_numpy(dtype=np.float64)), index=close.index)
        previous = log_close.diff(horizon).reindex(features.index)
        holdout = (bundle.evaluation or {}).get("holdout") or {}
        development = (bundle.evaluation or {}).get("development") or {}
        known = target.notna() & previous.notna() & features.notna().all(axis=1)
        if holdout.get("first"):
            known &= features.index >= pd.Timestamp(holdout["first"])
        rows = features[known].tail(self.policy.window_bars)
        if len(rows) < 20:
            raise ValueError(f"only {len(rows)} bars with outcomes in the latest window")
        dev = target.loc[: pd.Timestamp(development["last"])] if development.get("last") else target
        train_mean = float(dev.dropna().mean())
        return (
            rows,
            target.loc[rows.index].to_numpy(dtype=np.float64),
            previous.loc[rows.index].to_numpy(dtype=np.float64),
            train_mean,
        )

    def _parity(self, bundle: Any, native: Any, rows: pd.DataFrame, predicted: Any) -> GateResult:
        tolerance = self.policy.onnx_tolerance
        if native is None:
            recorded = {m.name: m.onnx_max_abs_diff for m in bundle.members}
            return gates.recorded_parity_gate(recorded, tolerance)
        has_onnx = any(m.onnx_path is not None for m in bundle.members)
        return gates.parity_gate(
            np.asarray(native.predict(rows)[0], dtype=np.float64),
            np.asarray(predicted, dtype=np.float64) if has_onnx else None,
            tolerance,
        )

    def _latency(self, predictor: Any, rows: pd.DataFrame) -> GateResult:
        one = rows.iloc[[-1]]
        for _ in range(3):
            predictor.predict(one)  # warm up sessions and caches
        samples = np.empty((self.latency_rounds, self.latency_samples))
        for cell in np.ndindex(samples.shape):
            start = time.perf_counter()
            predictor.predict(one)
            samples[cell] = (time.perf_counter() - start) * 1000
        return gates.latency_gate(samples, self.policy.latency_budget_ms)

    def _champion_loss(self, version: str, dates: pd.Index, target: Array) -> tuple[Array, Array]:
        """The rows the champion can score, and its squared error on them."""
        from driftline.features import compute_matrix  # noqa: PLC0415
        from driftline.registry import EnsemblePredictor, Registry  # noqa: PLC0415

        champion = Registry(self.settings).load_bundle(version)
        features = compute_matrix(self._bars(), champion.spec).reindex(dates)
        usable = features.notna().all(axis=1).to_numpy()
        predictor = EnsemblePredictor(
            champion, allow_native=self.settings.registry.allow_native_members
        )
        predicted = predictor.predict(features[usable])[0]
        loss = (np.asarray(predicted, dtype=np.float64) - target[usable]) ** 2
        return usable, np.asarray(loss, dtype=np.float64)

    def _guard(self, name: str, compute: Callable[[], Any]) -> Any:
        try:
            return compute()
        except RuntimeOperationError:
            raise
        except Exception as error:
            if _unreachable(error):
                raise RuntimeOperationError(f"registry unreachable: {one_line(error)}") from None
            return GateResult(name, False, f"could not be evaluated: {one_line(error)}")

    def _load_bars(self) -> pd.DataFrame:
        from driftline.data import load_bars  # noqa: PLC0415

        bars: pd.DataFrame = load_bars(self.settings.data.path)
        return bars


def _unreachable(error: BaseException) -> bool:
    """Connection trouble (retry later), as opposed to a bad artifact (reject now)."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(
        word in text
        for word in (
            "connection refused",
            "connectionerror",
            "timed out",
            "max retries",
            "unreachable",
        )
    )
