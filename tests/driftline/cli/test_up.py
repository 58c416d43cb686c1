"""`driftline up`'s demo choices: where the replay starts, and the status page's link."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.ensemble import RandomForestRegressor

from driftline.cli.up import check_controller_policy, replay_from_holdout, status_page_url
from driftline.config import Settings
from driftline.features import default_spec
from driftline.registry import Registry
from tests.driftline.registry.conftest import make_contents

# Registering a version in a local MLflow is slow; its pyfunc signature warns about the
# bundle's `Any`-typed predict input.
SLOW = pytest.mark.slow
QUIET = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")


def _register(settings: Settings, evaluation: dict[str, object]) -> str:
    spec = default_spec()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(spec.names)))
    y = 0.01 * x[:, 0]
    rf = RandomForestRegressor(5, max_depth=3, n_jobs=1, random_state=0).fit(x, y)
    contents = make_contents(spec, (x, y), {"rf": rf}, evaluation=evaluation)
    return (
        Registry(settings)
        .register(
            contents, params={}, metrics={}, tags={}, input_example=contents.reference.iloc[:1]
        )
        .version
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("DRIFTLINE_STREAM_START", raising=False)
    return Settings(home=tmp_path / "home")


@SLOW
@QUIET
def test_the_replay_starts_at_the_champions_holdout(settings: Settings) -> None:
    version = _register(settings, {"holdout": {"first": "2019-03-01", "last": "2024-12-31"}})
    with CliRunner().isolation() as (out, _err, _):
        updated = replay_from_holdout(settings, version)
    assert updated.serving.stream_start == date(2019, 3, 1)
    # The choice is returned, not exported: a start date left in this process's environment
    # would send every Serve replica it starts later past its data.
    assert "DRIFTLINE_STREAM_START" not in os.environ
    assert "replay: from 2019-03-01, where version 1's hold-out starts" in out.getvalue().decode()


def test_a_configured_start_wins(settings: Settings) -> None:
    chosen = settings.updated({"serving": {"stream_start": "2008-09-01"}})
    with CliRunner().isolation() as (out, _err, _):
        assert replay_from_holdout(chosen, "1") is chosen
    assert out.getvalue().decode() == "replay: from 2008-09-01 (DRIFTLINE_STREAM_START)\n"


@SLOW
@QUIET
def test_a_version_without_a_holdout_replays_from_the_first_window(settings: Settings) -> None:
    version = _register(settings, {"summary": "synthetic"})
    with CliRunner().isolation() as (out, _err, _):
        assert replay_from_holdout(settings, version).serving.stream_start is None
    assert "from the first full window" in out.getvalue().decode()


def test_the_status_link_carries_the_key_in_its_fragment() -> None:
    url = status_page_url("http://127.0.0.1:8080", "dl_ab/c+d")
    assert url == "http://127.0.0.1:8080/ui/#key=dl_ab%2Fc%2Bd"


def test_approval_without_gitops_is_refused_before_anything_starts(settings: Settings) -> None:
    # `driftline up`'s controller promotes without GitOps: no reviewer could ever approve.
    approving = settings.updated({"rollout": {"require_approval": True}})
    with pytest.raises(click.ClickException, match=r"GitOps runtime.*--no-controller"):
        check_controller_policy(approving)
    check_controller_policy(settings)
