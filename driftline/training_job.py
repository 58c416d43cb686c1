"""Submitting the training Ray job (`python -m training.job`) and following its log to the end.

Used by `driftline train` and by anything else that retrains through the Ray Jobs API; the job
itself lives in the `training` package, which `driftline` does not import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from driftline.config import Settings
from driftline.contracts import TrainingRequest, forwarded_env

# Ray's own lines in a job log ("2026-01-01 12:00:00,123\tINFO job_manager.py:581 -- ...") and
# its entrypoint banner; the job's progress lines are everything else.
_RAY_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+[A-Z]+ \S+\.py:\d+ -- ")
_BANNER = "Running entrypoint for job "
_EXIT_CODE = re.compile(r"exit code (\d+)")
# The job's last progress line: "[  46.3s] done      version 7 (challenger)".
_DONE = re.compile(r"^\[\s*[\d.]+s\] done\s+version (\d+)")
# Environment the job needs beyond DRIFTLINE_*: MLflow quiet, Ray Tune's tables off.
_QUIET = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a training job ended."""

    job_id: str
    status: str
    exit_code: int
    message: str
    seconds: float
    version: str | None


def entrypoint(request: TrainingRequest, python: str = sys.executable) -> str:
    """The job's shell command, run by this interpreter so the cluster uses our environment."""
    return shlex.join(request.argv(python))


def job_environment(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What the job inherits: the forwarded settings, with MLflow and Ray Tune kept quiet."""
    return {**forwarded_env(settings, environ), **_QUIET}


def is_progress_line(line: str) -> bool:
    """True for the job's own output, False for Ray's bookkeeping lines."""
    return bool(line.strip()) and not _RAY_LINE.match(line) and not line.startswith(_BANNER)


def run_training_job(
    dashboard_url: str,
    settings: Settings,
    request: TrainingRequest,
    *,
    echo: Callable[[str], None],
    python: str = sys.executable,
) -> JobOutcome:
    """Submit the job, echo its progress lines as they arrive, and return how it ended."""
    from ray.job_submission import JobSubmissionClient  # noqa: PLC0415

    # Ray's job SDK logs its websocket bookkeeping at INFO; the job's own lines are the output.
    logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)
    with _api_server(dashboard_url):
        client = JobSubmissionClient(dashboard_url)
    started = time.monotonic()
    job_id = client.submit_job(
        entrypoint=entrypoint(request, python),
        runtime_env={"env_vars": job_environment(settings)},
        metadata={"driftline": "train", "model": settings.registry.model_name},
    )
    echo(f"submitted training job {job_id} to {dashboard_url}")
    versions: list[str] = []

    def watch(line: str) -> None:
        done = _DONE.match(line)
        if done:
            versions.append(done.group(1))
        echo(line)

    try:
        asyncio.run(_follow(client, job_id, watch))
    except BaseException:
        # Interrupted (Ctrl-C) or the log stream broke: do not leave the job running.
        client.stop_job(job_id)
        raise
    info = client.get_job_info(job_id)
    status = str(getattr(info.status, "value", info.status))
    message = info.message or ""
    code = 0 if status == "SUCCEEDED" else _exit_code(message)
    seconds = time.monotonic() - started
    return JobOutcome(job_id, status, code, message, seconds, versions[-1] if versions else None)


@contextmanager
def _api_server(url: str) -> Iterator[None]:
    # Ray lets RAY_ADDRESS (a GCS address for drivers) override the address argument; the
    # Jobs API URL we were given must win, so name it in the one variable that outranks it.
    name = "RAY_API_SERVER_ADDRESS"
    saved = os.environ.get(name)
    os.environ[name] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


async def _follow(client: Any, job_id: str, echo: Callable[[str], None]) -> None:
    pending = ""
    async for chunk in client.tail_job_logs(job_id):
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            if is_progress_line(line):
                echo(line)
    if is_progress_line(pending):
        echo(pending)


def _exit_code(message: str) -> int:
    found = _EXIT_CODE.search(message)
    return int(found.group(1)) if found and int(found.group(1)) != 0 else 1


def dashboard_address(environ: Mapping[str, str] = os.environ) -> str | None:
    """The Jobs API of the cluster RAY_ADDRESS (or RAY_DASHBOARD_ADDRESS) names, if any."""
    for name in ("RAY_DASHBOARD_ADDRESS", "RAY_ADDRESS"):
        value = environ.get(name, "").strip()
        if value and value != "local":
            return value
    return None
