"""Load OHLCV bars from CSV, Parquet or the bundled S&P 500 set; refuse bad data in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
DEFAULT_SOURCE = "arch:sp500"


class DataValidationError(ValueError):
    """Bars that break a rule; the message is one line naming the source, row and rule."""


def load_bars(
    path: Path | str | None = None, *, min_rows: int = 2, max_gap_days: int | None = 14
) -> pd.DataFrame:
    """Validated bars from `path` (CSV or Parquet), or the S&P 500 daily bars `arch` ships."""
    if path is None:
        return validate_bars(
            _arch_sp500(), DEFAULT_SOURCE, min_rows=min_rows, max_gap_days=max_gap_days
        )
    path = Path(path)
    return validate_bars(read_table(path), path.name, min_rows=min_rows, max_gap_days=max_gap_days)


def read_table(path: Path) -> pd.DataFrame:
    """The raw table in `path`, every column as read; dates stay unparsed."""
    if not path.is_file():
        raise DataValidationError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if suffix in {".csv", ".txt"}:
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataValidationError(f"{path.name}: unreadable: {_first_line(error)}") from None
    raise DataValidationError(
        f"{path.name}: unsupported file type {suffix!r} (use .csv or .parquet)"
    )


def validate_bars(
    raw: pd.DataFrame, source: str, *, min_rows: int = 2, max_gap_days: int | None = 14
) -> pd.DataFrame:
    """Bars indexed by date with float64 OHLCV columns, or a DataValidationError naming the row."""
    table = _normalise_columns(raw.reset_index() if _has_named_index(raw) else raw, source)
    dates = _parse_dates(table["date"], source)
    values = _parse_numbers(table, source)
    _check_order(dates, source)
    _check_prices(values, dates, source)
    if max_gap_days is not None:
        _check_gaps(dates, source, max_gap_days)
    if len(values) < min_rows:
        raise DataValidationError(
            f"{source}: {len(values)} rows; at least {min_rows} are needed "
            "(the longest indicator's window plus the target horizon)"
        )
    bars = pd.DataFrame(values, columns=list(COLUMNS), index=pd.DatetimeIndex(dates, name="date"))
    return bars


def _arch_sp500() -> pd.DataFrame:
    import arch.data.sp500  # noqa: PLC0415  (imported on demand: arch is slow to import)

    return arch.data.sp500.load()


def _has_named_index(raw: pd.DataFrame) -> bool:
    return raw.index.name is not None and str(raw.index.name).strip().lower() == "date"


def _normalise_columns(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    by_name = {str(c).strip().lower(): c for c in raw.columns}
    missing = [c for c in ("date", *COLUMNS) if c not in by_name]
    if missing:
        raise DataValidationError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            "expected Date, Open, High, Low, Close, Volume (any case)"
        )
    table = raw[[by_name[c] for c in ("date", *COLUMNS)]]
    table.columns = ["date", *COLUMNS]
    return table.reset_index(drop=True)


def _row(source: str, index: int, date: Any = None) -> str:
    # Row numbers count data rows from 1, so they match a spreadsheet view below the header.
    when = f", {pd.Timestamp(date).date()}" if date is not None and not pd.isna(date) else ""
    return f"{source}: row {index + 1}{when}"


def _parse_dates(column: pd.Series[Any], source: str) -> npt.NDArray[Any]:
    text = [str(value).strip() for value in column]
    blank = np.array([t == "" for t in text]) | column.isna().to_numpy()
    if blank.any():
        raise DataValidationError(f"{_row(source, int(np.argmax(blank)))}: missing date")
    parsed = pd.to_datetime(column, errors="coerce", utc=False)
    bad = parsed.isna()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataValidationError(f"{_row(source, i)}: unparseable date {text[i]!r}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _parse_numbers(table: pd.DataFrame, source: str) -> npt.NDArray[Any]:
    values = np.empty((len(table), len(COLUMNS)), dtype=np.float64)
    for j, name in enumerate(COLUMNS):
        raw = table[name]
        numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers)
        if bad.any():
            i = int(np.argmax(bad))
            shown = str(raw.iloc[i]).strip()
            what = "missing" if shown in {"", "nan", "NaN", "None"} else f"not a number: {shown!r}"
            raise DataValidationError(f"{_row(source, i, table['date'].iloc[i])}: {name} {what}")
        values[:, j] = numbers
    return values


def _check_order(dates: npt.NDArray[Any], source: str) -> None:
    steps = np.diff(dates).astype(np.int64)
    if (steps == 0).any():
        i = int(np.argmax(steps == 0)) + 1
        raise DataValidationError(f"{_row(source, i, dates[i])}: duplicate date")
    if (steps < 0).any():
        i = int(np.argmax(steps < 0)) + 1
        raise DataValidationError(
            f"{_row(source, i, dates[i])}: date is earlier than the row before "
            f"({pd.Timestamp(dates[i - 1]).date()}); bars must be in increasing time order"
        )


def _check_prices(values: npt.NDArray[Any], dates: npt.NDArray[Any], source: str) -> None:
    o, h, low, c, v = values.T
    rules: list[tuple[npt.NDArray[Any], str]] = [
        (values[:, :4].min(axis=1) <= 0, "non-positive price"),
        (v < 0, "negative volume"),
        (h < np.maximum(o, c), "high is below max(open, close)"),
        (low > np.minimum(o, c), "low is above min(open, close)"),
    ]
    for broken, rule in rules:
        if broken.any():
            i = int(np.argmax(broken))
            shown = ", ".join(f"{n}={x:g}" for n, x in zip(COLUMNS, values[i], strict=True))
            raise DataValidationError(f"{_row(source, i, dates[i])}: {rule} ({shown})")


def _check_gaps(dates: npt.NDArray[Any], source: str, max_gap_days: int) -> None:
    gaps = np.diff(dates) > np.timedelta64(max_gap_days, "D")
    if gaps.any():
        i = int(np.argmax(gaps)) + 1
        days = (dates[i] - dates[i - 1]) / np.timedelta64(1, "D")
        raise DataValidationError(
            f"{_row(source, i, dates[i])}: {days:.0f}-day gap since the previous bar "
            f"(more than {max_gap_days}; set DRIFTLINE_MAX_GAP_DAYS to allow it)"
        )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
