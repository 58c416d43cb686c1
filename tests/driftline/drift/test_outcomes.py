"""Outcomes from bars: what a new bar settles, and the replay hook's wait for slow writers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.config import Settings
from driftline.drift import outcomes
from driftline.drift.outcomes import PENDING_CALLS, OutcomeRecorder, realised, replay_hook
from driftline.store import PredictionRecord, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    store.upgrade()
    yield store
    store.close()


def _bars(closes: list[float]) -> pd.DataFrame:
    index = pd.bdate_range("2008-10-01", periods=len(closes), name="date")
    return pd.DataFrame({"close": closes}, index=index)


def _predict(store: Store, when: pd.Timestamp) -> None:
    store.predictions.record_predictions(
        [
            PredictionRecord(
                request_id=str(when.value),
                model_name="m",
                model_version="1",
                endpoint="stream",
                prediction=[0.0],
                member_outputs={},
                latency_ms=1.0,
                features=np.zeros((1, 2)),
                symbol="SPX",
                as_of=when.tz_localize("UTC").to_pydatetime(),
            )
        ]
    )


def test_realised_values_are_forward_log_returns() -> None:
    settled = realised("SPX", _bars([100.0, 110.0, 99.0]), 1, source="t")
    assert [o.as_of for o in settled] == [
        datetime(2008, 10, 1, tzinfo=UTC),
        datetime(2008, 10, 2, tzinfo=UTC),
    ]
    assert settled[0].value == pytest.approx(math.log(1.1))
    assert settled[1].value == pytest.approx(math.log(0.9))
    assert realised("SPX", _bars([100.0]), 1, source="t") == []


def test_the_newest_bar_settles_the_previous_prediction(store: Store, settings: Settings) -> None:
    bars = _bars([100.0, 101.0, 102.0])
    _predict(store, bars.index[1])
    recorder = OutcomeRecorder(store, settings)
    result = recorder.record_bars("SPX", bars)
    assert result.stored == 1
    (pair,) = store.drift.outcome_pairs("m", limit=5)
    assert pair.value == pytest.approx(math.log(102 / 101))


def test_outcomes_wait_for_predictions_written_late_then_count_as_unknown(
    store: Store, settings: Settings
) -> None:
    bars = _bars([100.0, 101.0, 102.0, 103.0])
    recorder = OutcomeRecorder(store, settings)
    # The prediction for bar 1 is not written yet when bar 2 arrives.
    assert recorder.record_bars("SPX", bars.iloc[:3]).as_dict()["unknown"] == 0
    _predict(store, bars.index[1])
    assert recorder.record_bars("SPX", bars).stored == 1
    assert store.drift.count_outcomes() == 1
    # Bar 2's prediction never arrives: after PENDING_CALLS calls it is counted and dropped.
    for _ in range(PENDING_CALLS):
        recorder.record_bars("SPX", bars)
    assert recorder.counts["unknown"] == 1
    assert recorder.counts["stored"] == 1


async def test_replay_hook_records_through_the_default_recorder(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = OutcomeRecorder(store, settings)
    monkeypatch.setattr(outcomes, "default_recorder", lambda: recorder)
    bars = _bars([100.0, 105.0])
    _predict(store, bars.index[0])
    await replay_hook("SPX", bars)
    assert store.drift.count_outcomes() == 1
