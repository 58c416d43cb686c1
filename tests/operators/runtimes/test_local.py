"""The local runtime's reading of Serve's application details."""

from __future__ import annotations

from operators.observations import ColourObservation
from operators.runtimes.local import colour_observation


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
