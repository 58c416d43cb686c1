"""Submitting the training job: the command, its environment, and what the log shows."""

from __future__ import annotations

import os
import shlex
from datetime import date
from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.contracts import TrainingRequest
from driftline.training_job import (
    _api_server,
    _exit_code,
    dashboard_address,
    entrypoint,
    is_progress_line,
    job_environment,
)


def test_the_entrypoint_runs_this_interpreter_with_quoted_absolute_paths(tmp_path: Path) -> None:
    data = tmp_path / "my bars.csv"
    command = entrypoint(
        TrainingRequest(trials=2, data=data, start=date(2010, 1, 4), members="rf,hgb"),
        python="/opt/py env/bin/python",
    )
    assert shlex.split(command) == [
        "/opt/py env/bin/python",
        "-m",
        "training.job",
        "--trials",
        "2",
        "--data",
        str(data.resolve()),
        "--start",
        "2010-01-04",
        "--members",
        "rf,hgb",
    ]
    assert shlex.split(entrypoint(TrainingRequest(), python="py")) == ["py", "-m", "training.job"]


def test_the_job_gets_driftline_settings_with_absolute_home_and_mlflow(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    env = job_environment(settings, {"DRIFTLINE_CV_SPLITS": "3", "PATH": "/bin", "SECRET": "x"})
    assert env["DRIFTLINE_CV_SPLITS"] == "3"
    assert env["DRIFTLINE_HOME"] == str(tmp_path / "h")
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert "PATH" not in env
    assert "SECRET" not in env


def test_ray_bookkeeping_is_filtered_from_progress() -> None:
    assert is_progress_line("[   12.3s] tune      rf trial 1/2 fold 1/4 rmse 0.00780 (0.5s)")
    assert is_progress_line("error: broken.csv: row 3, 2020-01-03: duplicate date")
    assert not is_progress_line(
        "2026-11-28 14:58:34,295\tINFO job_manager.py:581 -- Runtime env is setting up."
    )
    assert not is_progress_line("Running entrypoint for job raysubmit_x: python -m training.job")
    assert not is_progress_line("   ")


def test_exit_codes_and_cluster_addresses() -> None:
    assert _exit_code("Job entrypoint command failed with exit code 2, last logs ...") == 2
    assert _exit_code("Job was stopped") == 1
    assert dashboard_address({"RAY_ADDRESS": "127.0.0.1:6379"}) == "127.0.0.1:6379"
    assert (
        dashboard_address({"RAY_ADDRESS": "x:1", "RAY_DASHBOARD_ADDRESS": "http://x:8265"})
        == "http://x:8265"
    )
    assert dashboard_address({}) is None


def test_the_given_jobs_api_url_outranks_ray_address_only_while_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.dashboard.utils import get_address_for_submission_client  # noqa: PLC0415

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with _api_server("http://127.0.0.1:8265"):
        assert get_address_for_submission_client(None) == "http://127.0.0.1:8265"
    assert "RAY_API_SERVER_ADDRESS" not in os.environ
