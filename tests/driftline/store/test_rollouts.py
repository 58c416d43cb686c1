"""The controller's tables on PostgreSQL and SQLite: lease, compare-and-set, requests, gates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from driftline.store import PredictionRecord, Store, utcnow
from driftline.store.drift_records import Outcome
from driftline.store.rollouts import (
    ControllerRequest,
    GateRecord,
    RolloutRecord,
    StaleStateError,
)


def test_lease_excludes_a_second_holder_until_it_expires(store: Store) -> None:
    now = utcnow()
    first = store.controller.acquire_controller_lease("m", "a", ttl_s=30, now=now)
    assert first is not None
    assert (first.revision, first.state, first.lease_holder) == (0, None, "a")
    assert store.controller.acquire_controller_lease("m", "b", ttl_s=30, now=now) is None
    assert store.controller.acquire_controller_lease("m", "a", ttl_s=30, now=now) is not None
    later = now + timedelta(seconds=31)
    taken = store.controller.acquire_controller_lease("m", "b", ttl_s=30, now=later)
    assert taken is not None
    assert taken.lease_holder == "b"
    store.controller.release_controller_lease("m", "b")
    assert store.controller.acquire_controller_lease("m", "c", ttl_s=30, now=later) is not None


def test_state_writes_are_compare_and_set_under_the_lease(store: Store) -> None:
    now = utcnow()
    assert store.controller.acquire_controller_lease("m", "a", ttl_s=30, now=now) is not None
    revision = store.controller.save_controller_state(
        "m", {"phase": "drifting"}, phase="drifting", revision=0, holder="a", now=now
    )
    assert revision == 1
    stored = store.controller.controller_state("m")
    assert stored is not None
    assert (stored.revision, stored.phase, stored.state) == (1, "drifting", {"phase": "drifting"})
    with pytest.raises(StaleStateError):
        store.controller.save_controller_state(
            "m", {}, phase="stable", revision=0, holder="a", now=now
        )
    with pytest.raises(StaleStateError):
        store.controller.save_controller_state(
            "m", {}, phase="stable", revision=1, holder="b", now=now
        )


def test_requests_are_handled_once_in_order(store: Store) -> None:
    first = ControllerRequest("m", "promote", "7", created_at=utcnow() - timedelta(seconds=1))
    second = ControllerRequest("m", "rollback")
    store.controller.add_controller_request(second)
    store.controller.add_controller_request(first)
    store.controller.add_controller_request(first)
    assert [r.request_id for r in store.controller.controller_requests("m")] == [
        first.request_id,
        second.request_id,
    ]
    store.controller.consume_controller_request(first.request_id, "accepted", now=utcnow())
    store.controller.consume_controller_request(first.request_id, "again", now=utcnow())
    assert [r.request_id for r in store.controller.controller_requests("m")] == [second.request_id]
    (done,) = [r for r in store.controller.controller_requests("m", pending=False) if r.consumed_at]
    assert done.outcome == "accepted"


def test_gate_verdicts_are_never_overwritten(store: Store) -> None:
    failed = GateRecord("r1", "artifact", "m", "2", False, "corrupt", {"bytes": 12.0})
    assert store.controller.record_gate_results([failed]) == 1
    assert (
        store.controller.record_gate_results([GateRecord("r1", "artifact", "m", "2", True, "ok")])
        == 0
    )
    (stored,) = store.controller.gate_results("r1")
    assert (stored.passed, stored.detail, stored.figures) == (False, "corrupt", {"bytes": 12.0})


def test_rollout_summaries_upsert(store: Store) -> None:
    started = utcnow()
    record = RolloutRecord("r1", "m", "retrain", "drift:x", started, "retraining", "1", "drift")
    store.controller.upsert_rollout(record)
    store.controller.upsert_rollout(
        replace(
            record, phase="promoted", candidate_version="2", finished_at=utcnow(), result="promoted"
        )
    )
    (stored,) = store.controller.rollouts("m")
    assert (stored.phase, stored.result, stored.candidate_version) == ("promoted", "promoted", "2")


def _scored(
    request_id: str, version: str, value: float, *, slot: str, day: int | None = None
) -> PredictionRecord:
    # Live rows carry the (symbol, as of) their outcome settles; shadow rows only the request id.
    as_of = None if day is None else datetime(2009, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return PredictionRecord(
        request_id, "m", version, "stream", [value], {}, 1.0,
        slot=slot, symbol="SPX" if as_of else None, as_of=as_of,
    )  # fmt: skip


def test_paired_outcomes_join_live_and_shadow_by_request_in_either_direction(
    store: Store,
) -> None:
    since = utcnow() - timedelta(seconds=1)
    store.predictions.record_predictions(
        [
            # Champion 1 live, candidate 2 in shadow (the shadow phase) ...
            _scored("a", "1", 0.01, slot="live", day=0),
            _scored("a", "2", 0.02, slot="shadow"),
            # ... then candidate 2 live with champion 1 in shadow (verification).
            _scored("b", "2", 0.03, slot="live", day=1),
            _scored("b", "1", 0.04, slot="shadow"),
            # No shadow, another version's shadow, no outcome: not pairs.
            _scored("c", "1", 0.05, slot="live", day=2),
            _scored("d", "1", 0.06, slot="live", day=3),
            _scored("d", "3", 0.07, slot="shadow"),
            _scored("e", "1", 0.08, slot="live", day=9),
            _scored("e", "2", 0.09, slot="shadow"),
        ]
    )
    store.drift.record_outcomes(
        [
            Outcome("SPX", datetime(2009, 1, 1, tzinfo=UTC) + timedelta(days=d), v)
            for d, v in ((0, -0.1), (1, 0.2), (2, 0.3), (3, 0.4))
        ],
        late_after_s=86400,
    )
    assert store.controller.paired_outcomes("m", "2", "1", since=since) == [
        (0.02, 0.01, -0.1),
        (0.03, 0.04, 0.2),
    ]
    assert (
        store.controller.paired_outcomes("m", "2", "1", since=utcnow() + timedelta(seconds=5)) == []
    )
    assert store.controller.paired_outcomes("other", "2", "1", since=since) == []
