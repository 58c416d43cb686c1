"""The market windows drift grading is judged on, for the multi-market test and the peers table.

Two indices `arch` ships (S&P 500 and NASDAQ Composite, 1999-2018 daily bars) with Driftline's
default 45 features. Each window compares a current date range with a reference range:

- crash: September-December 2008 and each of 2000, 2001, 2002 against 2004-2006, and each year
  2003-2018 whose realised volatility is at least twice that of the three years before
  (2008 on both indices); expected `high` or `critical`;
- calm: July 2005-June 2006 against January 2004-June 2005, and each year 2003-2018 whose
  realised volatility stays within 0.7-1.4x that of the three years before; expected `none`
  or `low` (an alarm there is a false alarm);
- other years: no expectation (volatility compression, such as 2017, is a real change).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from driftline.contracts import Severity
from driftline.data import validate_bars
from driftline.drift.compare import DateRange, compare_rows
from driftline.drift.detectors import FeatureDrift
from driftline.drift.report import DriftReport
from driftline.features import compute_matrix, default_spec

MARKETS = ("sp500", "nasdaq")
CALM_RATIO = (0.7, 1.4)
CRASH_RATIO = 2.0
BASE = DateRange.parse("2004-01-01:2006-12-31")


@dataclass(frozen=True, slots=True)
class MarketWindow:
    """One comparison: a current range against a reference range, and what it should grade."""

    name: str
    reference: DateRange
    current: DateRange
    kind: str  # "crash", "calm" or "other"
    volatility_ratio: float

    def acceptable(self, severity: Severity) -> bool:
        """Whether `severity` is what this window should grade."""
        if self.kind == "crash":
            return severity >= Severity.HIGH
        if self.kind == "calm":
            return severity <= Severity.LOW
        return True


@cache
def bars(market: str) -> pd.DataFrame:
    """Validated daily bars of `market` (`sp500` or `nasdaq`) from the `arch` package."""
    if market not in MARKETS:
        raise ValueError(f"unknown market {market!r}; use one of {', '.join(MARKETS)}")
    loaded = importlib.import_module(f"arch.data.{market}").load()
    return validate_bars(loaded, f"arch {market}", max_gap_days=14)


@cache
def features(market: str) -> pd.DataFrame:
    """Driftline's default features of `market`, one row per bar with a full window behind it."""
    return compute_matrix(bars(market), default_spec())


def windows(market: str) -> list[MarketWindow]:
    """Every window of `market`, crash ones first."""
    ratio = _volatility_ratio(bars(market))
    out = [
        MarketWindow(
            "2008-09..12 vs 2004-06",
            BASE,
            _range("2008-09-01", "2008-12-31"),
            "crash",
            ratio(BASE, _range("2008-09-01", "2008-12-31")),
        ),
    ]
    for year in (2000, 2001, 2002):
        current = _year(year)
        out.append(MarketWindow(f"{year} vs 2004-06", BASE, current, "crash", ratio(BASE, current)))
    calm_ref, calm_cur = _range("2004-01-01", "2005-06-30"), _range("2005-07-01", "2006-06-30")
    out.append(
        MarketWindow(
            "2005-07..2006-06 vs 2004-01..2005-06",
            calm_ref,
            calm_cur,
            "calm",
            ratio(calm_ref, calm_cur),
        )
    )
    for year in range(2003, 2019):
        reference = _range(f"{year - 3}-01-01", f"{year - 1}-12-31")
        current = _year(year)
        r = ratio(reference, current)
        kind = (
            "crash"
            if r >= CRASH_RATIO
            else "calm"
            if CALM_RATIO[0] <= r <= CALM_RATIO[1]
            else "other"
        )
        out.append(MarketWindow(f"{year} vs {year - 3}-{year - 1}", reference, current, kind, r))
    return out


def driftline_report(market: str, window: MarketWindow) -> DriftReport:
    """Driftline's report on `window`, by the path `driftline drift compare` takes."""
    matrix = features(market)
    return compare_rows(
        window.reference.select(matrix), window.current.select(matrix), detector=FeatureDrift()
    )


def _volatility_ratio(frame: pd.DataFrame) -> Callable[[DateRange, DateRange], float]:
    returns = np.log(frame["close"]).diff().dropna().to_frame()

    def ratio(reference: DateRange, current: DateRange) -> float:
        return float(
            current.select(returns).iloc[:, 0].std() / reference.select(returns).iloc[:, 0].std()
        )

    return ratio


def _range(start: str, end: str) -> DateRange:
    return DateRange.parse(f"{start}:{end}")


def _year(year: int) -> DateRange:
    return _range(f"{year}-01-01", f"{year}-12-31")
