"""The bars a training run learns from: validated, cut to a date window, and long enough.

Shared by `driftline train` (which validates locally before submitting anything) and the
training job, so both refuse the same data with the same one-line error.
"""

from __future__ import annotations

import hashlib
import importlib.util
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from driftline.config import Settings
from driftline.data import DEFAULT_SOURCE, DataValidationError, load_bars
from driftline.features import FeatureSpec


def minimum_bars(spec: FeatureSpec, *, horizon: int, min_rows: int) -> int:
    """Bars needed for `min_rows` feature rows with a full window and a known label."""
    return spec.window - 1 + min_rows + horizon


def load_training_bars(
    settings: Settings,
    spec: FeatureSpec,
    *,
    path: Path | None,
    start: date | None = None,
    end: date | None = None,
) -> pd.DataFrame:
    """Validated bars from `path` (default: the bundled S&P 500) between `start` and `end`."""
    needed = minimum_bars(
        spec, horizon=settings.training.horizon, min_rows=settings.training.min_rows
    )
    bars = load_bars(path, min_rows=needed, max_gap_days=settings.data.max_gap_days)
    window = bars.loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
    if len(window) < needed:
        span = f"between {start or 'the start'} and {end or 'the end'}"
        raise DataValidationError(
            f"{source_name(path)}: {len(window)} bars {span}; training needs at least {needed} "
            f"({spec.window}-bar feature window, {settings.training.min_rows} rows, "
            f"horizon {settings.training.horizon})"
        )
    return window


def source_name(path: Path | None) -> str:
    """How data from `path` is named in errors and in a version's data window."""
    return path.name if path is not None else DEFAULT_SOURCE


def data_window(bars: pd.DataFrame, path: Path | None) -> dict[str, Any]:
    """Where the bars came from: source, first/last date, rows and the source file's sha256."""
    file = path if path is not None else default_data_file()
    return {
        "source": source_name(path),
        "path": str(file.resolve()) if file else None,
        "first": bars.index[0].date().isoformat(),
        "last": bars.index[-1].date().isoformat(),
        "rows": len(bars),
        "file_sha256": file_sha256(file) if file else None,
    }


def default_data_file() -> Path | None:
    """The file `arch` ships the S&P 500 bars in, found without importing `arch` (slow)."""
    found = importlib.util.find_spec("arch")
    if found is None or not found.submodule_search_locations:
        return None
    root = Path(next(iter(found.submodule_search_locations)))
    path = root / "data" / "sp500" / "sp500.csv.gz"
    return path if path.is_file() else None


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
