"""What detectors compare: a window of live data and the model version's baseline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.drift.calibration import NullModel

PREDICTION = "prediction"
TARGET = "target"


@dataclass(frozen=True, slots=True)
class Window:
    """Live rows in time order: features, ensemble outputs, and outcomes where they are known.

    `outcomes` has columns `prediction` and `target` (realised value), one row per prediction
    whose outcome has arrived.
    """

    features: pd.DataFrame
    predictions: npt.NDArray[np.float64] | None = None
    outcomes: pd.DataFrame | None = None
    start: datetime | None = None
    end: datetime | None = None

    @property
    def n_rows(self) -> int:
        """Feature rows in the window."""
        return len(self.features)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A model version's reference block, its null model and its evaluation report."""

    reference: pd.DataFrame
    null: NullModel
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Calibrated feature columns (the prediction column excluded)."""
        return [n for n in self.null.names if n != PREDICTION]
