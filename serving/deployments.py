"""The colour graph's deployments: one per ensemble member, and the combiner (which computes a bar
window's features)."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, cast

import numpy as np
import pandas as pd
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from driftline.config import Settings
from driftline.features import (
    FeatureComputationError,
    FeatureSpec,
    InsufficientBarsError,
    compute_vector,
)
from driftline.observability import tracing
from driftline.registry.bundle import ModelBundle
from driftline.registry.predictor import Array, combine, load_member
from serving.autoscaling import BUSY_METRIC, BusyClock
from serving.channel import (
    MemberServer,
    endpoints,
    score,
    socket_dir,
    socket_path,
)
from serving.errors import BadInputError
from serving.metrics import enable_multiprocess, metrics
from serving.model import ModelRef, summary
from serving.replica_grpc import bind_to_node_ip


def _split(values: Array, sizes: list[int]) -> list[Array]:
    return np.split(values, np.cumsum(sizes)[:-1])


@serve.deployment
class Member:
    """One ensemble member: Serve calls are merged into one batched predict; node-local
    callers may use its socket instead (`serving.channel`)."""

    def __init__(self, ref: ModelRef, member: str) -> None:
        bind_to_node_ip()
        settings = Settings()
        enable_multiprocess(settings.home / "serve-metrics")
        model = ref.load(settings)
        spec = next(m for m in model.members if m.name == member)
        self.runtime = load_member(
            spec,
            prefer_onnx=settings.serving.prefer_onnx,
            allow_native=settings.registry.allow_native_members,
        )
        cast(Any, self.predict).set_max_batch_size(settings.serving.batch_size)
        cast(Any, self.predict).set_batch_wait_timeout_s(settings.serving.batch_wait_s)
        m = metrics()
        self._duration = m.member_duration.labels(ref.name, ref.version, member)
        self._batch = m.batch_size.labels(f"member_{member}")
        self._calls = {
            transport: m.member_calls.labels(ref.name, ref.version, member, transport)
            for transport in ("socket", "serve")
        }
        self._busy = BusyClock()
        self.channel: MemberServer | None = None
        directory = socket_dir(settings)
        if directory is not None:
            context = serve.get_replica_context()
            path = socket_path(
                directory,
                context.app_name,
                context.deployment,
                context.replica_id.unique_id,
            )
            self.channel = MemberServer(path, functools.partial(self.run, transport="socket"))
            self.channel.start()

    def run(self, rows: Array, transport: str = "serve") -> Array:
        """Predict `rows` now, timed and counted (both transports come through here)."""
        self._calls[transport].inc()
        start = time.perf_counter()
        out = self.runtime.predict(rows)
        elapsed = time.perf_counter() - start
        self._busy.add(elapsed)
        self._duration.observe(elapsed)
        self._batch.observe(len(rows))
        return out

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def predict(self, batches: list[Array]) -> list[Array]:
        """Member outputs for each caller's rows."""
        rows = batches[0] if len(batches) == 1 else np.concatenate(batches)
        return _split(self.run(rows), [len(b) for b in batches])

    def describe(self) -> dict[str, str]:
        """Which runtime this member uses."""
        return {"name": self.runtime.name, "runtime": self.runtime.runtime}

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Busy share since the last report: Serve's queue does not see socket calls."""
        return {BUSY_METRIC: self._busy.read()}

    def __del__(self) -> None:
        # Serve calls this on graceful shutdown: no caller should find the socket after it.
        if self.channel is not None:
            self.channel.close()


def feature_row(spec: FeatureSpec, bars: dict[str, Array]) -> Array:
    """The feature row (1 x n_features) at the last bar of one window of raw OHLCV bars."""
    frame = pd.DataFrame(bars)
    try:
        return compute_vector(frame, spec).reshape(1, -1)
    except (InsufficientBarsError, FeatureComputationError) as error:
        raise BadInputError(str(error)) from None


@serve.deployment
class Combiner:
    """A colour's entry point: computes a bar window's features, fans rows out to every member
    and combines their outputs.

    The ingress scores feature rows the same way itself (one hop fewer); the combiner answers
    bar windows, other Serve callers and the colour's description. Features are computed here,
    not in a deployment of their own: a separate process cost the local stack 224 MiB of memory
    for a millisecond of TA-Lib per window, and the combiner already has the modules loaded.
    """

    def __init__(
        self,
        ref: ModelRef,
        colour: str,
        members: dict[str, DeploymentHandle[Any]],
    ) -> None:
        bind_to_node_ip()
        settings = Settings()
        enable_multiprocess(settings.home / "serve-metrics")
        tracing.configure_tracing(
            "driftline-combiner",
            settings.observability.otlp_endpoint,
            settings.observability.trace_ratio,
        )
        self.model: ModelBundle = ref.load(settings)
        # Refuse a model whose feature spec this code cannot compute.
        self.model.spec.validate()
        self.settings = settings
        self.colour = colour
        app = serve.get_replica_context().app_name
        self.members = endpoints(members, socket_dir(settings), app, settings.breakers)
        cast(Any, self.predict).set_max_batch_size(settings.serving.batch_size)
        cast(Any, self.predict).set_batch_wait_timeout_s(settings.serving.batch_wait_s)
        self._batch = metrics().batch_size.labels("combiner")

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def predict(self, batches: list[Array]) -> list[tuple[Array, dict[str, Array]]]:
        """Ensemble and member outputs for each caller's feature rows."""
        rows = batches[0] if len(batches) == 1 else np.concatenate(batches)
        self._batch.observe(len(rows))
        by_member = await score(self.members, rows.astype(np.float32))
        ensemble = combine(by_member, self.model.weights, self.model.intercept)
        sizes = [len(b) for b in batches]
        splits = {name: _split(values, sizes) for name, values in by_member.items()}
        return [
            (part, {name: splits[name][i] for name in by_member})
            for i, part in enumerate(_split(ensemble, sizes))
        ]

    async def predict_bars(
        self, bars: dict[str, Array], trace: dict[str, str] | None = None
    ) -> tuple[Array, Array, dict[str, Array]]:
        """Feature row, ensemble and member outputs for one window of bars; `trace` carries the
        caller's trace context (W3C headers)."""
        with tracing.continued(trace, "combiner.predict_bars"):
            with tracing.span("features"):
                # Off the event loop: other callers' member fan-outs go on meanwhile.
                row = await asyncio.to_thread(feature_row, self.model.spec, bars)
            with tracing.span("score"):
                ensemble, members = await self.predict(row)
        return row, ensemble, members

    def info(self) -> dict[str, Any]:
        """The served version, colour, members, spec hash and evaluation summary."""
        return {**summary(self.model, self.settings), "colour": self.colour}

    def __del__(self) -> None:
        # Serve calls this on graceful shutdown; the actor may exit before atexit would run.
        tracing.flush()


def build_colour_graph(ref: ModelRef, colour: str, settings: Settings) -> Application:
    """The bound graph for one colour: members discovered from the bundle, and the combiner."""
    model = ref.load(settings)
    light = {"num_cpus": settings.serving.light_cpus}
    members = {
        m.name: cast(Deployment, Member)
        .options(
            name=f"member_{m.name}",
            ray_actor_options={"num_cpus": settings.serving.member_cpus},
            **_scaling(settings, member=True),
        )
        .bind(ref, m.name)
        for m in model.members
    }
    return (
        cast(Deployment, Combiner)
        .options(ray_actor_options=light, **_scaling(settings))
        .bind(ref, colour, members)
    )


def _scaling(settings: Settings, *, member: bool = False) -> dict[str, Any]:
    autoscaling: dict[str, Any] = {
        "min_replicas": settings.serving.min_replicas,
        "max_replicas": settings.serving.max_replicas,
        "target_ongoing_requests": settings.serving.target_ongoing_requests,
    }
    if member:
        # Socket calls bypass Serve's queue: members also scale on how busy they are.
        autoscaling["policy"] = {
            "policy_function": "serving.autoscaling:MemberPolicy",
            "policy_kwargs": {"target_busy": settings.serving.member_target_busy},
        }
    return {
        "max_ongoing_requests": settings.serving.max_ongoing_requests,
        "max_queued_requests": settings.serving.max_queued_requests,
        "autoscaling_config": autoscaling,
        "logging_config": access_log(settings),
    }


def access_log(settings: Settings) -> dict[str, Any]:
    """Serve's logging config: the per-request access line only when asked for."""
    return {"enable_access_log": settings.serving.access_log}
