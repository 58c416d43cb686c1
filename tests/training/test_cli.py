"""`driftline train`: bad data fails fast in one line; another real OHLCV file trains as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.registry import CHALLENGER, CHAMPION, Registry
from driftline.training_data import default_data_file

NASDAQ = default_data_file().parent.parent / "nasdaq" / "nasdaq.csv.gz"  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def nasdaq_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The NASDAQ Composite daily bars arch ships (1999-2018), as a plain OHLCV CSV."""
    path = tmp_path_factory.mktemp("nasdaq") / "nasdaq.csv"
    frame = pd.read_csv(NASDAQ).drop(columns=["Adj Close"])
    frame.to_csv(path, index=False)
    return path


def test_corrupted_data_exits_2_with_one_line_and_registers_nothing(
    nasdaq_csv: Path, tmp_path: Path
) -> None:
    lines = nasdaq_csv.read_text().splitlines()
    fields = lines[1000].split(",")  # data row 1000 (line 0 is the header)
    fields[2] = str(float(fields[4]) * 0.9)  # High below Close
    lines[1000] = ",".join(fields)
    corrupted = tmp_path / "corrupted.csv"
    corrupted.write_text("\n".join(lines) + "\n")
    env = {"DRIFTLINE_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(main, ["train", "--data", str(corrupted)], env=env)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: corrupted.csv: row 1000, ")
    assert "high is below max(open, close)" in result.output
    # Neither MLflow nor Ray was touched.
    assert not (tmp_path / "home" / "mlflow.db").exists()
    assert "Ray" not in result.output


def test_an_unknown_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.xlsx"
    path.write_text("x")
    result = CliRunner().invoke(main, ["train", "--data", str(path)])
    assert result.exit_code == 2
    assert (
        result.output == "error: bars.xlsx: unsupported file type '.xlsx' (use .csv or .parquet)\n"
    )


@pytest.mark.e2e
@pytest.mark.ray
@pytest.mark.slow
def test_another_real_ohlcv_file_trains_and_becomes_the_challenger(
    registered_model: Any, ray_cluster: Any, nasdaq_csv: Path
) -> None:
    settings = registered_model.settings
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("driftline")),
            "train",
            "--trials",
            "1",
            "--data",
            str(nasdaq_csv),
            "--start",
            "2013-01-01",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **ray_cluster.client_env()},
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "data      nasdaq.csv 2013-01-02..2018-12-31" in done.stdout
    assert "fit       fitting rf, xgb in parallel as Ray tasks" in done.stdout
    registry = Registry(settings)
    newest = registry.versions()[0]
    assert newest.version != registered_model.version
    assert newest.tags["data_source"] == "nasdaq.csv"
    assert registry.alias_version(CHALLENGER) == newest.version
    assert registry.alias_version(CHAMPION) != newest.version
    bundle = registry.load_bundle(CHALLENGER)
    assert bundle.data_window["source"] == "nasdaq.csv"
