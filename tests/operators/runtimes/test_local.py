"""The local runtime: its reading of Serve's application details, and blue/green through serving."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from driftline.config import Settings
from driftline.contracts import INGRESS_APP
from operators.observations import ColourObservation, JobStatus
from operators.runtimes.base import RuntimeOperationError
from operators.runtimes.local import REASON_CHARS, LocalRayRuntime, colour_observation, job_reason
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


def _failed_job(log: str) -> str:
    """A failed job's message as Ray's job supervisor writes it: a summary line, then the log."""
    return (
        "Job entrypoint command failed with exit code 4, last available logs "
        "(truncated to 20,000 chars):\n" + log
    )


def test_a_failed_job_keeps_its_error_line_however_long_its_log() -> None:
    reason = (
        "error: no tuning trial could be scheduled in 61s: each asks for 1 CPUs and the "
        "cluster has 0.30 of 2.00 CPUs free"
    )
    log = "".join(f"[features] step {i} of a long training log\n" for i in range(200))
    message = _failed_job(f"{log}{reason}\nINFO ray: shutting down the driver\n")
    kept = job_reason(message)
    assert len(kept) <= REASON_CHARS
    assert kept.startswith("Job entrypoint command failed with exit code 4")
    assert kept.endswith(reason)


def test_the_observed_failure_of_an_unschedulable_job_names_the_free_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = "".join(f"[features] step {i}\n" for i in range(100))
    message = _failed_job(f"{log}error: the cluster has 0.30 of 2.00 CPUs free\n")
    info = SimpleNamespace(status="FAILED", message=message, start_time=1, end_time=2)
    jobs = SimpleNamespace(get_job_info=lambda _submission_id: info)
    runtime = _runtime(FakeServe())
    monkeypatch.setattr(runtime, "_jobs", lambda: jobs)
    observed = runtime.observe_job("j1")
    assert observed.status is JobStatus.FAILED
    assert observed.message.endswith("error: the cluster has 0.30 of 2.00 CPUs free")


def test_a_failed_job_without_an_error_line_keeps_the_end_of_its_log() -> None:
    log = "".join(f"line {i}\n" for i in range(500)) + "Killed"
    kept = job_reason(_failed_job(log))
    assert len(kept) <= REASON_CHARS
    assert kept.endswith("line 499\nKilled")


def test_a_short_job_message_is_kept_whole() -> None:
    assert job_reason(" Job finished successfully. ") == "Job finished successfully."
