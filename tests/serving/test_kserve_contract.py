"""The InferenceService predictor's prediction log keys V2 rows for outcomes as the ingress does:
a live row named by its request parameters settles, and pairs with the shadow's answer."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from driftline.config import Settings
from driftline.drift.outcomes import OutcomeRecorder
from driftline.store import Store, utcnow
from driftline.store.drift_records import Outcome
from serving import protocol
from serving.kserve_contract import PredictionLog
from serving.metrics import metrics

MODEL = "market-ensemble"


async def test_v2_rows_keyed_by_their_request_parameters_make_gate_pairs(store: Store) -> None:
    settings = Settings()
    log = PredictionLog(store, settings, model_name=MODEL, version="1", metrics=metrics())
    since = utcnow() - timedelta(seconds=1)
    rows = np.zeros((3, 2))
    requests = {
        "keyed": protocol.outcome_key({"symbol": "SPX", "as_of": "2024-03-01"}),
        "unkeyed": protocol.outcome_key(None),
    }
    for request_id, key in requests.items():
        # As the predictor records its answer to a 3-row batch, then the mirror the shadow's.
        log.record(
            request_id=request_id,
            endpoint="v2_infer",
            rows=rows,
            ensemble=np.array([0.1, 0.2, 0.3]),
            members={},
            latency_ms=1.0,
            symbol=key.symbol,
            as_of=key.as_of,
        )
        log.record(
            request_id=request_id,
            endpoint="v2_infer",
            rows=rows,
            ensemble=np.array([0.4, 0.5, 0.6]),
            members={},
            latency_ms=1.0,
            slot="shadow",
            version="2",
            colour="green",
        )
    await log.close()  # writes what is queued
    live = {r.request_id: r for r in store.predictions.predictions(slot="live")}
    assert (live["keyed"].symbol, live["keyed"].as_of) == requests["keyed"]
    assert (live["unkeyed"].symbol, live["unkeyed"].as_of) == (None, None)
    # The outcome as the API takes it, the same day spelled otherwise: it knows the keyed row.
    as_of = protocol.outcome_key({"symbol": "SPX", "as_of": "2024-03-01T00:00:00Z"}).as_of
    assert as_of is not None
    ingest = OutcomeRecorder(store, settings).ingest([Outcome("SPX", as_of, 0.01, source="api")])
    assert ingest.stored == 1
    # One gate pair, of the batch's last row (what `as_of` describes); the unkeyed one makes none.
    assert store.controller.paired_outcomes(MODEL, "2", "1", since=since) == [(0.6, 0.3, 0.01)]
