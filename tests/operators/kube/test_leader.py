"""Lease-based leader election: one replica leads, a dead leader's lease is taken over."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from operators.kube.api import LEASE, KubeApiError
from operators.kube.leader import LeaseElector, claim
from tests.operators.fakes import Clock
from tests.operators.kube.cluster import FakeKubeApi

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_claim_respects_a_live_holder_and_takes_an_expired_one() -> None:
    fresh = claim(None, "a", NOW, 15)
    assert fresh is not None
    assert fresh["spec"]["holderIdentity"] == "a"
    assert claim(fresh, "b", NOW + timedelta(seconds=10), 15) is None
    renewed = claim(fresh, "a", NOW + timedelta(seconds=10), 15)
    assert renewed is not None
    assert renewed["spec"]["acquireTime"] == fresh["spec"]["acquireTime"]
    taken = claim(fresh, "b", NOW + timedelta(seconds=16), 15)
    assert taken is not None
    assert (taken["spec"]["holderIdentity"], taken["spec"]["leaseTransitions"]) == ("b", 1)


def test_two_replicas_one_leader_and_failover(kube: FakeKubeApi) -> None:
    clock = Clock(NOW)
    a = LeaseElector(kube, "ml", "driftline-controller", "pod-a", 15, clock)
    b = LeaseElector(kube, "ml", "driftline-controller", "pod-b", 15, clock)
    assert a.try_acquire()
    assert not b.try_acquire()
    clock.advance(10)
    assert a.try_acquire()
    assert not b.try_acquire()
    clock.advance(16)  # pod-a died: its lease lapses
    assert b.try_acquire()
    assert not a.try_acquire()
    b.release()
    assert a.try_acquire()
    assert "Lease/driftline-controller" in kube.validate.validated


def test_a_concurrent_write_loses_the_race(kube: FakeKubeApi) -> None:
    clock = Clock(NOW)
    a = LeaseElector(kube, "ml", "l", "pod-a", 15, clock)
    assert a.try_acquire()
    stale = kube.get(LEASE, "ml", "l")
    assert stale is not None
    clock.advance(20)
    b = LeaseElector(kube, "ml", "l", "pod-b", 15, clock)
    assert b.try_acquire()
    stale["spec"]["holderIdentity"] = "pod-c"
    with pytest.raises(KubeApiError) as error:
        kube.replace(LEASE, "ml", "l", stale)
    assert error.value.status == 409


def test_lead_starts_once_and_steps_down_when_the_lease_is_lost(kube: FakeKubeApi) -> None:
    clock = Clock(NOW)
    elector = LeaseElector(kube, "ml", "l", "pod-a", 1, clock)
    started: list[str] = []
    stop = threading.Event()
    rounds = {"n": 0}

    def start() -> None:
        started.append("kopf")

    original = elector.try_acquire

    def flaky() -> bool:
        rounds["n"] += 1
        clock.advance(2)
        if rounds["n"] > 2:
            # Another replica took over (e.g. this one was partitioned away).
            return False
        return original()

    elector.try_acquire = flaky  # type: ignore[method-assign]
    assert elector.lead(start, stop) is False
    assert started == ["kopf"]
