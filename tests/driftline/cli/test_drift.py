"""`driftline drift monitor|status` and `driftline outcomes ingest` against an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_DRIFT_PREFER_ALIBI", "false")
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    return tmp_path


def test_monitor_once_without_traffic_says_why(home: Path) -> None:
    result = CliRunner().invoke(main, ["drift", "monitor", "--once"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no report: no live predictions yet"


def test_status_without_reports_is_a_one_line_error(home: Path) -> None:
    result = CliRunner().invoke(main, ["drift", "status"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no drift report for 'market-ensemble' yet"


def test_outcomes_for_unknown_predictions_are_refused(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("symbol,as_of,value\nSPX,2008-10-01,0.01\n")
    result = CliRunner().invoke(main, ["outcomes", "ingest", str(path)])
    assert result.exit_code == 1
    assert "match no stored prediction" in result.output
    assert "nothing was stored" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("symbol,value\nSPX,0.1\n", "missing column(s) as_of"),
        ("symbol,as_of,value\nSPX,someday,0.1\n", "row 1: bad as_of or value"),
        ("symbol,as_of,value\nSPX,2008-10-01,inf\n", "row 1: value is not finite"),
        ("symbol,as_of,value\n", "no outcomes"),
    ],
)
def test_bad_outcome_files_are_one_line_errors(
    home: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = CliRunner().invoke(main, ["outcomes", "ingest", str(path)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
