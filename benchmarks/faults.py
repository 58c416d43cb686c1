"""Faults under load, measured: a member replica SIGKILLed and PostgreSQL restarted under HTTP load
through `driftline serve`, a PostgreSQL outage through the prediction writer and its spool, a
refused (poison) record, MLflow down when a replica loads its version, `driftline serve`/`up`/
`train` and a local Ray head's owner SIGKILLed, and a crowd of WebSocket clients.

`python -m benchmarks.faults` runs the issue's durations (a 2-minute outage); `--quick` runs
seconds-long versions to check the benchmark itself; `--only NAME[,NAME]` runs some scenarios
(`SCENARIOS`). Needs DRIFTLINE_TEST_DATABASE_URL (an administrative PostgreSQL URL): each
scenario makes a database of its own and refuses connections to it, so the shared server is
never stopped. Results carry `targets` and `met`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import sqlalchemy as sa

from benchmarks import _fault_processes as fault_processes
from benchmarks import synthetic
from benchmarks._timeline import HOLD_S, dips_after, from_open_loop, recovery_s, run_timeline
from benchmarks._ws_crowd import Pacing, pacing_argument
from benchmarks.harness import main_for
from benchmarks.loadgen import open_loop, run_load
from benchmarks.serving import (
    INFER,
    MODEL,
    _wait_for_output,
    body,
    create_key,
    driftline_serve,
    user_env,
)
from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.contracts import INGRESS_DEPLOYMENT
from driftline.raycluster import free_port
from driftline.store import PredictionRecord, Store, new_id
from driftline.store.engine import normalise_url
from driftline.store.keys import KeyStore
from serving.cli import stream_url
from serving.spool import Spool
from serving.writer import PredictionWriter

RATE_PER_S = 500  # answered predictions per second offered to the writer during the outage
CONCURRENCY = 4  # clients of the HTTP scenarios: the issue's "four clients"
Scenario = Callable[[bool], dict[str, Any]]


def run(quick: bool = False, only: Sequence[str] = ()) -> dict[str, Any]:
    """Every scenario (or those named in `only`); `quick` shortens each to seconds."""
    names = list(only) or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; have {sorted(SCENARIOS)}")
    document: dict[str, Any] = {"title": "faults" + (" (quick)" if quick else "")}
    targets: dict[str, Any] = {}
    met: dict[str, bool] = {}
    notes: list[str] = []
    for name in names:
        print(f"== faults: {name}", flush=True)
        result = SCENARIOS[name](quick)
        targets.update(result.pop("targets"))
        met.update(result.pop("met"))
        notes += result.pop("notes", [])
        document[name] = result
    document["targets"], document["met"], document["notes"] = targets, met, notes
    return document


def _outage_scenario(quick: bool) -> dict[str, Any]:
    outage = asyncio.run(_outage(5.0 if quick else 120.0))
    return {
        **outage,
        "targets": {
            "outage_lost": outage["lost"],
            "outage_duplicates": outage["duplicates"],
            "outage_in_order": outage["in_order"],
        },
        "met": {
            "outage_nothing_lost": outage["lost"] == 0,
            "outage_no_duplicates": outage["duplicates"] == 0,
            "outage_in_order": outage["in_order"],
        },
    }


def _poison_scenario(quick: bool) -> dict[str, Any]:
    poison = asyncio.run(_poison())
    return {
        **poison,
        "targets": {"poison_rows_written": poison["written"]},
        "met": {"poison_rest_written": poison["written"] == poison["good"]},
    }


@contextmanager
def _own_database() -> Iterator[tuple[sa.Engine, str, str]]:
    admin_url = os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not admin_url:
        raise SystemExit("benchmarks.faults needs DRIFTLINE_TEST_DATABASE_URL (PostgreSQL)")
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"driftline_faults_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(normalise_url(admin_url)).set(database=name)
    try:
        yield admin, name, url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _set_up(admin: sa.Engine, name: str, up: bool) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(up).lower()}'))
        if not up:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )


def _record(symbol: str = "SPX") -> PredictionRecord:
    return PredictionRecord(
        request_id=new_id(),
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.1],
        member_outputs={"rf": [0.1], "xgb": [0.1]},
        latency_ms=1.0,
        symbol=symbol,
    )


class _Recording:
    """The store, noting the order in which request ids were first written."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.written: list[str] = []

    def record_predictions(self, records: Any) -> int:
        new = self.store.predictions.record_predictions(records)
        self.written.extend(r.request_id for r in records)
        return new

    def quarantine(self, records: Any, error: str) -> None:
        self.store.predictions.quarantine(records, error)


async def _outage(outage_s: float) -> dict[str, Any]:
    with _own_database() as (admin, name, url), tempfile.TemporaryDirectory() as spool_dir:
        store = Store(url, retries=1, backoff_s=0.05, breaker_reset_s=1.0)
        store.upgrade()
        sink = _Recording(store)
        # A small memory bound, so the outage exercises the spool as the issue asks.
        writer = PredictionWriter(
            sink,
            batch_size=512,
            interval_s=0.05,
            max_buffer=2_000,
            max_backoff_s=1.0,
            spool=Spool(Path(spool_dir), max_bytes=256 << 20),
        )
        writer.start()
        ids: list[str] = []

        async def load(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for _ in range(RATE_PER_S // 20):
                    record = _record()
                    ids.append(record.request_id)
                    writer.submit(record)
                await asyncio.sleep(0.05)

        await load(2.0)
        _set_up(admin, name, False)
        try:
            await load(outage_s)
            peak_spooled = writer.status().spooled
        finally:
            _set_up(admin, name, True)
        recovered = time.monotonic()
        await load(2.0)
        while writer.status().backlog or writer.status().spooled:
            await asyncio.sleep(0.1)
        drained_s = time.monotonic() - recovered
        await writer.close()
        with store.engine.connect() as conn:
            total, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT request_id) FROM predictions")
            ).one()
        stored = store.predictions.count_predictions(ids)
        store.close()
    return {
        "outage_s": outage_s,
        "answered": len(ids),
        "stored": stored,
        "lost": len(ids) - stored,
        "duplicates": int(total) - int(distinct),
        "in_order": list(dict.fromkeys(sink.written)) == ids,
        "peak_spooled": peak_spooled,
        "dropped": writer.status().dropped,
        "drain_after_recovery_s": round(drained_s, 2),
    }


async def _poison() -> dict[str, Any]:
    with _own_database() as (_admin, _name, url):
        store = Store(url, retries=1, backoff_s=0.05)
        store.upgrade()
        writer = PredictionWriter(
            store.predictions, batch_size=256, interval_s=0.05, max_buffer=10_000
        )
        writer.start()
        good = [_record() for _ in range(1_000)]
        for i, record in enumerate(good):
            writer.submit(record)
            if i % 250 == 0:
                writer.submit(_record(symbol="nul\x00"))
                writer.submit(_record(symbol="lone\ud800"))
        await writer.close()
        written = store.predictions.count_predictions([r.request_id for r in good])
        quarantined = len(store.predictions.dead_letters())
        store.close()
    return {"good": len(good), "written": written, "quarantined": quarantined}


# --- (f) SIGKILLed owners of a Ray head -------------------------------------------------------
_CHILD = """
import time
from driftline.raycluster import LocalRayCluster
cluster = LocalRayCluster(num_cpus=1).start()
print("head up", flush=True)
time.sleep(600)
"""
# What each killed command prints once its Ray head has work running, and how long after it
# the kill comes: serve once it serves, train and up (no champion yet: it trains) while the
# training job's driver runs.
_KILLED: dict[str, tuple[list[str], str, float]] = {
    "local_ray_head_owner": ([sys.executable, "-c", _CHILD], "head up", 0.0),
    "driftline_serve": (["serve", "--version", "1", "--loader", synthetic.LOADER], "try:", 0.0),
    "driftline_train": (["train", "--trials", "1"], "submitted training job", 5.0),
    "driftline_up": (["up", "--trials", "1", "--no-controller"], "submitted training job", 5.0),
}


def _orphans_scenario(quick: bool) -> dict[str, Any]:
    """Each command SIGKILLed once its Ray head has work: which of its processes outlive it."""
    commands = ["local_ray_head_owner", "driftline_serve"] if quick else list(_KILLED)
    found = {name: sigkilled(name) for name in commands}
    survivors = {f"ray_survivors_{name}": r["survivors"] for name, r in found.items()}
    return {
        **found,
        "targets": survivors,
        "met": {
            f"no_ray_process_survives_{name}": r["survivors"] == 0 for name, r in found.items()
        },
        "notes": [
            "(f) each command runs in a fresh home and is SIGKILLed alone (not its process "
            "group); every process of that home (its environment's DRIFTLINE_HOME) and every "
            "descendant is watched for 20 s"
            + (
                "; --quick kills only a LocalRayCluster owner and `driftline serve`"
                if quick
                else ""
            )
        ],
    }


def sigkilled(name: str, source: Settings | None = None) -> dict[str, Any]:
    """Command `name` of `_KILLED` SIGKILLed in a fresh home (serving the synthetic version of
    `source`, default this run's); what outlived it."""
    argv, marker, after_s = _KILLED[name]
    with tempfile.TemporaryDirectory(prefix="dl-faults-kill-") as scratch:
        home = Path(scratch) / "home"
        env = {**_clean_env(), **user_env(home, f"sqlite:///{home / 'store.db'}")}
        if argv[0] == "serve":
            synthetic.copy_bundle(source or _source_settings(), home)
        if argv[0] != sys.executable:
            argv = [str(Path(sys.executable).with_name("driftline")), *argv]
        log_path = Path(scratch) / "command.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            _wait_for_output(log_path, marker, process, 900)
            time.sleep(after_s)
            return fault_processes.sigkill_and_watch(process, home)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            fault_processes.kill_leftovers(fault_processes.of_home(home))


def _clean_env() -> dict[str, str]:
    """This environment without a Ray address, so each command starts its own head."""
    ray = ("RAY_ADDRESS", "RAY_DASHBOARD_ADDRESS", "RAY_API_SERVER_ADDRESS")
    return {k: v for k, v in os.environ.items() if k not in ray} | {"PYTHONUNBUFFERED": "1"}


# --- serving under load ---------------------------------------------------------------------
@functools.cache
def _source_settings() -> Settings:
    """A home holding the synthetic version every served scenario copies (built once a run)."""
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="dl-faults-src-")))
    synthetic.make_bundle(settings, "1")
    return settings


@functools.cache
def _one_row() -> bytes:
    features = len(synthetic.load(_source_settings(), MODEL, "1").spec.features)
    return body(np.random.default_rng(0).normal(size=(1, features)))


@contextmanager
def _served(
    scratch: Path, store_url: str, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, str, Path, dict[str, str]]]:
    """`driftline serve` of the synthetic version as users run it, in a fresh home: the printed
    URL, a `predict` key, the home and the user's environment."""
    home = scratch / "home"
    synthetic.copy_bundle(_source_settings(), home)
    env = {**user_env(home, store_url), **(extra_env or {})}
    with driftline_serve("1", {**_clean_env(), **env}, scratch / "serve.log") as url:
        key = create_key(env, "faults", scopes="predict")
        # Warm: the first requests load sessions and open connections.
        run_timeline(url + INFER, _one_row(), key=key, concurrency=CONCURRENCY, duration_s=2.0)
        yield url, key, home, env


def _kill_busiest(replicas: list[psutil.Process], sample_s: float = 0.5) -> int:
    """SIGKILL whichever of `replicas` used the most CPU over `sample_s`; its pid."""
    before = {p: sum(p.cpu_times()[:2]) for p in replicas}
    time.sleep(sample_s)
    busiest = max(replicas, key=lambda p: sum(p.cpu_times()[:2]) - before[p])
    busiest.send_signal(signal.SIGKILL)
    return int(busiest.pid)


def _ingress_log_count(home: Path, text: str) -> int:
    """Lines of Serve's replica logs (this home's Ray head) that contain `text`."""
    temp = fault_processes.ray_temp_dir(home)
    if temp is None:
        return -1
    logs = temp / "session_latest" / "logs"
    return sum(
        path.read_text(errors="replace").count(text)
        for path in logs.rglob("*")
        if path.is_file() and path.suffix in {".log", ".err", ".out"}
    )


# --- (a) a member replica SIGKILLed ---------------------------------------------------------
REPLICAS_ENV = {"DRIFTLINE_SERVE_MIN_REPLICAS": "2"}  # a second replica to fail over to
# "Steady load": a rate the server sustains, not saturation, where the replacement replica's
# start-up competes with serving for the two cores and reads as lost throughput.
STEADY_SHARE = 0.8


def _replica_kill_scenario(quick: bool) -> dict[str, Any]:
    duration, kill_at = (20.0, 6.0) if quick else (60.0, 20.0)
    with tempfile.TemporaryDirectory(prefix="dl-faults-replica-") as tmp:
        scratch = Path(tmp)
        store_url = f"sqlite:///{scratch / 'store.db'}"
        with _served(scratch, store_url, REPLICAS_ENV) as (url, key, home, _env):
            victims = fault_processes.serve_replicas(home, "member_rf")
            if len(victims) < 2:
                raise RuntimeError(f"{len(victims)} member_rf replica(s); the scenario needs 2")
            saturation = run_load(
                url + INFER, _one_row(), concurrency=16, duration_s=5.0 if quick else 10.0, key=key
            ).rps
            rate = STEADY_SHARE * saturation
            start = time.perf_counter() + 1.0  # the generator's connections open first
            killed: list[tuple[int, float]] = []

            def kill() -> None:
                pid = _kill_busiest(victims)
                killed.append((pid, time.perf_counter() - start))

            timer = threading.Timer(start + kill_at - 0.5 - time.perf_counter(), kill)
            timer.start()
            run = open_loop(
                url + INFER, _one_row(), rate=rate, duration_s=duration, key=key, start_at=start
            )
            timer.join()
            retries = _ingress_log_count(home, "retrying on another replica")
            socket_fallbacks = _ingress_log_count(home, "socket failed, using Serve")
    faults = {"replica_sigkill": killed[0][1]} if killed else {}
    timeline = from_open_loop(run, faults)
    summary = timeline.summary()
    share = summary["failed"] / max(1, summary["requests"])
    recovered = recovery_s(timeline, "replica_sigkill") if killed else None
    statuses = summary["failed_by_status"]
    return {
        **summary,
        "saturation_rps": round(saturation, 1),
        "offered_rps": round(rate, 1),
        "replicas_of_killed_member": len(victims),
        "killed_pid": killed[0][0] if killed else None,
        "retries_logged": retries,
        "socket_fallbacks_logged": socket_fallbacks,
        # Slow seconds after the recovery: the server's own bursts under load, not the kill's.
        "dips_after_recovery_at_s": dips_after(timeline, "replica_sigkill") if killed else [],
        "targets": {
            "replica_kill_failed_share": round(share, 5),
            "replica_kill_recovery_s": recovered,
            "replica_kill_500s": statuses.get("500", 0),
        },
        "met": {
            "replica_kill_failed_at_most_0.1%": share <= 0.001,
            "replica_kill_recovered_within_10s": recovered is not None and recovered <= 10,
            "replica_kill_no_500": not any(s.startswith("5") and s != "503" for s in statuses),
        },
        "notes": [
            f"(a) `driftline serve` with {REPLICAS_ENV} (one replica of a member leaves nothing to "
            "fail over to); its saturation throughput measured first (16 closed-loop clients), "
            f"then steady open-loop load at {STEADY_SHARE:.0%} of it, one-row V2 requests; one of "
            "the two `member_rf` replicas SIGKILLed (the one that used more CPU over the half "
            "second before: the ingress may send every call to one replica); recovery: from the "
            "kill to the end of the last one-second window answering less than 90% of the median "
            f"rate before it, after which the rate held for {HOLD_S:g} s (dips after that are "
            "listed in `dips_after_recovery_at_s`, not counted as the kill's). Failed: any "
            "request not answered 2xx (latency is from when each was due, so a stall is not "
            "hidden)"
        ],
    }


# --- (b) PostgreSQL restarted under load ----------------------------------------------------
def _pg_restart_scenario(quick: bool) -> dict[str, Any]:
    duration, down_at, down_s = (16.0, 5.0, 3.0) if quick else (45.0, 25.0, 5.0)
    with (
        tempfile.TemporaryDirectory(prefix="dl-faults-pg-") as tmp,
        _own_database() as (admin, name, url),
    ):
        with _served(Path(tmp), url) as (served, key, _home, _env):
            before = _stored_ids(url)
            timeline = run_timeline(
                served + INFER,
                _one_row(),
                key=key,
                concurrency=CONCURRENCY,
                duration_s=duration,
                faults=[
                    (down_at, "pg_down", lambda: _set_up(admin, name, False)),
                    (down_at + down_s, "pg_up", lambda: _set_up(admin, name, True)),
                ],
            )
            answered = {a.correlation_id for a in timeline.ok()}
            stored = _await_stored(url, answered | before)
        summary = timeline.summary()
    lost = len(answered - stored)
    return {
        **summary,
        "down_s": down_s,
        "answered_ids": len(answered),
        "stored_of_answered": len(answered & stored),
        "targets": {"pg_restart_lost": lost, "pg_restart_failed": summary["failed"]},
        "met": {"pg_restart_nothing_lost": lost == 0 and None not in answered},
        "notes": [
            "(b) PostgreSQL restarted as its clients see a restart, on this scenario's own "
            f"database only: every connection to it terminated (pg_terminate_backend: the "
            "same FATAL 57P01 admin_shutdown a restart's fast shutdown sends) and new ones "
            f"refused (ALLOW_CONNECTIONS false) for {down_s:g} s, then allowed again; "
            "stopping the shared server would break other runs on the host. Each answered "
            "request's x-correlation-id is looked up in the predictions table"
        ],
    }


def _stored_ids(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text("SELECT request_id FROM predictions"))}
    finally:
        engine.dispose()


def _await_stored(url: str, wanted: set[str | None], timeout_s: float = 60.0) -> set[str]:
    """The stored request ids once all of `wanted` are in, or once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        stored = _stored_ids(url)
        if wanted - {None} <= stored or time.monotonic() > deadline:
            return stored
        time.sleep(1.0)


# --- (d) MLflow down when a replica loads its version ---------------------------------------
def _mlflow_down_scenario(quick: bool) -> dict[str, Any]:
    from serving.model import ModelRef  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="dl-faults-mlflow-") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        version = _register_small_version(settings)
        ref = ModelRef(settings.registry.model_name, version)
        ref.load(settings)  # a first replica: downloads, verifies and caches the version
        down = settings.updated(
            {"registry": {"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"}}
        )
        started = time.monotonic()
        try:
            with _env_set({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}):
                bundle = ref.load(down)
            outcome, error = "served from the local copy", None
            served = bundle.version == version
        except Exception as failure:  # measured, not raised: the figure is whether it loads
            outcome, error, served = "refused", f"{type(failure).__name__}: {failure}", False
        load_s = round(time.monotonic() - started, 2)
    return {
        "outcome": outcome,
        "error": error and error[:500],
        "load_s": load_s,
        "targets": {"mlflow_down_replica_loads": served},
        "met": {"mlflow_down_serves_local_copy": served},
        "notes": [
            "(d) a version registered in a local MLflow and loaded once (downloaded, verified, "
            "cached in the home); then the replica's load path (serving.model.ModelRef.load, "
            "what a member replica runs when it starts) with the tracking URI pointing at an "
            "MLflow server that is down (a closed port; MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 only "
            "shortens the wait for the same failure)"
        ],
    }


def _register_small_version(settings: Settings) -> str:
    """A small rf + xgb version registered in `settings`' local MLflow; its number."""
    import pandas as pd  # noqa: PLC0415
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415
    from xgboost import XGBRegressor  # noqa: PLC0415

    from driftline.features import default_spec  # noqa: PLC0415
    from driftline.registry import BundleContents, Registry  # noqa: PLC0415

    spec = default_spec()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(spec.names)))
    y = 0.01 * (0.3 * x[:, 0] + rng.normal(size=400))
    reference = pd.DataFrame(
        x, index=pd.bdate_range("2020-01-01", periods=len(x), name="date"), columns=spec.names
    )
    reference["prediction"], reference["target"] = 0.0, y
    contents = BundleContents(
        model_name=settings.registry.model_name,
        spec=spec,
        estimators={
            "rf": RandomForestRegressor(30, max_depth=5, n_jobs=1, random_state=0).fit(x, y),
            "xgb": XGBRegressor(n_estimators=40, max_depth=3, n_jobs=1).fit(x, y),
        },
        weights={"rf": 0.5, "xgb": 0.5},
        intercept=0.0,
        horizon=1,
        evaluation={"summary": "synthetic"},
        importances={"members": {}},
        data_window={"source": "synthetic", "rows": len(x)},
        reference=reference,
        equity_curve_png=b"\x89PNG\r\n\x1a\n",
        parity_rows=x[:100],
    )
    registration = Registry(settings).register(
        contents, params={}, metrics={}, tags={}, input_example=reference.iloc[:1, :-2]
    )
    return registration.version


@contextmanager
def _env_set(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- (g) idle and stalled WebSocket clients -------------------------------------------------
IDLE_CLIENTS, STALLED_CLIENTS = 500, 50
CLIENTS_PER_KEY = 10  # a team's clients share a key; the stream limit's burst lets 10 connect
# What an operator expecting this crowd sets: room for its connections on the one ingress
# replica (the default holds 64); per-principal caps and rate limits stay at their defaults.
# One message a second (production sends one per 30 s) so the crowd is sent something.
CROWD_ENV = {"DRIFTLINE_WS_MAX_CONNECTIONS": "1000", "DRIFTLINE_STREAM_INTERVAL_S": "1"}


def _websocket_scenario(quick: bool) -> dict[str, Any]:
    seconds, rounds = (4.0, 3) if quick else (10.0, 5)
    with tempfile.TemporaryDirectory(prefix="dl-faults-ws-") as tmp:
        scratch = Path(tmp)
        store_url = f"sqlite:///{scratch / 'store.db'}"
        with _served(scratch, store_url, CROWD_ENV) as (url, key, home, _env):
            keys = _stream_keys(store_url, -(-(IDLE_CLIENTS + STALLED_CLIENTS) // CLIENTS_PER_KEY))
            ingress = fault_processes.serve_replicas(home, INGRESS_DEPLOYMENT)
            forwarded = [p.environ().get("DRIFTLINE_WS_MAX_CONNECTIONS") for p in ingress]

            def rate() -> float:
                return run_load(
                    url + INFER, _one_row(), concurrency=CONCURRENCY, duration_s=seconds, key=key
                ).rps

            without, with_crowd, crowds, rss = [rate()], [], [], [_rss_mib(ingress)]
            for _ in range(rounds):
                with _ws_crowd(stream_url(url), keys) as counts:
                    with_crowd.append(rate())
                    counts["ingress_rss_mib"] = _rss_mib(ingress)
                crowds.append(counts)
                without.append(rate())
            rss.append(_rss_mib(ingress))
    ratio = float(np.median(with_crowd)) / float(np.mean(without))
    connected = [c.get("idle_connected", 0) + c.get("stalled_connected", 0) for c in crowds]
    stayed = [c.get("idle_still_open", 0) + c.get("stalled_still_open", 0) for c in crowds]
    everyone = IDLE_CLIENTS + STALLED_CLIENTS
    # A round the crowd did not fill measured something else: no ratio passes without it.
    all_there = min(connected) == everyone and min(stayed) == everyone
    return {
        "rps_without": [round(r, 1) for r in without],
        "rps_with_crowd": [round(r, 1) for r in with_crowd],
        "crowd": crowds,
        "stream_keys": len(keys),
        "ingress_replicas": len(ingress),
        "ingress_ws_max_connections_env": forwarded,
        "ingress_rss_mib_before_after": rss,
        "targets": {
            "websocket_crowd_rps_ratio": round(ratio, 3),
            "websocket_crowd_connected_min": min(connected),
            "websocket_crowd_stayed_connected_min": min(stayed),
        },
        "met": {
            "websocket_crowd_within_10%": all_there and ratio >= 0.9,
            "websocket_crowd_all_connected": all_there,
        },
        "notes": [
            f"(g) {IDLE_CLIENTS} WebSocket clients that read and {STALLED_CLIENTS} that never "
            f"read (raw sockets, no recv after the handshake), {CLIENTS_PER_KEY} to a `stream` "
            f"key ({len(keys)} keys), in a process of their own, with {CROWD_ENV} and every "
            "other limit at its default (16 WebSockets a principal, the stream rate limit's "
            "1/s burst 10, 2 credential lookups/s burst 20 an address): each key's first "
            "client verifies it, paced to the lookup limit, then its others connect together. "
            f"{CONCURRENCY} closed-loop clients of one-row V2 requests measured {seconds:g} s "
            f"without the crowd, then {rounds} times with it and without it again; the ratio "
            "is the median with it over the mean without it; a round counts clients that "
            "connected and that were still connected once its measurement ended"
        ],
    }


def _stream_keys(store_url: str, count: int) -> list[str]:
    """`count` keys with the `stream` scope, issued in the store as `driftline keys create`
    does."""
    store = KeyStore(store_url)
    try:
        scopes = frozenset({Scope.STREAM})
        return [issue_key(store, f"faults-stream-{i:02d}", scopes).key for i in range(count)]
    finally:
        store.close()


def _rss_mib(processes: list[psutil.Process]) -> float:
    return round(float(sum(p.memory_info().rss for p in processes)) / 2**20, 1)


@contextmanager
def _ws_crowd(url: str, keys: list[str]) -> Iterator[dict[str, Any]]:
    """The crowd connected (benchmarks._ws_crowd in its own process); yields its counts, filled
    in, once it is sent away, with who stayed connected and what the readers received."""
    auth = Settings().auth  # the limits the server runs with (the same environment)
    pacing = Pacing(*auth.lookup_rate, stream_burst=auth.rate_limits["stream"][1])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks._ws_crowd",
            url,
            str(IDLE_CLIENTS),
            str(STALLED_CLIENTS),
            pacing_argument(pacing),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "DRIFTLINE_BENCH_KEYS": ",".join(keys)},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    counts: dict[str, Any] = json.loads(process.stdout.readline() or "{}")
    try:
        yield counts
    finally:
        process.stdin.close()  # the crowd's signal to leave
        counts.update(json.loads(process.stdout.readline() or "{}"))
        process.wait(60)
        process.stdout.close()


SCENARIOS: dict[str, Scenario] = {
    "replica_kill": _replica_kill_scenario,
    "pg_restart": _pg_restart_scenario,
    "outage": _outage_scenario,
    "poison": _poison_scenario,
    "mlflow_down": _mlflow_down_scenario,
    "orphans": _orphans_scenario,
    "websockets": _websocket_scenario,
}


def _only(argv: Sequence[str]) -> list[str]:
    if "--only" not in argv:
        return []
    return argv[argv.index("--only") + 1].split(",")


if __name__ == "__main__":
    main_for(__name__, lambda: run(quick="--quick" in sys.argv, only=_only(sys.argv)))
