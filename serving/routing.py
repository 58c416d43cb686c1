"""Routing and scoring: which colour answers a request, its coalesced scoring, the shadow mirror
(to a colour bound here, or over HTTP through `serving.mirror`) and the prediction each answer
leaves in the store.

The bottom layer of the ingress: the HTTP endpoints and the Serve deployment build on it, and it
knows neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
from opentelemetry.trace import SpanContext, SpanKind
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from driftline.config import Settings
from driftline.observability import tracing
from driftline.registry.predictor import combine
from driftline.store.records import PredictionRecord
from serving import protocol
from serving.channel import MemberEndpoint, in_background, score
from serving.coalesce import Coalescer
from serving.errors import (
    BadInputError,
    DeadlineExceededError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    ReplicaUnavailableError,
)
from serving.metrics import ServingMetrics
from serving.writer import PredictionWriter

if TYPE_CHECKING:
    from driftline.store import Store
    from serving.mirror import ShadowMirror

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
Scored = tuple[Array, dict[str, Array]]
# What the coalescer batches: a colour, feature rows and the asking request's span (if traced).
Item = tuple["ColourRoute", Array, SpanContext | None]


class Answerer(Protocol):
    """The colour and version a stored prediction names: a route here, or a remote shadow."""

    @property
    def colour(self) -> str: ...

    @property
    def version(self) -> str: ...


class RemoteColour(NamedTuple):
    """A colour served elsewhere, as the HTTP mirror names the shadow that answered."""

    colour: str
    version: str


@dataclass(frozen=True, eq=False)
class ColourRoute:
    """A deployed colour: its handle and what its model accepts."""

    colour: str
    handle: DeploymentHandle[Any]
    info: dict[str, Any]
    members: dict[str, MemberEndpoint] = field(default_factory=dict)

    async def score(self, rows: Array) -> Scored:
        """Ensemble and member outputs for feature rows: the members are asked directly and
        combined here, one hop instead of two through the colour's combiner."""
        # Members compare float32 features (trees, ONNX): float32 halves what is sent.
        outputs = await score(self.members, rows.astype(np.float32))
        with tracing.span("combine"):
            ensemble = combine(outputs, self.weights, float(self.info["intercept"]))
        return ensemble, outputs

    @functools.cached_property
    def weights(self) -> dict[str, float]:
        """Each member's weight in the ensemble."""
        return {m: float(w) for m, w in self.info["weights"].items()}

    @property
    def version(self) -> str:
        return str(self.info["version"])

    @functools.cached_property
    def limits(self) -> protocol.Limits:
        return protocol.Limits(
            n_features=int(self.info["n_features"]),
            window=int(self.info["window"]),
            max_rows=int(self.info["max_rows"]),
        )


@dataclass
class Routing:
    """The active colour, an optional shadow, and every deployed colour by version."""

    active: ColourRoute | None = None
    shadow: ColourRoute | None = None
    by_version: dict[str, ColourRoute] = field(default_factory=dict)


class Router:
    """Answers for one model: routes to a colour, scores, mirrors to the shadow, records."""

    def __init__(
        self,
        model_name: str,
        settings: Settings,
        metrics: ServingMetrics,
        writer: PredictionWriter,
    ) -> None:
        self.model_name = model_name
        self.settings = settings
        self.metrics = metrics
        self.writer = writer
        # Replaced whole by the deployment's reconfigure, so a request sees one routing.
        self.routing = Routing()
        self._batch = metrics.batch_size.labels("ingress")
        self._scorer = Coalescer(
            self._score,
            settings.serving.batch_size,
            settings.serving.request_timeout_s,
            whole=(ReplicaUnavailableError, RayActorError),
        )
        self._shadow_inflight = 0
        # The HTTP mirror (`serving.mirror`) to a shadow colour not bound here, if configured.
        self.remote: ShadowMirror | None = None

    def route_for(self, model: str, version: str | None) -> ColourRoute:
        """The colour that answers for `model` (and `version`), or NotFoundError/NotReadyError."""
        if model != self.model_name:
            raise NotFoundError(
                f"model {model!r} not found; this server serves {self.model_name!r}"
            )
        if version is not None:
            route = self.routing.by_version.get(version)
            if route is None:
                known = sorted(self.routing.by_version)
                raise NotFoundError(
                    f"model {model!r} has no deployed version {version!r} ({known})"
                )
            return route
        if self.routing.active is None:
            raise NotReadyError("no model version is active yet")
        return self.routing.active

    async def call(self, awaitable: Awaitable[Any]) -> Any:
        """Await a handle call under the end-to-end deadline, mapping Serve's errors to ours."""
        try:
            # A timeout scope, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(self.settings.serving.request_timeout_s):
                return await awaitable
        except TimeoutError:
            raise DeadlineExceededError(
                f"no answer within {self.settings.serving.request_timeout_s:g}s"
            ) from None
        except BackPressureError:
            raise OverloadedError("the model is at capacity; retry shortly") from None
        except RayActorError as error:
            # A replica died under the call (SIGKILL, node loss): unavailable, not a bug.
            raise ReplicaUnavailableError(f"a model replica is unavailable: {error}") from None

    async def predict_rows(self, route: ColourRoute, rows: Array) -> Scored:
        """Ensemble and member outputs for feature rows from `route`."""
        item: Item = (route, rows, tracing.current_span_context())
        try:
            result: Scored = await self.call(self._scorer(item))
        except ReplicaUnavailableError as error:
            # Scoring rows changes nothing, so it is safe to try once more: Serve routes the
            # second call to a live replica. A second failure is the client's 503.
            log.warning("retrying on another replica: %s", error.message)
            result = await self.call(self._scorer(item))
        return result

    async def _score(self, items: list[Item]) -> list[Scored]:
        # Requests that arrive while a batch is in flight share the next member round: one
        # round per batch instead of one per request is what lets the graph keep up under load.
        self._batch.observe(len(items))
        with score_span(items):
            return await self._score_batch(items)

    async def _score_batch(self, items: list[Item]) -> list[Scored]:
        if len(items) == 1:
            route, rows, _trace = items[0]
            return [await route.score(rows)]
        by_route: dict[str, list[int]] = {}
        for i, (route, _rows, _trace) in enumerate(items):
            by_route.setdefault(route.colour, []).append(i)
        results: list[Scored | None] = [None] * len(items)
        for indices in by_route.values():
            route = items[indices[0]][0]
            parts = [items[i][1] for i in indices]
            rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
            ensemble, members = await route.score(rows)
            bounds = np.cumsum([len(p) for p in parts])[:-1]
            ens_parts = np.split(ensemble, bounds)
            member_parts = {k: np.split(v, bounds) for k, v in members.items()}
            for j, i in enumerate(indices):
                results[i] = (ens_parts[j], {k: v[j] for k, v in member_parts.items()})
        return [r for r in results if r is not None]

    async def predict_inputs(
        self, route: ColourRoute, inputs: protocol.Inputs
    ) -> tuple[Array, Array, dict[str, Array]]:
        """Feature rows, ensemble and member outputs for rows or a bar window."""
        if inputs.rows is not None:
            ensemble, members = await self.predict_rows(route, inputs.rows)
            return inputs.rows, ensemble, members
        assert inputs.bars is not None
        try:
            with tracing.span("colour.predict_bars", kind=SpanKind.CLIENT):
                call = route.handle.predict_bars.remote(dict(inputs.bars), tracing.outgoing())
                result = await self.call(call)
        except BadInputError:
            raise
        except Exception as error:
            # A BadInputError raised inside the feature replica arrives wrapped by Ray.
            cause = getattr(error, "cause", None)
            if isinstance(cause, BadInputError):
                raise BadInputError(cause.message) from None
            raise
        rows, ensemble, members = result
        return rows, ensemble, members

    def record(
        self,
        *,
        request_id: str,
        endpoint: str,
        route: Answerer,
        rows: Array,
        ensemble: Array,
        members: Mapping[str, Array],
        latency_ms: float,
        slot: str = "live",
        symbol: str | None = None,
        as_of: Any = None,
    ) -> None:
        """Queue one prediction for the store."""
        self.writer.submit(
            PredictionRecord(
                request_id=request_id,
                model_name=self.model_name,
                model_version=route.version,
                endpoint=endpoint,
                prediction=ensemble.tolist(),
                member_outputs={k: v.tolist() for k, v in members.items()},
                latency_ms=latency_ms,
                features=rows,
                colour=route.colour,
                slot=slot,
                symbol=symbol,
                as_of=as_of,
                trace=tracing.current_span_context(),
            )
        )

    def mirror(self, request_id: str, endpoint: str, rows: Array) -> None:
        """Score `rows` on the shadow colour in the background; its answer is only stored. A
        shadow bound here is asked directly; with none, the HTTP mirror sends them to the shadow
        the controller's stored route names, if it names one."""
        shadow = self.routing.shadow
        if shadow is None:
            # The one check the hot path pays when nothing is mirrored.
            if self.remote is not None:
                self.remote.mirror(request_id, endpoint, rows)
            return
        if self._shadow_inflight >= self.settings.serving.max_ongoing_requests:
            return
        self._shadow_inflight += 1
        in_background(self._shadow(shadow, request_id, endpoint, rows))

    async def _shadow(
        self, route: ColourRoute, request_id: str, endpoint: str, rows: Array
    ) -> None:
        start = time.perf_counter()
        try:
            # Straight to the shadow colour, not through the live batcher: a batch answers all
            # its callers at once, so sharing one would make live requests wait for the shadow.
            scored: Scored = await self.call(route.score(rows))
            ensemble, members = scored
            latency = (time.perf_counter() - start) * 1e3
            self.record(
                request_id=request_id,
                endpoint=endpoint,
                route=route,
                rows=rows,
                ensemble=ensemble,
                members=members,
                latency_ms=latency,
                slot="shadow",
            )
        except Exception as error:
            log.warning("shadow scoring failed: %s", error, extra={"colour": route.colour})
        finally:
            self._shadow_inflight -= 1

    def unlogged(self) -> Router:
        """This router as a request another colour mirrored here sees it: it scores as any
        request does (same routing, same batches) but stores and mirrors nothing, since the
        sender stores the answer as its shadow's (`serving.mirror.is_mirror`)."""
        view = object.__new__(_Unlogged)
        vars(view).update(vars(self))
        return view


class _Unlogged(Router):
    """A Router whose answers leave nothing behind: see `Router.unlogged`."""

    def record(self, **_: Any) -> None:
        """Store nothing."""

    def mirror(self, request_id: str, endpoint: str, rows: Array) -> None:
        """Mirror nothing."""


class ShadowSink:
    """The ingress's side of the HTTP mirror: the store it reads the controller's route from,
    and its own prediction writer for the shadow's answers."""

    def __init__(self, router: Router, store: Store) -> None:
        self.router = router
        self.store = store
        self.model_name = router.model_name

    def record(
        self,
        *,
        request_id: str,
        endpoint: str,
        rows: Array,
        ensemble: Array,
        members: Mapping[str, Array],
        latency_ms: float,
        slot: str,
        version: str,
        colour: str,
    ) -> None:
        """Queue the remote colour's answer, as the router stores any."""
        self.router.record(
            request_id=request_id,
            endpoint=endpoint,
            route=RemoteColour(colour, version),
            rows=rows,
            ensemble=ensemble,
            members=members,
            latency_ms=latency_ms,
            slot=slot,
        )


def score_span(items: list[Item]) -> contextlib.AbstractContextManager[Any]:
    """A batch's scoring span: a child of its first traced request, linked to the others."""
    contexts = [trace for _route, _rows, trace in items]
    return tracing.batch_span("score", contexts, {"driftline.batch": len(items)})
