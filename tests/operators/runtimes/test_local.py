"""The local runtime: its reading of Serve's application details, and blue/green through serving."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.config import Settings
from driftline.contracts import INGRESS_APP
from operators.observations import ColourObservation
from operators.runtimes.base import RuntimeOperationError
from operators.runtimes.local import LocalRayRuntime, colour_observation
from serving.control import ServingControl
from tests.serving.test_control import FakeServe


def test_a_running_colour_serves_its_version() -> None:
    app = {"status": "RUNNING", "message": "", "deployed_app_config": {"args": {"version": 7}}}
    assert colour_observation(app) == ColourObservation("7", True, "RUNNING")


def test_a_colour_being_deleted_is_retiring_and_serves_nothing() -> None:
    # Serve drops the deployed config of an application it is deleting.
    app = {"status": "DELETING", "message": "Deleting application 'blue'"}
    observed = colour_observation(app)
    assert observed == ColourObservation(
        None, False, "DELETING: Deleting application 'blue'", retiring=True
    )


def test_a_deploying_colour_is_not_ready() -> None:
    app = {"status": "DEPLOYING", "deployed_app_config": {"args": {"version": "3"}}}
    assert colour_observation(app) == ColourObservation("3", False, "DEPLOYING")


class Marks(list[str]):
    """Records the versions verification starts counting (ScrapeHealth reads a live /metrics)."""

    def mark(self, version: str) -> None:
        self.append(version)


def _runtime(serve: FakeServe) -> LocalRayRuntime:
    settings = Settings(rollout={"drain_seconds": 0})  # type: ignore[call-arg]
    no_registry: Any = None
    runtime = LocalRayRuntime(
        settings, "http://dashboard", "http://serve", no_registry, no_registry, scrape=Marks()
    )
    fake: Any = serve
    runtime.serving = ServingControl(
        settings, "http://dashboard", http_port=8000, timeout_s=5, client=fake
    )
    return runtime


def test_the_runtime_acts_on_serving_through_serving_control() -> None:
    serve = FakeServe()
    runtime = _runtime(serve)
    runtime.deploy("blue", "1")
    runtime.route("blue", None)
    runtime.deploy("green", "2")
    runtime.route("green", "blue")
    observed = runtime.observe_serving()
    assert (observed.routed, observed.shadow) == ("green", "blue")
    assert {c: o.version for c, o in observed.colours.items()} == {"blue": "1", "green": "2"}
    runtime.route("green", None)
    runtime.retire("blue")
    assert runtime.scrape == ["1", "2", "2"]
    assert set(serve.applications) == {"green", INGRESS_APP}


def test_routing_to_an_undeployed_colour_is_a_runtime_operation_error() -> None:
    runtime = _runtime(FakeServe())
    with pytest.raises(RuntimeOperationError, match="not deployed"):
        runtime.route("green", None)
