"""Outcomes: realised values joined to predictions, from the API, the CLI or the replay stream.

The replay stream calls `replay_hook(symbol, bars)` with each window of bars as a new bar
arrives (serving's `outcome_hook` argument, `driftline.drift.outcomes:replay_hook`): the newest
close realises the forward log return of the prediction made `horizon` bars earlier.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import AfterValidator

from driftline.config import Settings
from driftline.store import Store, StoreUnavailableError
from driftline.store.drift_records import Outcome, OutcomeIngest

log = logging.getLogger(__name__)

# Calls an outcome from the replay may wait for its prediction to be written.
PENDING_CALLS = 10
# Bars are daily (driftline.data): the value at `as_of` exists once `horizon` more bars closed.
BAR_LENGTH = timedelta(days=1)


class UnclosedBarError(ValueError):
    """Outcomes whose realising bar has not closed yet; nothing was stored."""

    def __init__(self, keys: Sequence[tuple[str, datetime]], horizon: int) -> None:
        self.keys = list(keys)
        shown = ", ".join(f"{s} {t.isoformat()}" for s, t in self.keys[:3])
        super().__init__(
            f"{len(self.keys)} outcome(s) settle a bar that has not closed yet ({shown}): "
            f"a value at as_of is known {horizon} bar(s) later; nothing was stored"
        )


def unclosed(outcomes: Sequence[Outcome], horizon: int, now: datetime) -> list[Outcome]:
    """The outcomes whose realising bar (`horizon` bars after as_of) closes after `now`."""
    return [o for o in outcomes if o.as_of + horizon * BAR_LENGTH > now]


def utc(value: object) -> datetime:
    """A timezone-aware UTC datetime; naive values (dates in bar files) are taken as UTC."""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    if pd.isna(stamp):
        raise ValueError(f"not a time: {value!r}")
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


AsOf = Annotated[datetime, AfterValidator(utc)]
"""An as-of time as every API reads one (the outcomes API, V2 request parameters): pydantic's
datetime (ISO 8601, a date, Unix seconds) in UTC, so the same text keys the same row everywhere."""


def realised(symbol: str, bars: pd.DataFrame, horizon: int, *, source: str) -> list[Outcome]:
    """Each forward log return over `horizon` bars that `bars` (date-indexed, in order) settle."""
    close = bars["close"].to_numpy(dtype=np.float64)
    if len(close) <= horizon:
        return []
    values = np.log(close[horizon:] / close[:-horizon])
    return [
        Outcome(symbol=symbol, as_of=utc(when), value=float(v), source=source)
        for when, v in zip(bars.index[:-horizon], values, strict=True)
    ]


class OutcomeRecorder:
    """Stores outcomes and keeps running counts of how each was handled."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._pending: list[tuple[Outcome, int]] = []
        self._lock = threading.Lock()

    def ingest(self, outcomes: Sequence[Outcome]) -> OutcomeIngest:
        """Store `outcomes` all or nothing: any without a prediction raises UnknownOutcomeError,
        any whose bar has not closed UnclosedBarError."""
        horizon = self.settings.training.horizon
        early = unclosed(outcomes, horizon, datetime.now(UTC))
        if early:
            self._count({"unclosed": len(early)})
            raise UnclosedBarError([(o.symbol, o.as_of) for o in early], horizon)
        try:
            result = self.store.drift.record_outcomes(
                outcomes, late_after_s=self.settings.drift.outcome_late_s
            )
        except LookupError:
            self._count({"unknown": len(outcomes)})
            raise
        self._count(result.as_dict())
        return result

    def record_bars(self, symbol: str, bars: pd.DataFrame) -> OutcomeIngest:
        """Settle the prediction the newest bar realises.

        Serving writes predictions in batches, so the prediction a bar settles may not be
        stored yet: an outcome without one waits for up to `PENDING_CALLS` later calls before
        it is counted unknown and dropped.
        """
        horizon = self.settings.training.horizon
        settled = realised(symbol, bars.iloc[-horizon - 1 :], horizon, source="replay")
        with self._lock:
            waiting = list(self._pending)
        waiting_keys = {(w.symbol, w.as_of) for w, _ in waiting}
        fresh = [o for o in settled if (o.symbol, o.as_of) not in waiting_keys]
        batch = [o for o, _ in waiting] + fresh
        result = self.store.drift.record_outcomes(
            batch, late_after_s=self.settings.drift.outcome_late_s, allow_unknown=True
        )
        missing = set(result.unknown_keys)
        tries = {(o.symbol, o.as_of): n for o, n in waiting}
        pending = []
        expired = 0
        for outcome in batch:
            key = (outcome.symbol, outcome.as_of)
            if key not in missing:
                continue
            calls = tries.get(key, 0) + 1
            if calls < PENDING_CALLS:
                pending.append((outcome, calls))
            else:
                expired += 1
        with self._lock:
            self._pending = pending
        counted = replace(result, unknown=expired, unknown_keys=())
        self._count(counted.as_dict())
        return counted

    def _count(self, counts: dict[str, int]) -> None:
        with self._lock:
            self.counts.update({k: v for k, v in counts.items() if v})


@cache
def default_recorder() -> OutcomeRecorder:
    """The recorder of this process's settings (the replay hook is named by import path)."""
    settings = Settings()
    return OutcomeRecorder(Store.from_settings(settings), settings)


async def replay_hook(symbol: str, bars: pd.DataFrame) -> None:
    """Serving's outcome hook: record what the newest bar settles, off the event loop."""
    try:
        await asyncio.to_thread(default_recorder().record_bars, symbol, bars)
    except StoreUnavailableError as error:
        # The stream goes on; the outcome is lost and said so (the replay cannot resend it).
        log.error("outcome not recorded: %s", error, extra={"symbol": symbol})
