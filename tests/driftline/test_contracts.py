"""The shared names and shapes: severity's two spellings, routing, forwarded environment, argv."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from driftline.config import Settings
from driftline.contracts import (
    COLOURS,
    RoutingConfig,
    Severity,
    SeverityField,
    TrainingRequest,
    forwarded_env,
    other_colour,
)


class _Policy(BaseModel):
    at: SeverityField = Severity.HIGH


def test_severity_is_ordered_and_spelled_as_its_label() -> None:
    assert Severity.parse(" High ") is Severity.HIGH > Severity.MEDIUM
    assert f"{Severity.CRITICAL}" == str(Severity.CRITICAL) == "critical"
    assert int(Severity.LOW) == 1  # the drift metric's value
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        Severity.parse("severe")


def test_a_severity_field_reads_and_writes_the_label() -> None:
    assert _Policy.model_validate({"at": "critical"}).at is Severity.CRITICAL
    assert _Policy(at=Severity.MEDIUM).model_dump(mode="json") == {"at": "medium"}
    with pytest.raises(ValidationError):
        _Policy.model_validate({"at": "severe"})


def test_each_colour_has_one_other() -> None:
    assert [other_colour(c) for c in COLOURS] == ["green", "blue"]


def test_routing_reads_back_what_it_writes() -> None:
    routing = RoutingConfig({"blue": "3", "green": "4"}, "blue", "green")
    assert RoutingConfig.from_config(routing.to_config()) == routing
    assert RoutingConfig.from_config({}) == RoutingConfig({}, None, None)


def test_forwarded_env_carries_driftline_and_mlflow_settings_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", store={"database_url": "postgresql://db/x"})  # type: ignore[call-arg]
    env = forwarded_env(
        settings, {"DRIFTLINE_CV_SPLITS": "3", "MLFLOW_X": "1", "PATH": "/bin", "SECRET": "s"}
    )
    assert env == {
        "DRIFTLINE_CV_SPLITS": "3",
        "MLFLOW_X": "1",
        "DRIFTLINE_HOME": str(tmp_path / "h"),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "DRIFTLINE_DATABASE_URL": "postgresql://db/x",
    }


def test_extra_training_arguments_come_last() -> None:
    argv = TrainingRequest(trials=3, extra=("--members", "rf")).argv("py")
    assert argv == ["py", "-m", "training.job", "--trials", "3", "--members", "rf"]
