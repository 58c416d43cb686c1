"""The colour graph's deployments: one per ensemble member, the feature computer, the combiner."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import numpy as np
import pandas as pd
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.handle import DeploymentHandle

from driftline.config import Settings
from driftline.features import FeatureComputationError, InsufficientBarsError, compute_vector
from serving.errors import BadInputError
from serving.metrics import enable_multiprocess, metrics
from serving.model import Array, MemberRuntime, ModelRef, ServedModel


def _split(values: Array, sizes: list[int]) -> list[Array]:
    return np.split(values, np.cumsum(sizes)[:-1])


@serve.deployment
class Member:
    """One ensemble member; concurrent calls are merged into one batched predict."""

    def __init__(self, ref: ModelRef, member: str) -> None:
        settings = Settings()
        enable_multiprocess(settings.home / "serve-metrics")
        model = ref.load(settings)
        spec = next(m for m in model.members if m.name == member)
        self.runtime = MemberRuntime(spec, prefer_onnx=settings.serve_prefer_onnx)
        cast(Any, self.predict).set_max_batch_size(settings.serve_batch_size)
        cast(Any, self.predict).set_batch_wait_timeout_s(settings.serve_batch_wait_s)
        m = metrics()
        self._duration = m.member_duration.labels(ref.name, ref.version, member)
        self._batch = m.batch_size.labels(f"member_{member}")

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def predict(self, batches: list[Array]) -> list[Array]:
        """Member outputs for each caller's rows."""
        rows = batches[0] if len(batches) == 1 else np.concatenate(batches)
        start = time.perf_counter()
        out = self.runtime.predict(rows)
        self._duration.observe(time.perf_counter() - start)
        self._batch.observe(len(rows))
        return _split(out, [len(b) for b in batches])

    def describe(self) -> dict[str, str]:
        """Which runtime this member uses."""
        return {"name": self.runtime.member.name, "runtime": self.runtime.runtime}


@serve.deployment
class Features:
    """Turns one window of raw OHLCV bars into the model's feature row."""

    def __init__(self, ref: ModelRef) -> None:
        self.spec = ref.load(Settings()).spec
        # Refuse a model whose feature spec this code cannot compute.
        self.spec.validate()

    def __call__(self, bars: dict[str, Array]) -> Array:
        """The feature row (1 x n_features) at the last bar."""
        frame = pd.DataFrame(bars)
        try:
            return compute_vector(frame, self.spec).reshape(1, -1)
        except (InsufficientBarsError, FeatureComputationError) as error:
            raise BadInputError(str(error)) from None


@serve.deployment
class Combiner:
    """A colour's entry point: fans rows out to every member and combines their outputs."""

    def __init__(
        self,
        ref: ModelRef,
        colour: str,
        members: dict[str, DeploymentHandle[Any]],
        features: DeploymentHandle[Any],
    ) -> None:
        settings = Settings()
        enable_multiprocess(settings.home / "serve-metrics")
        self.model: ServedModel = ref.load(settings)
        self.colour = colour
        self.members = members
        self.features = features
        cast(Any, self.predict).set_max_batch_size(settings.serve_batch_size)
        cast(Any, self.predict).set_batch_wait_timeout_s(settings.serve_batch_wait_s)
        self._batch = metrics().batch_size.labels("combiner")

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)
    async def predict(self, batches: list[Array]) -> list[tuple[Array, dict[str, Array]]]:
        """Ensemble and member outputs for each caller's feature rows."""
        rows = batches[0] if len(batches) == 1 else np.concatenate(batches)
        self._batch.observe(len(rows))
        outputs = await asyncio.gather(*(h.predict.remote(rows) for h in self.members.values()))
        by_member = dict(zip(self.members, outputs, strict=True))
        ensemble = self.model.combine(by_member)
        sizes = [len(b) for b in batches]
        splits = {name: _split(values, sizes) for name, values in by_member.items()}
        return [
            (part, {name: splits[name][i] for name in by_member})
            for i, part in enumerate(_split(ensemble, sizes))
        ]

    async def predict_bars(self, bars: dict[str, Array]) -> tuple[Array, Array, dict[str, Array]]:
        """Feature row, ensemble and member outputs for one window of bars."""
        row = await self.features.remote(bars)
        ensemble, members = await self.predict(row)
        return row, ensemble, members

    def info(self) -> dict[str, Any]:
        """The served version, colour, members, spec hash and evaluation summary."""
        return {**self.model.summary(), "colour": self.colour}


def build_colour_graph(ref: ModelRef, colour: str, settings: Settings) -> Application:
    """The bound graph for one colour: members discovered from the bundle, features, combiner."""
    model = ref.load(settings)
    light = {"num_cpus": settings.serve_light_cpus}
    members = {
        m.name: cast(Deployment, Member)
        .options(
            name=f"member_{m.name}",
            ray_actor_options={"num_cpus": settings.serve_member_cpus},
            **_scaling(settings),
        )
        .bind(ref, m.name)
        for m in model.members
    }
    features = (
        cast(Deployment, Features).options(ray_actor_options=light, **_scaling(settings)).bind(ref)
    )
    return (
        cast(Deployment, Combiner)
        .options(ray_actor_options=light, **_scaling(settings))
        .bind(ref, colour, members, features)
    )


def _scaling(settings: Settings) -> dict[str, Any]:
    return {
        "max_ongoing_requests": settings.serve_max_ongoing_requests,
        "max_queued_requests": settings.serve_max_queued_requests,
        "autoscaling_config": {
            "min_replicas": settings.serve_min_replicas,
            "max_replicas": settings.serve_max_replicas,
            "target_ongoing_requests": settings.serve_target_ongoing_requests,
        },
    }
