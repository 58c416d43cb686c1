"""Offline comparison of two date ranges of one bar history: `driftline drift compare`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd

from driftline.drift.calibration import CalibrationError, calibrate
from driftline.drift.detectors import FeatureDrift, JointDrift
from driftline.drift.errors import DriftInputError
from driftline.drift.report import DriftReport
from driftline.drift.severity import grade
from driftline.drift.window import Baseline, Window
from driftline.features import FeatureSpec, compute_matrix


@dataclass(frozen=True, slots=True)
class DateRange:
    """An inclusive range of dates, `START:END` on the command line."""

    start: date
    end: date

    @classmethod
    def parse(cls, text: str) -> DateRange:
        """`YYYY-MM-DD:YYYY-MM-DD`; empty or reversed ranges are refused."""
        parts = text.split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise DriftInputError(f"range {text!r} must be START:END, e.g. 2004-01-01:2005-06-30")
        try:
            start, end = (date.fromisoformat(p.strip()) for p in parts)
        except ValueError:
            raise DriftInputError(f"range {text!r}: dates must be YYYY-MM-DD") from None
        if end < start:
            raise DriftInputError(f"range {text!r} is reversed: {end} is before {start}")
        return cls(start, end)

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of `frame` (date-indexed) inside the range."""
        index = pd.DatetimeIndex(frame.index)
        mask = (index >= pd.Timestamp(self.start)) & (index <= pd.Timestamp(self.end))
        return frame.loc[mask]

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"


def compare(
    bars: pd.DataFrame,
    spec: FeatureSpec,
    reference: DateRange,
    current: DateRange,
    *,
    detector: FeatureDrift,
    model_name: str = "offline",
    model_version: str = "",
    bins: int = 10,
    null_windows: int = 200,
) -> DriftReport:
    """Feature and joint drift of `current` against `reference`, calibrated on the reference.

    The same detectors and severity rules as the live monitor's, so that one window grades
    alike on both paths when the references are alike.
    """
    for label, rng in (("reference", reference), ("current", current)):
        # Refuse empty or short ranges before computing seconds of indicators.
        if len(rng.select(bars)) < detector.min_rows:
            raise DriftInputError(
                f"{label} range {rng} has {len(rng.select(bars))} bars; at least "
                f"{detector.min_rows} are needed"
            )
    start = min(reference.start, current.start)
    end = max(reference.end, current.end)
    # Indicators need `spec.window` bars of history before the first row they describe.
    position = int(pd.DatetimeIndex(bars.index).searchsorted(pd.Timestamp(start)))
    needed = bars.iloc[max(0, position - spec.window + 1) :]
    needed = needed.loc[pd.DatetimeIndex(needed.index) <= pd.Timestamp(end)]
    matrix = compute_matrix(needed, spec) if len(needed) >= spec.window else needed.iloc[:0]
    ref_rows = reference.select(matrix)
    cur_rows = current.select(matrix)
    for label, rng, rows in (("reference", reference, ref_rows), ("current", current, cur_rows)):
        if len(rows) < detector.min_rows:
            raise DriftInputError(
                f"{label} range {rng} has {len(rows)} feature rows; at least "
                f"{detector.min_rows} are needed (each row needs {spec.window} bars of history)"
            )
    try:
        return compare_rows(
            ref_rows,
            cur_rows,
            detector=detector,
            model_name=model_name,
            model_version=model_version,
            bins=bins,
            null_windows=null_windows,
        )
    except CalibrationError as error:
        raise DriftInputError(f"reference range {reference}: {error}") from None


def compare_rows(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    detector: FeatureDrift,
    model_name: str = "offline",
    model_version: str = "",
    bins: int = 10,
    null_windows: int = 200,
) -> DriftReport:
    """`compare` on feature rows already computed (date-indexed); CalibrationError if too short."""
    null = calibrate(reference, len(current), bins=bins, max_windows=null_windows)
    window = Window(
        features=current,
        start=_utc(current.index[0]),
        end=_utc(current.index[-1]),
    )
    baseline = Baseline(reference=reference, null=null)
    results = (
        detector.detect(window, baseline),
        JointDrift(min_rows=detector.min_rows).detect(window, baseline),
    )
    severity, recommendation, reasons = grade(results)
    return DriftReport(
        model_name=model_name,
        model_version=model_version,
        severity=severity,
        recommendation=recommendation,
        reasons=reasons,
        results=results,
        n_rows=len(current),
        window_start=window.start,
        window_end=window.end,
    )


def _utc(value: object) -> datetime:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return (
        stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    ).to_pydatetime()
