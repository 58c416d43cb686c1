"""The monitor on a real PostgreSQL store: reports, alerts with a cooldown, metrics on /metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.drift.baselines import VersionData
from driftline.drift.monitor import LEASE_FLOOR_S, DriftMonitor, MonitorRun, lease_name
from driftline.drift.service import build_monitor
from driftline.observability.catalog import CATALOG
from driftline.observability.server import MetricsServer, server_guard
from driftline.raycluster import free_port
from driftline.store import PredictionRecord, Store, migrate, utcnow
from driftline.store.drift_records import Outcome
from driftline.store.keys import KeyStore

from .conftest import NAMES, REFERENCE_ROWS

WINDOW = 100
DAY0 = datetime(2010, 1, 4, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    store = Store(postgres_url, retries=1, backoff_s=0.01)
    store.upgrade()
    yield store
    migrate.downgrade(postgres_url, "base")
    store.close()


@pytest.fixture
def monitor_settings(settings: Settings) -> Settings:
    return settings.updated(
        {
            "drift": {
                "window": WINDOW,
                "null_windows": 60,
                "prefer_alibi": False,
                "alert_cooldown_s": 3600.0,
            },
            "registry": {"model_name": "m"},
        }
    )


def _reference(series: npt.NDArray[np.float64]) -> pd.DataFrame:
    frame = pd.DataFrame(series[:REFERENCE_ROWS], columns=NAMES)
    rng = np.random.default_rng(0)
    frame["prediction"] = 0.001 * frame["f00"]
    frame["target"] = frame["prediction"] + rng.normal(0, 0.01, len(frame))
    return frame


def _serve(store: Store, rows: npt.NDArray[np.float64], start: int = 0) -> None:
    """Write live predictions the way the serving ingress does: one row, symbol and as-of each."""
    now = utcnow()
    store.predictions.record_predictions(
        [
            PredictionRecord(
                request_id=f"req-{start + i}",
                model_name="m",
                model_version="1",
                endpoint="stream",
                prediction=[0.001 * float(row[0])],
                member_outputs={"rf": [0.0], "xgb": [0.0]},
                latency_ms=1.0,
                features=row[None, :],
                colour="blue",
                symbol="SPX",
                as_of=DAY0 + timedelta(days=start + i),
                created_at=now - timedelta(seconds=len(rows) - i),
            )
            for i, row in enumerate(rows)
        ]
    )


@pytest.mark.postgres
def test_monitor_writes_reports_and_alerts_and_exports_metrics(
    store: Store, monitor_settings: Settings, series: npt.NDArray[np.float64]
) -> None:
    calls: list[tuple[str, str]] = []

    def source(model: str, version: str) -> VersionData:
        calls.append((model, version))
        return VersionData(reference=_reference(series))

    clock = [utcnow()]
    registry = CollectorRegistry()
    monitor = build_monitor(monitor_settings, store=store, source=source, registry=registry)
    monitor.clock = lambda: clock[0]

    assert monitor.run_once().skipped == "no live predictions yet"
    _serve(store, series[REFERENCE_ROWS : REFERENCE_ROWS + 40])
    assert monitor.run_once().skipped == "40 of 100 live rows of v1 so far"

    # A calm window: the same process as the reference.
    _serve(store, series[REFERENCE_ROWS + 40 : REFERENCE_ROWS + WINDOW], start=40)
    calm = monitor.run_once()
    assert calm.report is not None
    assert calm.report.severity.label in {"none", "low"}
    assert calm.alert is None

    # Every feature moves: the next window is critical and raises one alert.
    shifted = series[REFERENCE_ROWS + WINDOW : REFERENCE_ROWS + 2 * WINDOW] + 3.0
    _serve(store, shifted, start=WINDOW)
    clock[0] += timedelta(minutes=5)
    drifted = monitor.run_once()
    assert drifted.report is not None
    assert drifted.report.severity.label == "critical"
    assert drifted.alert is not None
    # Inside the cooldown the same severity is not raised again; after it, it is.
    clock[0] += timedelta(minutes=5)
    assert monitor.run_once().alert is None
    clock[0] += timedelta(hours=2)
    assert monitor.run_once().alert is not None

    assert calls == [("m", "1")], "the baseline is loaded once per version"
    assert store.drift.load_null_model("m", "1", WINDOW) is not None
    latest = store.drift.latest_report("m")
    assert latest is not None
    assert latest.severity == "critical"
    assert latest.recommendation == "retrain"
    assert len(store.drift.drift_reports(model_name="m")) == 4
    assert len(store.drift.alerts(model_name="m")) == 2
    assert store.drift.drift_scores(model_name="m", feature="f05", method="psi")

    # Served as `driftline drift monitor` serves it: /metrics needs a `read` credential.
    keys = KeyStore(store.url)
    reader = issue_key(keys, "prometheus", frozenset({Scope.READ})).key
    keys.close()
    guarded = monitor_settings.updated({"store": {"database_url": store.url}})
    server = MetricsServer(
        "127.0.0.1",
        free_port(),
        monitor.metrics.registry,
        live=lambda: (True, "alive"),
        ready=lambda: (True, "leading"),
        guard=server_guard(guarded),
    ).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert httpx.get(url, timeout=5).status_code == 401
        text = httpx.get(url, headers={"Authorization": f"Bearer {reader}"}, timeout=5).text
        assert httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=5).status_code == 200
    finally:
        server.stop()
    for spec in CATALOG:
        if spec.exported_by("drift") and spec.name != "driftline_live_performance":
            assert all(name in text for name in spec.series_names()), spec.name
    assert 'driftline_drift_severity{model="m"} 4.0' in text
    assert 'driftline_drift_alerts_total{model="m",severity="critical"} 2.0' in text
    assert 'driftline_drift_score{feature="f05",method="ks",model="m"}' in text


@pytest.mark.postgres
def test_monitor_judges_performance_from_outcomes(
    store: Store, monitor_settings: Settings, series: npt.NDArray[np.float64]
) -> None:
    reference = _reference(series)
    monitor = build_monitor(
        monitor_settings,
        store=store,
        source=lambda _m, _v: VersionData(reference=reference),
        registry=CollectorRegistry(),
    )
    rows = series[REFERENCE_ROWS : REFERENCE_ROWS + WINDOW]
    _serve(store, rows)
    rng = np.random.default_rng(1)
    # Realised values far noisier than the reference's errors: performance fell.
    outcomes = [
        Outcome("SPX", DAY0 + timedelta(days=i), 0.001 * float(rows[i, 0]) + rng.normal(0, 0.05))
        for i in range(WINDOW)
    ]
    assert store.drift.record_outcomes(outcomes, late_after_s=86400).stored == WINDOW
    run = monitor.run_once()
    assert run.report is not None
    performance = run.report.result("performance")
    assert performance is not None
    assert performance.skipped is None
    assert performance.drifted
    assert performance.summary["n_outcomes"] == WINDOW
    assert run.report.severity.label in {"high", "critical"}
    text = monitor.metrics.registry.get_sample_value(
        "driftline_live_performance", {"model": "m", "version": "1", "metric": "rmse"}
    )
    assert text is not None
    assert text > 0.03


class CountingMonitor(DriftMonitor):
    """A monitor that counts its runs (they have nothing to judge here)."""

    runs = 0

    def run_once(self) -> MonitorRun:
        self.runs += 1
        return super().run_once()


def _monitor(settings: Settings, store: Store, holder: str) -> CountingMonitor:
    built = build_monitor(settings, store=store, registry=CollectorRegistry())
    return CountingMonitor(settings, store, built.baselines, metrics=built.metrics, holder=holder)


@pytest.mark.postgres
def test_two_monitors_never_both_report(store: Store, monitor_settings: Settings) -> None:
    """Issue 13: the chart's monitor Deployment may overlap two pods; one lease, one writer."""
    settings = monitor_settings.updated({"drift": {"interval_s": 0.05}})
    monitors = [_monitor(settings, store, holder) for holder in ("pod-a", "pod-b")]
    stop = threading.Event()
    threads = [threading.Thread(target=m.run_forever, args=(stop,)) for m in monitors]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while sum(m.runs for m in monitors) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    leader = lease_name("m")
    holder = store.leases.holder(leader)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    runs = {m.holder: m.runs for m in monitors}
    assert holder in runs
    assert runs[holder] >= 5
    assert sum(runs.values()) == runs[holder], runs
    # The leader let go on its way out, so a successor need not wait out the lease.
    assert store.leases.holder(leader) is None


@pytest.mark.postgres
def test_a_standby_takes_over_when_the_lease_lapses(
    store: Store, monitor_settings: Settings
) -> None:
    clock = [utcnow()]
    settings = monitor_settings.updated({"drift": {"interval_s": 1.0}})  # the floor's TTL
    a, b = (_monitor(settings, store, holder) for holder in ("pod-a", "pod-b"))
    a.clock = b.clock = lambda: clock[0]
    assert a.lead()
    assert not b.lead()
    clock[0] += timedelta(seconds=LEASE_FLOOR_S - 1)
    assert a.lead()  # renewed
    clock[0] += timedelta(seconds=LEASE_FLOOR_S - 1)
    assert not b.lead()
    clock[0] += timedelta(seconds=LEASE_FLOOR_S + 1)  # a stopped renewing (a lost node)
    assert b.lead()
    assert not a.lead()


def test_the_monitor_prunes_old_records_once_a_day(
    store: Store, monitor_settings: Settings, series: npt.NDArray[np.float64]
) -> None:
    settings = monitor_settings.updated({"store": {"predictions_retention_days": 1}})
    monitor = build_monitor(
        settings,
        store=store,
        source=lambda _m, _v: VersionData(reference=_reference(series)),
        registry=CollectorRegistry(),
    )
    now = utcnow()
    clock = [now]
    monitor.clock = lambda: clock[0]

    def old(request_id: str) -> PredictionRecord:
        return PredictionRecord(
            request_id,
            "m",
            "1",
            "v2_infer",
            [0.1],
            {"rf": [0.1]},
            1.0,
            created_at=clock[0] - timedelta(days=2),
        )

    store.predictions.record_predictions([old("a")])
    assert (monitor.prune_if_due() or {})["predictions"] == 1
    store.predictions.record_predictions([old("b")])
    clock[0] = now + timedelta(hours=23)
    assert monitor.prune_if_due() is None  # pruned less than a day ago
    clock[0] = now + timedelta(days=1)
    assert (monitor.prune_if_due() or {})["predictions"] == 1
