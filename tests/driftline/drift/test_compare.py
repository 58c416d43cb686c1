"""`driftline drift compare` on the real S&P 500 data, and its refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.cli.drift import EXIT_DRIFT
from driftline.features import default_spec


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps(default_spec().to_dict()))
    return path


def _compare(spec_file: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["drift", "compare", "--spec", str(spec_file), *args], catch_exceptions=False
    )
    ran = result.exit_code in {0, EXIT_DRIFT}
    return result.exit_code, result.stdout if ran else result.output


@pytest.mark.slow
def test_late_2008_against_2004_2006_is_high_or_critical(spec_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, output = _compare(
        spec_file,
        "--reference",
        "2004-01-01:2006-12-31",
        "--current",
        "2008-09-01:2008-12-31",
        "--json",
        "--scipy",
        "--fail-on",
        "high",
        "--html",
        str(page),
    )
    assert code == EXIT_DRIFT == 3, output
    assert page.read_text().count("aria-label='reference and current shares per bin'") == 45
    report = json.loads(output)
    assert report["severity"] in {"high", "critical"}
    assert report["recommendation"] in {"retrain", "rollback"}
    assert len(report["features"]) == 45
    assert {"ks", "ks_textbook", "psi", "js"} <= set(report["features"]["rvol_20"])
    assert report["features"]["rvol_20"]["ks"]["drifted"] is True
    joint = next(r for r in report["results"] if r["detector"] == "joint")
    assert joint["summary"]["ratio"] > 2.0


@pytest.mark.slow
def test_a_calm_year_is_no_worse_than_low(spec_file: Path) -> None:
    code, output = _compare(
        spec_file,
        "--reference",
        "2004-01-01:2005-06-30",
        "--current",
        "2005-07-01:2006-06-30",
        "--json",
        "--fail-on",
        "medium",
    )
    assert code == 0, output
    report = json.loads(output)
    assert report["severity"] in {"none", "low"}
    summary = report["results"][0]["summary"]
    # The textbook tests over-fire on this calm year; the calibrated verdict does not.
    assert summary["textbook_ks_drifted"] >= 5
    assert summary["backend"] == "scipy", "scipy is the default; alibi-detect is an extra"


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ("2006-01-01:2004-01-01", "2008-09-01:2008-12-31", "reversed"),
        ("2004-01-01", "2008-09-01:2008-12-31", "must be START:END"),
        ("2004-01-01:2004-13-01", "2008-09-01:2008-12-31", "YYYY-MM-DD"),
        ("2004-01-01:2006-12-31", "2008-09-01:2008-09-20", "at least 30"),
        ("2004-01-01:2006-12-31", "2030-01-01:2030-12-31", "has 0 bars"),
        ("2004-01-01:2004-03-31", "2008-09-01:2008-12-31", "too short"),
    ],
)
def test_bad_ranges_are_one_line_errors(
    spec_file: Path, reference: str, current: str, message: str
) -> None:
    code, output = _compare(spec_file, "--reference", reference, "--current", current, "--scipy")
    assert code == 1
    assert message in output
    assert output.count("\n") == 1
    assert "Traceback" not in output


def test_an_unknown_grade_is_a_usage_error(spec_file: Path) -> None:
    code, output = _compare(
        spec_file,
        "--reference",
        "2004-01-01:2006-12-31",
        "--current",
        "2008-09-01:2008-12-31",
        "--fail-on",
        "severe",
    )
    assert code == 2
    assert "'severe' is not one of 'low', 'medium', 'high', 'critical'" in output


def test_bad_input_writes_no_page(spec_file: Path, tmp_path: Path) -> None:
    code, output = _compare(
        spec_file,
        "--reference",
        "2004-01-01:2004-03-31",
        "--current",
        "2008-09-01:2008-12-31",
        "--html",
        str(tmp_path / "missing" / "r.html"),
    )
    assert code == 1
    assert "too short" in output
    assert not (tmp_path / "missing").exists()


def test_a_bad_spec_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "spec.json"
    bad.write_text('{"features": [{"name": "x", "indicator": "nope"}], "window": 5}')
    code, output = _compare(
        bad, "--reference", "2004-01-01:2005-06-30", "--current", "2005-07-01:2006-06-30"
    )
    assert code == 1
    assert "unknown indicator 'nope'" in output
