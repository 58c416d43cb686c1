"""The shadow mirror over HTTP, one for both runtimes: the active colour sends what it answered
to the shadow colour's server and stores the answer.

Where the shadow colour is out of this process's reach it is mirrored to over HTTP: the
InferenceService predictor (each colour its own pods) and the RayService ingress in the cluster
(each colour its own Ray cluster, so the shadow is not bound in its application; a shadow bound
in the same application is scored directly, `serving.routing.Router.mirror`). After the active
colour answers, the same rows go in the background to the shadow colour (V2 at
`DRIFTLINE_SERVE_SHADOW_URL`: the chart's preview Service, which the controller points at the
shadow colour), at most `max_ongoing_requests` at once and each within `request_timeout_s`. The
shadow's answer is stored through the sender's prediction log with slot `shadow` under the live
request's id: the pairs the controller's shadow gate compares. A failure is logged and counted
(`driftline_request_errors{endpoint="shadow"}`); the caller never sees it.

Which colour is mirrored to is the controller's decision, read from the store every
`shadow_poll_s`: `desired_route` of its stored state, the route it converges the Services to.
A mirrored request presents `DRIFTLINE_SERVE_SHADOW_KEY`; the server that receives it (either
runtime) answers without logging or mirroring it again (`is_mirror`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, cast

import httpx
import numpy as np
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from driftline.config import Settings
from driftline.registry.outputs import MEMBER_PREFIX, PREDICTION
from driftline.registry.predictor import Array
from driftline.store import Store
from operators.codec import decode_state
from operators.decide import desired_route
from serving.metrics import ServingMetrics
from serving.protocol import FEATURES_INPUT

log = logging.getLogger(__name__)

ENDPOINT = "shadow"  # the errors metric's endpoint label for mirrored requests
# Each mirrored request is named `shadow-<live id>` (X-Request-ID): a receiver checks the key only
# on requests so named, so a live request costs it a prefix test, not a header lookup.
MIRROR_ID_PREFIX = "shadow-"


class PredictionSink(Protocol):
    """The sender's side: the store it reads the controller's route from, its model, and its
    prediction log (the predictor's `PredictionLog`, the ingress's writer)."""

    @property
    def store(self) -> Store: ...

    @property
    def model_name(self) -> str: ...

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
        """Queue one prediction for the store (call on the server's event loop)."""


def shadow_colour(store: Store, model_name: str, colour: str) -> str | None:
    """The colour `colour` mirrors to under the controller's stored state: the shadow while
    `colour` takes traffic, else None."""
    record = store.controller.controller_state(model_name)
    if record is None or not record.state:
        return None
    active, shadow = desired_route(decode_state(record.state))
    return shadow if active == colour and shadow != colour else None


def is_mirror(headers: Mapping[str, str] | None, settings: Settings) -> bool:
    """Whether a request presents the mirror's key: the predictor that sent it stores the answer
    as the shadow's, so the one answering neither logs nor mirrors it."""
    key = mirror_key(settings)
    scheme, _, token = (headers or {}).get("authorization", "").partition(" ")
    if not key or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), key.encode())


def mirror_key(settings: Settings) -> str:
    """The mirror's API key; empty when unset (an empty Secret value included)."""
    key = settings.serving.shadow_key
    return "" if key is None else key.get_secret_value()


class ShadowMirror:
    """Sends each answered request's rows to the shadow colour and logs what it answers."""

    def __init__(self, sink: PredictionSink, settings: Settings, metrics: ServingMetrics) -> None:
        serving = settings.serving
        if serving.shadow_url is None or not mirror_key(settings):
            raise ValueError("mirroring needs DRIFTLINE_SERVE_SHADOW_URL and _SHADOW_KEY")
        self.sink = sink
        self.settings = settings
        self.metrics = metrics
        self.url = f"{serving.shadow_url.rstrip('/')}/v2/models/{sink.model_name}/infer"
        self._auth = f"Bearer {mirror_key(settings)}"
        # None until the first read of the controller's route, and whenever it has no shadow.
        self.shadow: str | None = None
        self._inflight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._failures = 0
        self._warned = 0.0

    @classmethod
    def from_settings(
        cls, sink: PredictionSink, settings: Settings, metrics: ServingMetrics
    ) -> ShadowMirror | None:
        """A mirror when both its URL and key are set; a URL without a key is logged, not used."""
        serving = settings.serving
        if serving.shadow_url is None:
            return None
        if not mirror_key(settings):
            log.warning(
                "no shadow mirroring: DRIFTLINE_SERVE_SHADOW_URL is set but "
                "DRIFTLINE_SERVE_SHADOW_KEY is not (an API key with scope predict)"
            )
            return None
        return cls(sink, settings, metrics)

    def mirror(self, request_id: str, endpoint: str, rows: Array) -> None:
        """Score `rows` on the shadow colour in the background (call on the server's loop)."""
        shadow = self.shadow
        if shadow is None or self._client is None:
            return
        if self._inflight >= self.settings.serving.max_ongoing_requests:
            self.metrics.errors.labels(ENDPOINT, "overload").inc()
            return
        self._inflight += 1
        self._spawn(self._send(self._client, shadow, request_id, endpoint, rows))

    async def start(self) -> None:
        """Open the connection pool and follow the controller's route."""
        bound = self.settings.serving.max_ongoing_requests
        self._client = httpx.AsyncClient(
            timeout=self.settings.serving.request_timeout_s,
            limits=httpx.Limits(max_connections=bound, max_keepalive_connections=bound),
        )
        self._poller = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        """Stop following, let mirrors in flight end (each within its timeout), close the pool."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.shadow = None
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _follow(self) -> None:
        store, model, colour = self.sink.store, self.sink.model_name, self.settings.serving.colour
        while True:
            try:
                shadow = await asyncio.to_thread(shadow_colour, store, model, colour)
            except Exception as error:  # the store is down, or the state unreadable
                log.warning("cannot read the controller's route; mirroring as before: %s", error)
            else:
                if shadow != self.shadow:
                    log.info("shadow mirroring", extra={"colour": colour, "shadow": shadow})
                self.shadow = shadow
            await asyncio.sleep(self.settings.serving.shadow_poll_s)

    async def _send(
        self, client: httpx.AsyncClient, shadow: str, request_id: str, endpoint: str, rows: Array
    ) -> None:
        started = time.perf_counter()
        try:
            # A whole-request bound: httpx's timeout applies per phase (connect, each read).
            async with asyncio.timeout(self.settings.serving.request_timeout_s):
                response = await client.post(
                    self.url,
                    json=request_body(self.sink.model_name, request_id, rows),
                    # Its own id: a shadow that logged it anyway could not displace the live row.
                    headers={
                        "Authorization": self._auth,
                        "X-Request-ID": f"{MIRROR_ID_PREFIX}{request_id}",
                    },
                )
            response.raise_for_status()
            version, ensemble, members = shadow_answer(response.json(), len(rows))
        except Exception as error:  # the live answer is out: a failure is only counted
            self._failed(shadow, error)
        else:
            self.sink.record(
                request_id=request_id,
                endpoint=endpoint,
                rows=rows,
                ensemble=ensemble,
                members=members,
                latency_ms=(time.perf_counter() - started) * 1e3,
                slot="shadow",
                version=version,
                colour=shadow,
            )
        finally:
            self._inflight -= 1

    def _failed(self, shadow: str, error: Exception) -> None:
        self.metrics.errors.labels(ENDPOINT, failure_kind(error)).inc()
        self._failures += 1
        # One line per poll interval at most: a dead shadow under load would flood the log.
        now = time.monotonic()
        if now - self._warned >= self.settings.serving.shadow_poll_s:
            log.warning(
                "shadow scoring failed (%d since the last report): %s",
                self._failures,
                describe(error),
                extra={"colour": shadow},
            )
            self._failures, self._warned = 0, now

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks: hold each until it ends.
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def request_body(model_name: str, request_id: str, rows: Array) -> dict[str, Any]:
    """The V2 request carrying `rows` as the one `features` tensor."""
    tensor = InferInput(FEATURES_INPUT, list(rows.shape), "FP64")
    tensor.set_data_from_numpy(np.asarray(rows, dtype=np.float64), binary_data=False)
    body, _ = InferRequest(model_name, [tensor], request_id=request_id).to_rest()
    return cast(dict[str, Any], body)  # a dict: the tensor is JSON data, not binary


def shadow_answer(document: Any, n_rows: int) -> tuple[str, Array, dict[str, Array]]:
    """(version, ensemble, members) of a V2 answer for `n_rows` rows; ValueError otherwise."""
    try:
        response = InferResponse.from_rest(document)
        outputs = {o.name: np.asarray(o.as_numpy(), dtype=np.float64) for o in response.outputs}
        ensemble = outputs.pop(PREDICTION)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"the shadow's answer is not a V2 ensemble answer: {error!r}") from None
    members = {
        name.removeprefix(MEMBER_PREFIX): values
        for name, values in outputs.items()
        if name.startswith(MEMBER_PREFIX)
    }
    if response.model_version is None or any(
        len(v) != n_rows for v in (ensemble, *members.values())
    ):
        raise ValueError(f"the shadow's answer has no version or not {n_rows} rows")
    return str(response.model_version), ensemble, members


def failure_kind(error: Exception) -> str:
    """The errors metric's kind of a failed mirror, as the ingress names its own failures."""
    if isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return "timeout"
    if isinstance(error, httpx.TransportError):
        return "unavailable"
    if isinstance(error, httpx.HTTPStatusError) and error.response.status_code in {429, 503}:
        return "overload"
    return "internal"


def describe(error: Exception) -> str:
    """One line about a failed mirror (a timeout's own message is empty)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code} from {error.request.url}"
    return str(error) or type(error).__name__
