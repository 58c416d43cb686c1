"""The ingress's stream predictions count as the active version's requests, as clients' do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from driftline.config import Settings
from serving.ingress import Ingress
from serving.metrics import ServingMetrics
from serving.stream import BarReplay
from tests.serving.ingress_harness import _router


def _ingress(tmp_path: Path) -> tuple[SimpleNamespace, ServingMetrics]:
    settings = Settings(home=tmp_path)
    router, m = _router(settings)
    bars = pd.DataFrame(
        {c: [float(i) for i in range(1, 8)] for c in ("open", "high", "low", "close", "volume")},
        index=pd.date_range("2020-01-01", periods=7, name="date"),
    )
    replay = BarReplay(bars, window=3)
    return SimpleNamespace(router=router, settings=settings, _replay=replay, _outcome_hook=None), m


def _count(m: ServingMetrics, code: str) -> float:
    return m.requests.labels("stream", "m", "1", code)._value.get()


async def test_a_stream_prediction_is_a_request_of_the_active_version(tmp_path: Path) -> None:
    ingress, m = _ingress(tmp_path)
    before = _count(m, "200")
    message = await Ingress.func_or_class._stream_prediction(ingress)
    assert message is not None
    assert message["model_version"] == "1"
    assert _count(m, "200") == before + 1
    samples = m.request_duration.collect()[0].samples
    counts = [s for s in samples if s.name.endswith("_count") and s.labels["endpoint"] == "stream"]
    assert counts
    assert counts[0].value >= 1


async def test_a_failed_stream_prediction_is_a_server_error_of_the_version(tmp_path: Path) -> None:
    ingress, m = _ingress(tmp_path)

    async def broken(*_args: object) -> None:
        raise RuntimeError("member down")

    ingress.router.predict_inputs = broken
    before = _count(m, "500")
    with pytest.raises(RuntimeError):
        await Ingress.func_or_class._stream_prediction(ingress)
    assert _count(m, "500") == before + 1
