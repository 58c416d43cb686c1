"""`driftline train` (training owns it): validate the data here, then train as a Ray job."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click

from driftline.config import Settings
from driftline.contracts import TrainingRequest
from driftline.data import DataValidationError
from driftline.features import default_spec
from driftline.raycluster import LocalRayCluster, RayClusterError
from driftline.training_data import load_training_bars
from driftline.training_job import dashboard_address, run_training_job

EXIT_BAD_DATA = 2
DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command()
@click.option("--trials", type=click.IntRange(min=1), help="Ray Tune trials per member.")
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    help="OHLCV CSV or Parquet file (Date, Open, High, Low, Close, Volume; any case). "
    "Default: the S&P 500 daily bars the arch package ships.",
)
@click.option("--start", type=DATE, help="First bar to use (YYYY-MM-DD).")
@click.option("--end", type=DATE, help="Last bar to use (YYYY-MM-DD).")
@click.option("--members", help="Comma-separated members (rf, xgb, hgb). Default: rf,xgb.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the outcome as one JSON document on stdout (progress goes to stderr).",
)
def train(  # noqa: PLR0917  (click passes options as parameters)
    trials: int | None,
    data: Path | None,
    start: datetime | None,
    end: datetime | None,
    members: str | None,
    as_json: bool,
) -> None:
    """Train and register a new version (alias `challenger`) through the Ray Jobs API.

    Uses the cluster RAY_ADDRESS names, or starts a local Ray head for the run.

    \b
    Examples:
      driftline train --trials 5
      driftline train --data bars.csv --start 2005-01-01 --members rf,xgb
      driftline train --json | jq .version
    """
    settings = Settings()
    data = data or settings.data.path
    request = TrainingRequest(
        trials=trials,
        data=data,
        start=start.date() if start else None,
        end=end.date() if end else None,
        members=members,
    )
    try:
        # Refuse bad data before starting or submitting anything.
        load_training_bars(
            settings, default_spec(), path=data, start=request.start, end=request.end
        )
    except DataValidationError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_DATA)
    try:
        with _cluster(settings) as dashboard:
            echo = functools.partial(click.echo, err=True) if as_json else click.echo
            outcome = run_training_job(dashboard, settings, request, echo=echo)
    except RayClusterError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(outcome), indent=2))
    if outcome.exit_code != 0:
        click.echo(
            f"error: training job {outcome.job_id} {outcome.status.lower()} after "
            f"{outcome.seconds:.0f}s (exit code {outcome.exit_code})",
            err=True,
        )
        sys.exit(outcome.exit_code)
    if not as_json:
        click.echo(f"training job {outcome.job_id} succeeded in {outcome.seconds:.0f}s")


@contextmanager
def _cluster(settings: Settings) -> Iterator[str]:
    address = dashboard_address()
    if address is not None:
        yield address
        return
    click.echo("starting a local Ray head (RAY_ADDRESS is unset)")
    with LocalRayCluster.from_settings(settings) as cluster:
        click.echo(f"Ray dashboard and Jobs API at {cluster.dashboard_url}")
        yield cluster.dashboard_url
