"""Names and shapes that serving, training, the operators and the CLI agree on, declared once.

Registry aliases, the two colours, drift severity, the Serve applications that make one local
serving system (serving/README.md), the environment a replica or job inherits, and the training
job's command line. Importing it is cheap (nothing heavier than pydantic) and it imports no
other Driftline module, so any of them, `driftline.config` included, may import it.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BeforeValidator, PlainSerializer

# --- registry aliases -------------------------------------------------------------------------
CHAMPION = "champion"
"""The version serving answers with; the controller moves it after a rollout passes."""
CHALLENGER = "challenger"
"""The newest trained version, waiting for the controller's gates."""

# --- colours ----------------------------------------------------------------------------------
Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")


def other_colour(colour: Colour) -> Colour:
    """The idle colour when `colour` takes traffic."""
    return "green" if colour == "blue" else "blue"


# --- drift severity ---------------------------------------------------------------------------
class Severity(enum.IntEnum):
    """How far live data has moved beyond the reference's ordinary variation; ordered."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lower-case name reports, metrics, the store and the controller use."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.label

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)

    @classmethod
    def parse(cls, text: str) -> Severity:
        """`none`, `low`, `medium`, `high` or `critical` (any case)."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {text!r}; use none, low, medium, high or critical"
            ) from None


def _coerce_severity(value: Any) -> Any:
    return Severity.parse(value) if isinstance(value, str) else value


SeverityField = Annotated[
    Severity,
    BeforeValidator(_coerce_severity),
    PlainSerializer(lambda s: s.label, return_type=str),
]
"""Severity in a pydantic model: read from its label (`"high"`), written as its label."""

# --- Serve applications on one Ray cluster (serving/README.md) --------------------------------
INGRESS_APP = "driftline"
"""The HTTP ingress application at `/`; its `user_config` routes between the colours."""
INGRESS_DEPLOYMENT = "Ingress"
COLOUR_IMPORT_PATH = "serving.app:colour_app"
INGRESS_IMPORT_PATH = "serving.app:ingress_app"
RAYSERVICE_IMPORT_PATH = "serving.app:build_app"
"""One colour with its own ingress: a RayService per colour on Kubernetes."""


@dataclass(frozen=True)
class RoutingConfig:
    """The ingress `user_config`: deployed colours with their versions, the active and shadow."""

    colours: Mapping[str, str]
    active: str | None
    shadow: str | None = None

    def to_config(self) -> dict[str, Any]:
        """The `user_config` mapping Serve stores."""
        return {"colours": dict(self.colours), "active": self.active, "shadow": self.shadow}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RoutingConfig:
        """Read back `to_config` (an empty mapping routes nowhere)."""
        colours = {str(c): str(v) for c, v in (config.get("colours") or {}).items()}
        return cls(colours, config.get("active"), config.get("shadow"))


def serve_ray_env(direct_port_base: int) -> dict[str, str]:
    """What Serve reads when Ray starts, on every Driftline Ray cluster (local head, the chart's
    pods, a colour the controller builds): direct-ingress HTTP ports from `direct_port_base`,
    replicas at normal priority, Serve's controller reconciling every 0.5 s."""
    return {
        # Serve's replicas run at nice 15 by default: on a shared host that hands their CPU to
        # any neighbour; serving is the latency-critical work here.
        "RAY_worker_niceness": "0",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(direct_port_base),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(direct_port_base + 99),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(direct_port_base + 100),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(direct_port_base + 199),
        # Serve's controller reconciles every 0.1 s by default: 3.6% of a core on an idle local
        # stack, the largest idle cost of its 17 processes (7.5% with 0.5 s against 11.4%).
        # Replica health checks run every 10 s anyway, so failures are seen as soon.
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    }


# --- requests a version answers (both runtimes' `driftline_requests` endpoint labels) -----------
PREDICTION_ENDPOINTS = frozenset({"v2_infer", "v1_predict", "forecast", "stream"})
"""The routes that score rows for a client (the `predict` scope's) and the ingress's stream: a
rollout's verification counts these. Probes, metadata and `/metrics`, the controller's own
scrape among them, are not traffic: counted, they would verify a candidate no client called."""


# --- environment handed to replicas and jobs --------------------------------------------------
# OTEL_: a replica exports its spans where the process that deployed it does.
FORWARDED_PREFIXES = ("DRIFTLINE_", "MLFLOW_", "OTEL_")


class _StoreSection(Protocol):
    @property
    def database_url(self) -> str | None: ...


class ForwardedSettings(Protocol):
    """What `forwarded_env` reads of `driftline.config.Settings`, named by shape because the
    settings import this module (their policy holds a `Severity`)."""

    @property
    def home(self) -> Path: ...
    @property
    def tracking_uri(self) -> str: ...
    @property
    def store(self) -> _StoreSection: ...


def forwarded_env(
    settings: ForwardedSettings, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """This process's Driftline and MLflow settings, for a replica or job on another process.

    Home and tracking URI are made absolute so a process started elsewhere finds the same files.
    """
    env = {k: v for k, v in environ.items() if k.startswith(FORWARDED_PREFIXES)}
    env["DRIFTLINE_HOME"] = str(settings.home)
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    if settings.store.database_url:
        env["DRIFTLINE_DATABASE_URL"] = settings.store.database_url
    return env


# --- the training job's command line ---------------------------------------------------------
TRAINING_MODULE = "training.job"
TRAINING_ENTRYPOINT = f"python -m {TRAINING_MODULE}"
"""The job's command in an image whose `python` has Driftline installed (RayJob, RayCluster)."""
JOB_ID_ENV = "DRIFTLINE_JOB_ID"
ROLLOUT_ID_ENV = "DRIFTLINE_ROLLOUT_ID"


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """The job's command-line options; None leaves the job's default (from settings)."""

    trials: int | None = None
    data: Path | None = None
    start: date | None = None
    end: date | None = None
    members: str | None = None
    extra: tuple[str, ...] = ()

    def argv(self, python: str = sys.executable) -> list[str]:
        """`python -m training.job ...`, run by `python` so the cluster uses our environment."""
        return [python, "-m", TRAINING_MODULE, *self.options()]

    def options(self) -> list[str]:
        """The job's options, for an entrypoint given elsewhere (a RayJob's `entrypoint`)."""
        options: list[str] = []
        if self.trials is not None:
            options += ["--trials", str(self.trials)]
        if self.data is not None:
            options += ["--data", str(self.data.resolve())]
        if self.start is not None:
            options += ["--start", self.start.isoformat()]
        if self.end is not None:
            options += ["--end", self.end.isoformat()]
        if self.members is not None:
            options += ["--members", self.members]
        return options + list(self.extra)
