"""The controller's tables on PostgreSQL and SQLite: lease, compare-and-set, requests, gates."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from driftline.store import Store, utcnow
from driftline.store.rollouts import (
    ControllerRequest,
    GateRecord,
    RolloutRecord,
    StaleStateError,
)


def test_lease_excludes_a_second_holder_until_it_expires(store: Store) -> None:
    now = utcnow()
    first = store.acquire_controller_lease("m", "a", ttl_s=30, now=now)
    assert first is not None
    assert (first.revision, first.state, first.lease_holder) == (0, None, "a")
    assert store.acquire_controller_lease("m", "b", ttl_s=30, now=now) is None
    assert store.acquire_controller_lease("m", "a", ttl_s=30, now=now) is not None
    later = now + timedelta(seconds=31)
    taken = store.acquire_controller_lease("m", "b", ttl_s=30, now=later)
    assert taken is not None
    assert taken.lease_holder == "b"
    store.release_controller_lease("m", "b")
    assert store.acquire_controller_lease("m", "c", ttl_s=30, now=later) is not None


def test_state_writes_are_compare_and_set_under_the_lease(store: Store) -> None:
    now = utcnow()
    assert store.acquire_controller_lease("m", "a", ttl_s=30, now=now) is not None
    revision = store.save_controller_state(
        "m", {"phase": "drifting"}, phase="drifting", revision=0, holder="a", now=now
    )
    assert revision == 1
    stored = store.controller_state("m")
    assert stored is not None
    assert (stored.revision, stored.phase, stored.state) == (1, "drifting", {"phase": "drifting"})
    with pytest.raises(StaleStateError):
        store.save_controller_state("m", {}, phase="stable", revision=0, holder="a", now=now)
    with pytest.raises(StaleStateError):
        store.save_controller_state("m", {}, phase="stable", revision=1, holder="b", now=now)


def test_requests_are_handled_once_in_order(store: Store) -> None:
    first = ControllerRequest("m", "promote", "7", created_at=utcnow() - timedelta(seconds=1))
    second = ControllerRequest("m", "rollback")
    store.add_controller_request(second)
    store.add_controller_request(first)
    store.add_controller_request(first)
    assert [r.request_id for r in store.controller_requests("m")] == [
        first.request_id,
        second.request_id,
    ]
    store.consume_controller_request(first.request_id, "accepted", now=utcnow())
    store.consume_controller_request(first.request_id, "again", now=utcnow())
    assert [r.request_id for r in store.controller_requests("m")] == [second.request_id]
    (done,) = [r for r in store.controller_requests("m", pending=False) if r.consumed_at]
    assert done.outcome == "accepted"


def test_gate_verdicts_are_never_overwritten(store: Store) -> None:
    failed = GateRecord("r1", "artifact", "m", "2", False, "corrupt", {"bytes": 12.0})
    assert store.record_gate_results([failed]) == 1
    assert store.record_gate_results([GateRecord("r1", "artifact", "m", "2", True, "ok")]) == 0
    (stored,) = store.gate_results("r1")
    assert (stored.passed, stored.detail, stored.figures) == (False, "corrupt", {"bytes": 12.0})


def test_rollout_summaries_upsert(store: Store) -> None:
    started = utcnow()
    record = RolloutRecord("r1", "m", "retrain", "drift:x", started, "retraining", "1", "drift")
    store.upsert_rollout(record)
    store.upsert_rollout(
        replace(
            record, phase="promoted", candidate_version="2", finished_at=utcnow(), result="promoted"
        )
    )
    (stored,) = store.rollouts("m")
    assert (stored.phase, stored.result, stored.candidate_version) == ("promoted", "promoted", "2")
