"""Training bars: a date window long enough to train on, and where they came from."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from driftline.config import Settings
from driftline.data import DataValidationError
from driftline.features import default_spec
from driftline.training_data import data_window, default_data_file, load_training_bars


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = default_data_file()
    assert source is not None
    path = tmp_path_factory.mktemp("data") / "spx.csv"
    pd.read_csv(source).to_csv(path, index=False)
    return path


def test_a_window_too_short_to_train_on_is_refused_in_one_line(csv: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(DataValidationError) as error:
        load_training_bars(settings, default_spec(), path=csv, start=date(2018, 1, 1))
    message = str(error.value)
    assert message.startswith("spx.csv: 251 bars between 2018-01-01 and the end; training needs")
    assert "\n" not in message


def test_the_data_window_names_source_span_rows_and_file_hash(csv: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    bars = load_training_bars(
        settings, default_spec(), path=csv, start=date(2010, 1, 1), end=date(2014, 12, 31)
    )
    window = data_window(bars, csv)
    assert window["source"] == "spx.csv"
    assert (window["first"], window["last"], window["rows"]) == ("2010-01-04", "2014-12-31", 1258)
    assert window["file_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
