"""Loading and validating OHLCV bars: the real default set, other files, and one-line refusals."""

from __future__ import annotations

from pathlib import Path

import arch.data.nasdaq
import numpy as np
import pandas as pd
import pytest

from driftline.data import COLUMNS, DataValidationError, load_bars


@pytest.fixture(scope="module")
def sp500() -> pd.DataFrame:
    return load_bars()


@pytest.fixture
def csv_file(tmp_path: Path, sp500: pd.DataFrame) -> Path:
    """The first 300 S&P 500 bars as a CSV with the usual Yahoo-style header."""
    path = tmp_path / "bars.csv"
    frame = sp500.iloc[:300].rename(columns=str.title).rename_axis("Date")
    frame.to_csv(path)
    return path


def test_default_data_is_the_real_sp500(sp500: pd.DataFrame) -> None:
    assert len(sp500) == 5031
    assert sp500.index[0] == pd.Timestamp("1999-01-04")
    assert sp500.index[-1] == pd.Timestamp("2018-12-31")
    assert list(sp500.columns) == list(COLUMNS)
    assert all(dtype == np.float64 for dtype in sp500.dtypes)
    assert sp500.index.is_monotonic_increasing


def test_csv_and_parquet_with_any_column_case_load_the_same(
    tmp_path: Path, csv_file: Path, sp500: pd.DataFrame
) -> None:
    from_csv = load_bars(csv_file)
    parquet = tmp_path / "bars.parquet"
    sp500.iloc[:300].rename(columns=str.upper).rename_axis("DATE").reset_index().to_parquet(parquet)
    from_parquet = load_bars(parquet)
    pd.testing.assert_frame_equal(from_csv, sp500.iloc[:300], check_freq=False)
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_freq=False)


def test_another_real_series_loads(tmp_path: Path) -> None:
    path = tmp_path / "nasdaq.csv"
    arch.data.nasdaq.load().to_csv(path)
    bars = load_bars(path)
    assert len(bars) == 5031
    assert bars["close"].iloc[0] == pytest.approx(2208.050049)


def _corrupt(csv_file: Path, line: int, column: str, value: str) -> Path:
    frame = pd.read_csv(csv_file, dtype=str)
    frame.loc[line, column] = value
    frame.to_csv(csv_file, index=False)
    return csv_file


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (16, "Date", "2001-13-45", "row 17: unparseable date '2001-13-45'"),
        (16, "Date", "", "row 17: missing date"),
        (16, "Close", "", "row 17, 1999-01-27: close missing"),
        (16, "Close", "abc", "row 17, 1999-01-27: close not a number: 'abc'"),
        (16, "Open", "-5", "row 17, 1999-01-27: non-positive price"),
        (16, "High", "1.5", "row 17, 1999-01-27: high is below max(open, close)"),
        (16, "Low", "99999", "row 17, 1999-01-27: low is above min(open, close)"),
        (16, "Volume", "-1", "row 17, 1999-01-27: negative volume"),
        (16, "Date", "1999-01-26", "row 17, 1999-01-26: duplicate date"),
        (16, "Date", "1999-01-20", "row 17, 1999-01-20: date is earlier than the row before"),
        (16, "Date", "1999-03-30", "row 18, 1999-01-28: date is earlier than the row before"),
    ],
)
def test_bad_rows_are_refused_in_one_line(
    csv_file: Path, row: int, column: str, value: str, expected: str
) -> None:
    with pytest.raises(DataValidationError) as raised:
        load_bars(_corrupt(csv_file, row, column, value))
    message = str(raised.value)
    assert message.startswith(f"bars.csv: {expected}")
    assert "\n" not in message


def test_gaps_longer_than_the_limit_are_refused(csv_file: Path) -> None:
    frame = pd.read_csv(csv_file)
    frame = frame.drop(index=range(100, 130))
    frame.to_csv(csv_file, index=False)
    with pytest.raises(DataValidationError, match=r"row 101, 1999-07-12: 47-day gap"):
        load_bars(csv_file)
    assert len(load_bars(csv_file, max_gap_days=60)) == 270


def test_missing_columns_and_too_few_rows_are_refused(tmp_path: Path, csv_file: Path) -> None:
    frame = pd.read_csv(csv_file).drop(columns=["Volume"])
    no_volume = tmp_path / "no_volume.csv"
    frame.to_csv(no_volume, index=False)
    with pytest.raises(DataValidationError, match=r"^no_volume.csv: missing column\(s\) volume"):
        load_bars(no_volume)
    with pytest.raises(DataValidationError, match=r"^bars.csv: 300 rows; at least 400"):
        load_bars(csv_file, min_rows=400)


def test_unreadable_and_unknown_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no such file"):
        load_bars(tmp_path / "absent.csv")
    (tmp_path / "bars.xlsx").write_text("x")
    with pytest.raises(DataValidationError, match=r"unsupported file type '\.xlsx'"):
        load_bars(tmp_path / "bars.xlsx")
