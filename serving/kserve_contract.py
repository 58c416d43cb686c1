"""What the InferenceService predictor shares with the Ray ingress: the prediction log (the same
`PredictionWriter` into `store.predictions`), the outcomes and drift API under `/api`, and the
writer's metrics, so the monitor, the shadow gate and live verification read either runtime alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from driftline.config import Settings
from driftline.ids import new_id
from driftline.registry.predictor import Array
from driftline.store import PredictionRecord, Store
from serving.http import REQUEST_ID_HEADERS
from serving.metrics import ServingMetrics, writer_gauges
from serving.writer import PredictionWriter


class Background(Protocol):
    """Work beside the app that may log predictions (the shadow mirror): started with the app,
    closed before the log's last flush."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class PredictionLog:
    """Queues each answered request of one colour for the store, as the Ray ingress does."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        model_name: str,
        version: str,
        metrics: ServingMetrics,
    ) -> None:
        self.store = store
        self.settings = settings
        self.model_name = model_name
        self.version = version
        self._on_change = writer_gauges(metrics)
        self._writer: PredictionWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def record(
        self,
        *,
        request_id: str,
        endpoint: str,
        rows: Array,
        ensemble: Array,
        members: Mapping[str, Array],
        latency_ms: float,
        slot: str = "live",
        version: str | None = None,
        colour: str | None = None,
        symbol: str | None = None,
        as_of: datetime | None = None,
    ) -> None:
        """Queue one prediction, this colour's live answer unless told otherwise (the shadow's
        answer to a mirrored request names its own version and colour), keyed for outcomes by
        `symbol` and `as_of` when the request named them; call on the server's event loop."""
        self._current().submit(
            PredictionRecord(
                request_id=request_id,
                model_name=self.model_name,
                model_version=version or self.version,
                endpoint=endpoint,
                prediction=ensemble.tolist(),
                member_outputs={k: v.tolist() for k, v in members.items()},
                latency_ms=latency_ms,
                features=rows,
                colour=colour or self.settings.serving.colour,
                slot=slot,
                symbol=symbol,
                as_of=as_of,
            )
        )

    async def close(self) -> None:
        """Write everything queued (bounded like the ingress's shutdown)."""
        if self._writer is not None:
            await self._writer.close(timeout_s=self.settings.serving.request_timeout_s * 3)

    def _current(self) -> PredictionWriter:
        # A writer drains on the loop it started on; uvicorn runs one loop per process, and an
        # app driven from several loops (tests, a restarted server) gets one writer per loop.
        loop = asyncio.get_running_loop()
        if self._writer is None or self._loop is not loop:
            serving = self.settings.serving
            self._writer = PredictionWriter(
                self.store.predictions,
                batch_size=serving.write_batch,
                interval_s=serving.write_interval_s,
                max_buffer=serving.write_buffer,
                on_change=self._on_change,
            )
            self._writer.start()
            self._loop = loop
        return self._writer


def request_id(headers: Mapping[str, str] | None) -> str:
    """The caller's request id header (trimmed to the store's 64 chars) or a new one."""
    for name in REQUEST_ID_HEADERS:
        value = (headers or {}).get(name.decode())
        if value:
            return value[:64]
    return new_id()


def mount_api(app: Any, log: PredictionLog, background: Background | None = None) -> None:
    """Serve the drift and outcomes API under `/api` of KServe's FastAPI `app`, as the ingress
    does; run `background` while the app runs, and flush the prediction log when it stops."""
    # FastAPI (the drift API) stays off the import path of the predictor's unit tests.
    from driftline.drift.api import drift_app  # noqa: PLC0415
    from driftline.drift.outcomes import OutcomeRecorder  # noqa: PLC0415

    recorder = OutcomeRecorder(log.store, log.settings)
    app.mount("/api", drift_app(log.store, recorder, model_name=log.model_name))
    app.router.lifespan_context = _flushing(app.router.lifespan_context, log, background)


def _flushing(
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]],
    log: PredictionLog,
    background: Background | None,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            if background is not None:
                await background.start()
            try:
                yield state
            finally:
                # Work in flight may still log (a mirror's answer): it ends before the flush.
                if background is not None:
                    await background.close()
                await log.close()

    return lifespan
