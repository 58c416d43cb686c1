"""Store-backed sources: drift reports and paired losses of two versions on the same requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from driftline.contracts import Severity
from operators.observations import DriftSignal
from operators.observe import Losses


class DriftReports(Protocol):
    """What the store's drift owner offers the controller."""

    def drift_reports(self, *, model_name: str | None = ..., limit: int = ...) -> list[Any]:
        """Reports, newest first."""
        ...


class PairedOutcomes(Protocol):
    """Paired predictions of two versions with their realised outcomes."""

    def paired_outcomes(
        self, model_name: str, version_a: str, version_b: str, *, since: datetime
    ) -> list[tuple[float, float, float]]:
        """(prediction of a, prediction of b, outcome) per request answered by both."""
        ...


class StoreDriftSource:
    """Recent drift reports from the store, oldest first."""

    def __init__(self, store: DriftReports) -> None:
        self.store = store

    def recent(self, model_name: str, limit: int) -> Sequence[DriftSignal]:
        reports = self.store.drift_reports(model_name=model_name, limit=limit)
        return [
            DriftSignal(str(r.report_id), _severity(str(r.severity)), r.created_at)
            for r in reversed(reports)
        ]


class StorePairedLosses:
    """Squared errors of the candidate and the champion on requests both scored."""

    def __init__(self, store: PairedOutcomes) -> None:
        self.store = store

    def losses(
        self, model_name: str, candidate: str, champion: str, since: datetime
    ) -> tuple[Losses, Losses]:
        rows = self.store.paired_outcomes(model_name, candidate, champion, since=since)
        if not rows:
            empty = np.zeros(0, dtype=np.float64)
            return empty, empty
        data = np.asarray(rows, dtype=np.float64)
        candidate_loss: Losses = np.square(data[:, 0] - data[:, 2])
        champion_loss: Losses = np.square(data[:, 1] - data[:, 2])
        return candidate_loss, champion_loss


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError:
        return Severity.NONE
