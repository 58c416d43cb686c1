"""The training Ray job: `python -m training.job [--trials N] [--data FILE] [--start] [--end]`.

Runs as a Ray Jobs entrypoint (`driftline train`, the controller, a KubeRay RayJob) and connects
to the cluster that started it. Exit codes: 0 registered, 2 bad data, 3 refused (ONNX parity or
an unknown member), 4 the cluster
cannot give training the CPUs it needs, 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from training.members import MEMBERS

if TYPE_CHECKING:
    from driftline.config import Settings

# Heavy modules (Ray, scikit-learn, MLflow) load inside main(), after this clock starts, so the
# elapsed times in progress lines include them.
STARTED = time.monotonic()
EXIT_BAD_DATA = 2
EXIT_REFUSED = 3
EXIT_UNSCHEDULABLE = 4


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    """Command-line options, defaulting to the settings."""
    parser = argparse.ArgumentParser(prog="python -m training.job", description=__doc__)
    parser.add_argument("--trials", type=int, default=settings.training.trials)
    parser.add_argument("--data", type=Path, default=settings.data.path)
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    parser.add_argument(
        "--members",
        default=settings.training.members,
        help=f"comma-separated, from {', '.join(MEMBERS)}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train and register; return the process exit code."""
    _quiet_libraries()
    from driftline.config import Settings  # noqa: PLC0415
    from driftline.data import DataValidationError  # noqa: PLC0415
    from driftline.features import (  # noqa: PLC0415
        FeatureComputationError,
        InsufficientBarsError,
        default_spec,
    )
    from driftline.registry import OnnxParityError  # noqa: PLC0415
    from driftline.training_data import load_training_bars  # noqa: PLC0415
    from training.members import UnknownMemberError, member_kind  # noqa: PLC0415
    from training.pipeline import TrainOptions, train  # noqa: PLC0415
    from training.progress import Progress  # noqa: PLC0415
    from training.resources import UnschedulableError  # noqa: PLC0415

    settings = Settings()
    args = parse_args(argv, settings)
    members = tuple(m.strip() for m in args.members.split(",") if m.strip())
    options = TrainOptions(args.data, args.start, args.end, args.trials, members)
    progress = Progress(start=STARTED)
    try:
        for name in members:
            member_kind(name)
        # Bad data fails here, before any cluster resources are taken.
        load_training_bars(
            settings, default_spec(), path=options.data, start=options.start, end=options.end
        )
        _connect(settings)
        registration = train(settings, options, progress)
    except (DataValidationError, InsufficientBarsError, FeatureComputationError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return EXIT_BAD_DATA
    except (OnnxParityError, UnknownMemberError) as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return EXIT_REFUSED
    except UnschedulableError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return EXIT_UNSCHEDULABLE
    progress("done", f"version {registration.version} ({', '.join(registration.aliases)})")
    return 0


def _connect(settings: Settings) -> None:
    import ray  # noqa: PLC0415

    from driftline.raycluster import LOOPBACK_ENV  # noqa: PLC0415

    os.environ.update(LOOPBACK_ENV)
    if os.environ.get("RAY_ADDRESS") or settings.ray.address:
        ray.init(address=settings.ray.address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        # Run directly, outside a cluster: a private Ray on loopback for this process only.
        ray.init(
            num_cpus=int(settings.ray.num_cpus),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _node_ip_address="127.0.0.1",
        )


def _quiet_libraries() -> None:
    # Progress lines are the job's output; library chatter would bury them in the log tail.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "ray", "alembic", "skl2onnx", "onnxmltools"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=FutureWarning)


if __name__ == "__main__":
    sys.exit(main())
