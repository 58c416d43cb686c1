"""The loop promotes on real data, by the default gates: the end of the dot-com bear market.

The champion learns the bars to March 2003, the bottom of the 2000-2003 bear market. The stream
replays from October 2004, after the recovery: calmer, rising markets. Drift starts a
retraining over the five years to June 2005; the default offline gates compare both versions on
the candidate's hold-out (September 2004 to June 2005, bars neither was fitted on), where the
candidate must have a significantly lower squared error than the champion (Diebold-Mariano,
alpha 0.05) and lose to no naive baseline the champion beats; then shadow, the switch under load,
verification and promotion, with both gate facts in `driftline audit`.

The same scenario runs on both indices `arch` ships, with `driftline up`'s resources and gates:
the offline gates' tests, levels and window, the shadow and live tests and the verification's
error-rate and latency limits are the defaults. LOOP_ENV (tests/e2e/conftest.py) shortens
intervals, durations, the drift window and the trial and sustained-report counts, and lowers two
sample sizes below their defaults: the paired outcomes the shadow needs
(`DRIFTLINE_CONTROLLER_SHADOW_MIN_PAIRS`) and the requests verification needs
(`DRIFTLINE_CONTROLLER_VERIFY_MIN_REQUESTS`).
"""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pytest

from driftline.registry import Registry
from driftline.store.rollouts import RolloutRecord
from operators.spec import GatePolicy, required_gates
from tests.e2e.conftest import (
    E2E_MARKS,
    LOOP_ENV,
    LOOP_LIMIT_S,
    Index,
    Load,
    Platform,
    Scenario,
    assert_served_as_up,
    audit,
    controller_thread,
    wait_for,
)

pytestmark = E2E_MARKS

MODEL = "market-ensemble"
ROLLOUT_TIMEOUT_S = 900.0
STREAM_START = "2004-10-01"
# The five years before the retraining's last bar; hold-out and gates take its final fifth.
RETRAIN_ARGS = "--members rf,xgb --start 2000-06-01 --end 2005-06-30"
SYMBOLS: dict[Index, str] = {"sp500": "SPX", "nasdaq": "IXIC"}


def dotcom_recovery(index: Index) -> Scenario:
    """Champion to March 2003, stream and retraining after the recovery, on `index`."""
    env = {
        **LOOP_ENV,
        "DRIFTLINE_SYMBOL": SYMBOLS[index],
        "DRIFTLINE_STREAM_START": STREAM_START,
        "DRIFTLINE_CONTROLLER_RETRAIN_ARGS": RETRAIN_ARGS,
    }
    return Scenario(
        index, (date(1999, 1, 1), date(2005, 6, 30)), (date(1999, 1, 1), date(2003, 3, 31)), env
    )


@pytest.fixture(scope="module", params=["sp500", "nasdaq"])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """The end of the dot-com bear market, on each index."""
    index: Index = request.param
    return dotcom_recovery(index)


def _rollouts(platform: Platform) -> list[RolloutRecord]:
    return platform.store.controller.rollouts(MODEL, limit=50)


def _result(platform: Platform, rollout_id: str) -> RolloutRecord | None:
    found = [r for r in _rollouts(platform) if r.rollout_id == rollout_id and r.result]
    return found[0] if found else None


def _phase(platform: Platform) -> str | None:
    record = platform.store.controller.controller_state(MODEL)
    return record.phase if record else None


def _load_rows(platform: Platform) -> list[list[float]]:
    """Feature rows the stream also replays (October 2004 on), in the champion's spec."""
    from driftline.data import load_bars  # noqa: PLC0415
    from driftline.features import compute_matrix  # noqa: PLC0415

    spec = Registry(platform.settings).load_bundle(platform.champion).spec
    matrix = compute_matrix(load_bars(platform.settings.data.path), spec)
    rows = matrix.loc[STREAM_START:].dropna()
    return [[float(x) for x in row] for row in rows.to_numpy()[:200]]


def _drift_rollout(platform: Platform) -> tuple[RolloutRecord, Load]:
    """Run the monitor and a controller, as `driftline up` does, until the drift-triggered
    rollout ends; clients send constant load from the gates on (verification needs traffic)."""
    from driftline.drift.service import build_monitor  # noqa: PLC0415

    settings = platform.controller_settings()
    monitor = build_monitor(settings, store=platform.store)
    stop_monitor = threading.Event()
    watcher = threading.Thread(target=monitor.run_forever, args=(stop_monitor,), daemon=True)
    url = f"{platform.base_url}/v2/models/{MODEL}/infer"
    load = Load(url, _load_rows(platform), headers=platform.headers)
    started = time.monotonic()
    watcher.start()
    try:
        with controller_thread(settings, platform.store):
            (rollout,) = wait_for("drift to start a retraining", lambda: _rollouts(platform), 600)
            # One rollout is all this test follows: no later report may start another.
            stop_monitor.set()
            wait_for(
                "the retraining job",
                lambda: _phase(platform) not in {None, "retraining"},
                ROLLOUT_TIMEOUT_S,
            )
            with load:
                done = wait_for(
                    "the rollout's result",
                    lambda: _result(platform, rollout.rollout_id),
                    ROLLOUT_TIMEOUT_S,
                )
    finally:
        stop_monitor.set()
        watcher.join(30)
    platform.timings["promotion_loop_s"] = time.monotonic() - started
    print(f"e2e real-data promotion: {done.result}: {done.reason} ({platform.timings})")
    return done, load


def _gate(events: list[dict[str, Any]], rollout_id: str, name: str) -> dict[str, Any]:
    (found,) = [
        e
        for e in events
        if e["kind"] == "gate" and e["rollout"] == rollout_id and e["details"]["gate"] == name
    ]
    return found


def test_clients_call_the_ingress_replica_driftline_up_starts(platform: Platform) -> None:
    assert_served_as_up(platform)


def test_a_candidate_retrained_after_a_regime_change_is_promoted_by_the_default_gates(
    platform: Platform, scenario: Scenario
) -> None:
    policy = platform.settings.rollout.gates
    assert policy == GatePolicy()  # the default gates, baselines included
    rollout, load = _drift_rollout(platform)
    rid = rollout.rollout_id
    events = audit(MODEL)
    gates = {g.name: g for g in platform.store.controller.gate_results(rid)}
    assert rollout.result == "promoted", f"{rollout.reason}; gates: {gates}"
    assert rollout.trigger.startswith("drift:")
    assert platform.timings["promotion_loop_s"] < LOOP_LIMIT_S, platform.timings
    assert rollout.champion_version == platform.champion
    candidate = Registry(platform.settings).load_bundle(str(rollout.candidate_version))
    assert candidate.data_window["last"] == "2005-06-30"
    # Every default gate passed, offline, in shadow and live.
    assert set(gates) >= {*required_gates(policy), "shadow_quality"}
    assert all(g.passed for g in gates.values()), gates
    # Fact 1, in the audit: the candidate's loss is significantly below the champion's.
    beats = _gate(events, rid, "beats_champion")
    figures = beats["details"]["figures"]
    assert beats["details"]["passed"]
    assert figures["candidate_mse"] < figures["champion_mse"]
    assert figures["pvalue"] < policy.alpha
    # Fact 2, in the audit: no baseline the champion beats beats the candidate.
    baselines = _gate(events, rid, "beats_baselines")
    assert baselines["details"]["passed"]
    assert "the champion beats" in baselines["reason"]
    numbers = baselines["details"]["figures"]
    names = [k.removesuffix("_mse") for k in numbers if k.endswith("_mse")]
    champion_beats = [
        n
        for n in names
        if n not in {"candidate", "champion"} and numbers["champion_mse"] < numbers[f"{n}_mse"]
    ]
    assert all(numbers["candidate_mse"] < numbers[f"{n}_mse"] for n in champion_beats)
    # The chain in the audit, ending in the promotion; the registry and serving agree.
    moves = [
        (e["from"], e["to"]) for e in events if e["kind"] == "transition" and e["rollout"] == rid
    ]
    assert moves == [
        ("drifting", "retraining"),
        ("retraining", "evaluating"),
        ("evaluating", "deploying"),
        ("deploying", "verifying"),
        ("verifying", "promoted"),
    ]
    assert Registry(platform.settings).alias_version("champion") == rollout.candidate_version
    # Constant load through the switch: not one request failed.
    assert len(load.answers) > 20
    assert load.failures == []
    print(
        f"e2e {scenario.index}: beats_champion {beats['reason']}; "
        f"beats_baselines {baselines['reason']}"
    )
