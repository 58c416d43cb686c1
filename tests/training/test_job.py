"""The job refuses bad input with one line and an exit code, before touching Ray or MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import job


def test_bad_data_exits_2_with_one_line_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text(
        "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,0.9,0.5,1.5,10\n"
    )
    assert job.main(["--data", str(broken)]) == job.EXIT_BAD_DATA
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: broken.csv: row 2, 2020-01-03: high is below max(open, close) "
        "(open=1, high=0.9, low=0.5, close=1.5, volume=10)"
    )


def test_an_unknown_member_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert job.main(["--members", "rf,svm"]) == job.EXIT_REFUSED
    assert "unknown member 'svm'" in capsys.readouterr().err
