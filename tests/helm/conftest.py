"""The chart's render modes, each rendered once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_ALL_MONITORING = (
    "monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,"
    "monitoring.dashboards.enabled=true"
)

# Every mode the issue names, plus the features that are off by default switched on somewhere.
MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "rayservice": ("--set", f"serving.runtime=RayService,training.enabled=true,{_ALL_MONITORING}"),
    "inferenceservice": (
        "--set",
        "serving.runtime=InferenceService,serving.hpa.enabled=true,"
        f"serving.hpa.requestsPerSecond.enabled=true,{_ALL_MONITORING}",
    ),
    "gitops": ("-f", str(REPO_ROOT / "gitops" / "environments" / "staging" / "values.yaml")),
    "monitoring-off": (
        "--set",
        "monitoring.serviceMonitor.enabled=false,monitoring.prometheusRule.enabled=false,"
        "monitoring.dashboards.enabled=false,smokeTest.enabled=false",
    ),
}


@pytest.fixture(scope="session", params=sorted(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    """Each render mode in turn."""
    return str(request.param)


@pytest.fixture(scope="session")
def mode_args(mode: str) -> tuple[str, ...]:
    """The `helm template` arguments of one mode."""
    return MODES[mode]


@pytest.fixture(scope="session")
def rendered(
    mode_args: tuple[str, ...], render_chart: Callable[..., list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The objects one mode renders."""
    return render_chart(*mode_args)


@pytest.fixture(scope="session")
def every_mode(
    render_chart: Callable[..., list[dict[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """The objects of every mode, by mode name."""
    return {name: render_chart(*args) for name, args in MODES.items()}
