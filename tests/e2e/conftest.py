"""The platform the closed-loop tests drive: real Ray Serve, Ray Jobs, MLflow and PostgreSQL.

One module-scoped platform, wired as `driftline up` wires it: a database of its own, a home with
MLflow and the module's bars (by default the S&P 500 2000-2010), a champion trained on the bars
before a regime change (by default before 2007) through the Jobs API, the three Serve
applications, and a client on the replay stream (serving replays bars only while one is
connected). Everything runs on one Ray head per session, started as `driftline up` starts its
own (`serving.control.local_head`: up's size and Serve environment), and tests call the address
`up` prints: the ingress replica's own server, not Serve's proxy. A module replays another
market or regime change by overriding the `scenario` fixture. Controllers and load run per test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import orjson
import psutil
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.contracts import INGRESS_APP, INGRESS_DEPLOYMENT
from driftline.raycluster import LocalRayCluster
from driftline.store import Store
from driftline.store.engine import normalise_url
from driftline.store.keys import KeyStore
from tests.conftest import stop_shared_head
from tests.e2e.faults import LOADER
from tests.ports import listener, user_port

T = TypeVar("T")
Index = Literal["sp500", "nasdaq"]
OUTCOME_HOOK = "driftline.drift.outcomes:replay_hook"
CHAMPION_WINDOW = (date(2001, 1, 1), date(2006, 12, 31))
# Every e2e module's marks: the whole loop on Ray and PostgreSQL.
E2E_MARKS = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.ray,
    pytest.mark.postgres,
    # MLflow warns, on loading any pyfunc with an untyped predict, that it cannot validate it.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

# Small windows, short intervals and few trials so the loop closes in minutes. Resources
# (CPUs, replicas) stay at the defaults `driftline up` runs with: a test that gives training
# more room than the product has hides the product's scheduling bugs.
LOOP_ENV = {
    "DRIFTLINE_LOG_JSON": "true",
    "DRIFTLINE_STREAM_INTERVAL_S": "0.25",
    "DRIFTLINE_DRIFT_WINDOW": "30",
    "DRIFTLINE_DRIFT_INTERVAL_S": "2",
    "DRIFTLINE_SERVE_WRITE_INTERVAL_S": "0.1",
    "DRIFTLINE_CONTROLLER_INTERVAL_S": "1",
    "DRIFTLINE_CONTROLLER_LEASE_S": "5",
    "DRIFTLINE_CONTROLLER_PORT": "0",
    "DRIFTLINE_CONTROLLER_SUSTAINED_REPORTS": "2",
    "DRIFTLINE_CONTROLLER_COOLDOWN_S": "0",
    "DRIFTLINE_CONTROLLER_RETRAIN_TRIALS": "1",
    "DRIFTLINE_CONTROLLER_SHADOW_MIN_PAIRS": "20",
    # The stream settles about 4 pairs a second: a shadow without 20 by then is stuck, and
    # ends the rollout with that reason instead of holding it until the test times out.
    "DRIFTLINE_CONTROLLER_SHADOW_MAX_S": "180",
    "DRIFTLINE_CONTROLLER_VERIFY_WINDOW_S": "25",
    # Just over the 10 s serving deadline that bounds a request routed before a switch.
    "DRIFTLINE_CONTROLLER_DRAIN_S": "11",
    "DRIFTLINE_CONTROLLER_VERIFY_MIN_REQUESTS": "10",
}
# Issue 13: from the first drift report to the verdict, within 15 minutes on `up`'s head.
LOOP_LIMIT_S = 15 * 60
E2E_ENV = {
    **LOOP_ENV,
    # Fault injection wraps a member as a native model (tests/e2e/faults.py); serving and the
    # gates load native members only when allowed.
    "DRIFTLINE_ALLOW_NATIVE_MEMBERS": "true",
    "DRIFTLINE_STREAM_START": "2008-01-01",
    # The retraining sees the bars known once 2008 is over; gates, shadow and verification
    # then judge both versions on later bars, which neither was fitted on.
    "DRIFTLINE_CONTROLLER_RETRAIN_ARGS": "--members rf,xgb --start 2003-01-01 --end 2008-12-31",
}


@dataclass(frozen=True)
class Scenario:
    """What a module's platform replays: an index's bars, the champion's window, the settings."""

    index: Index
    bars: tuple[date, date]
    champion: tuple[date, date]
    env: Mapping[str, str]
    # The module's Serve replicas load bundles through this (the fault injector), or as users do.
    loader: str | None = None


# The 2008 crash on the S&P 500, from a champion trained 2001-2006, with faults injectable.
CRASH_2008 = Scenario(
    "sp500", (date(2000, 1, 1), date(2010, 12, 31)), CHAMPION_WINDOW, E2E_ENV, LOADER
)


@dataclass
class Platform:
    """The running platform and what tests need to reach it."""

    settings: Settings
    store: Store
    dashboard_url: str
    # What `driftline up` prints: the ingress replica's own server (direct ingress).
    base_url: str
    champion: str
    stream: StreamClient
    timings: dict[str, float] = field(default_factory=dict)
    key: str = ""

    @property
    def headers(self) -> dict[str, str]:
        """A client's `Authorization` (auth is on, as in production)."""
        return {"Authorization": f"Bearer {self.key}"}

    def call_at(self, base_url: str) -> None:
        """Call `base_url` from now on, the stream too: what `up` would print after a restart."""
        from serving.cli import stream_url  # noqa: PLC0415

        self.base_url = base_url
        self.stream.url = stream_url(base_url)

    def with_model(self, name: str) -> Settings:
        """These settings for another registered model."""
        return self.settings.updated({"registry": {"model_name": name}})

    def controller_settings(self, model_name: str | None = None) -> Settings:
        """The settings a local controller of this platform runs with (as `driftline up`)."""
        local = self.settings.updated(
            {
                "controller": {
                    "dashboard_url": self.dashboard_url,
                    "serve_url": self.base_url,
                    "outcome_hook": OUTCOME_HOOK,
                    "api_key": self.key,
                }
            }
        )
        return local.updated({"registry": {"model_name": model_name}}) if model_name else local

    def controller_env(self, model_name: str) -> dict[str, str]:
        """Environment for a `driftline controller run` process on this platform."""
        return {
            **os.environ,
            "DRIFTLINE_MODEL_NAME": model_name,
            "DRIFTLINE_CONTROLLER_DASHBOARD_URL": self.dashboard_url,
            "DRIFTLINE_CONTROLLER_SERVE_URL": self.base_url,
            "DRIFTLINE_CONTROLLER_OUTCOME_HOOK": OUTCOME_HOOK,
            "DRIFTLINE_CONTROLLER_API_KEY": self.key,
        }


@pytest.fixture(scope="session")
def serve_port() -> int:
    """The session's serving port, as `driftline up --port` takes one: free, and below Linux's
    ephemeral range like the default 8080, so the head's own free-port picks cannot take it."""
    return user_port()


@pytest.fixture(scope="session")
def up_head(isolated_environment: Path, serve_port: int) -> Iterator[LocalRayCluster]:
    """The Ray head `driftline up` starts (its size and Serve environment: direct ingress on
    `serve_port`, niceness, Serve's control loop), shared by the e2e modules. The suite's shared
    head stops first (e2e tests run last): one head at a time on the machine's cores."""
    from serving.control import local_head  # noqa: PLC0415

    stop_shared_head()
    settings = Settings(serving={"port": serve_port})
    cluster = local_head(settings, log_path=isolated_environment / "ray-up-head.log")
    with cluster:
        os.environ.update(cluster.client_env())
        yield cluster
    for name in cluster.client_env():
        os.environ.pop(name, None)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """What this module replays; a module overrides this fixture to replay another."""
    return CRASH_2008


@pytest.fixture(scope="module")
def e2e_environment(
    tmp_path_factory: pytest.TempPathFactory, scenario: Scenario, serve_port: int
) -> Iterator[Path]:
    """A home of the module's own with the bars it replays, and the scenario's settings in the
    environment (Serve replicas and Ray jobs receive them from there)."""
    home = tmp_path_factory.mktemp("e2e-home")
    first, last = scenario.bars
    bars = home / f"{scenario.index}-{first.year}-{last.year}.csv"
    _write_bars(bars, scenario.index, first, last)
    saved = dict(os.environ)
    # The module's registry is its home's, as for `driftline up`: a tracking URI an earlier
    # test's `mlflow.set_tracking_uri` exported would send its artifacts to another home.
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            **scenario.env,
            "DRIFTLINE_HOME": str(home),
            "DRIFTLINE_DATA_PATH": str(bars),
            # The port the head's direct ingress starts at (as `DRIFTLINE_SERVE_PORT=... up`).
            "DRIFTLINE_SERVE_PORT": str(serve_port),
        }
    )
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def e2e_database(e2e_environment: Path) -> Iterator[str]:
    """A PostgreSQL database of the module's own: no other test reads or downgrades it."""
    admin_url = os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not admin_url:
        pytest.fail("DRIFTLINE_TEST_DATABASE_URL is unset: run the tests through `make test`")
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"driftline_e2e_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(normalise_url(admin_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    os.environ["DRIFTLINE_DATABASE_URL"] = rendered
    yield rendered
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def platform(up_head: LocalRayCluster, e2e_database: str, scenario: Scenario) -> Iterator[Platform]:
    """The scenario's champion trained before its regime change, served on blue as `driftline up`
    serves it, the replay stream flowing from the address `up` prints."""
    from driftline.contracts import TrainingRequest  # noqa: PLC0415
    from driftline.training_job import run_training_job  # noqa: PLC0415
    from serving.cli import stream_url  # noqa: PLC0415
    from serving.control import ServingControl, proxy_port  # noqa: PLC0415

    settings = Settings()
    store = Store.from_settings(settings)
    store.upgrade()
    details = ServingControl(settings, up_head.dashboard_url, http_port=0).details()
    assert not details.get("applications"), "another test left Serve applications running"
    timings: dict[str, float] = {}
    started = time.monotonic()
    lines: list[str] = []
    start, end = scenario.champion
    outcome = run_training_job(
        up_head.dashboard_url,
        settings,
        TrainingRequest(trials=1, start=start, end=end, members="rf,xgb"),
        echo=lines.append,
    )
    if outcome.exit_code != 0 or outcome.version is None:
        pytest.fail(f"champion training {outcome.status}: {outcome.message}\n" + "\n".join(lines))
    timings["champion_training_s"] = time.monotonic() - started
    # As `driftline up` serves (only the loader differs, where the scenario injects faults).
    control = ServingControl(
        settings,
        up_head.dashboard_url,
        http_port=proxy_port(settings),
        loader=scenario.loader,
        outcome_hook=OUTCOME_HOOK,
    )
    started = time.monotonic()
    control.deploy(outcome.version)
    timings["serve_deploy_s"] = time.monotonic() - started
    base_url = control.front_url()  # the address `up` prints
    # A client key, issued as `driftline keys create` does.
    scopes = frozenset({Scope.PREDICT, Scope.STREAM, Scope.READ, Scope.OUTCOMES_WRITE})
    key = issue_key(KeyStore.from_settings(settings), f"e2e-{uuid.uuid4().hex[:8]}", scopes).key
    stream = StreamClient(stream_url(base_url), key).start()
    try:
        yield Platform(
            settings,
            store,
            up_head.dashboard_url,
            base_url,
            outcome.version,
            stream,
            timings,
            key,
        )
    finally:
        stream.stop()
        control.shutdown()
        store.close()


def assert_served_as_up(platform: Platform) -> None:
    """Tests call what `driftline up` prints: the ingress replica's own server, not Serve's
    proxy, in a replica started with up's Serve environment (`ray_env`)."""
    from serving.control import ServingControl, ray_env  # noqa: PLC0415

    control = ServingControl(platform.settings, platform.dashboard_url, http_port=0)
    front = control.front_url()
    assert platform.base_url == front, f"the ingress left the printed address for {front}"
    port = int(platform.base_url.rsplit(":", 1)[1])
    assert port != control.details()["http_options"]["port"], "tests call Serve's proxy"
    replica = listener(port)
    assert f"ServeReplica:{INGRESS_APP}:{INGRESS_DEPLOYMENT}" in " ".join(replica.cmdline())
    wanted = ray_env(platform.settings)
    environ = replica.environ()
    assert {name: environ.get(name) for name in wanted} == wanted
    # Without up's environment Ray runs replicas at nice 15 (relative to the head): serving
    # would yield the cores to training, which up's users never see.
    assert replica.nice() == psutil.Process().nice()
    ready = httpx.get(f"{platform.base_url}/v2/health/ready", timeout=30)
    assert ready.status_code == 200


# --- running things ---------------------------------------------------------------------------
class StreamClient:
    """Keeps one client on the replay stream (serving replays bars only while one listens)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-stream", daemon=True)

    def start(self) -> StreamClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException  # noqa: PLC0415
        from websockets.sync.client import connect  # noqa: PLC0415

        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=10, additional_headers=self.headers) as socket:
                    while not self._stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            socket.recv(timeout=1.0)
                            self.messages += 1
            except (OSError, WebSocketException):
                self._stop.wait(1.0)


@dataclass
class Load:
    """Constant load: clients posting one-row V2 inferences back to back, every answer kept."""

    url: str
    rows: list[list[float]]
    clients: int = 2
    pause_s: float = 0.02
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[tuple[float, int | str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def failures(self) -> list[tuple[float, int | str]]:
        """Answers that were not 2xx (or no answer at all)."""
        return [a for a in self.answers if not (isinstance(a[1], int) and 200 <= a[1] < 300)]

    def _run(self, offset: int) -> None:
        with httpx.Client(timeout=30, headers=self.headers) as client:
            i = offset
            while not self._stop.is_set():
                body = v2_body(self.rows[i % len(self.rows)])
                try:
                    status: int | str = client.post(
                        self.url, content=orjson.dumps(body)
                    ).status_code
                except httpx.HTTPError as error:
                    status = f"{type(error).__name__}: {error}"
                self.answers.append((time.monotonic(), status))
                i += self.clients
                self._stop.wait(self.pause_s)


def v2_body(row: list[float]) -> dict[str, Any]:
    """A one-row KServe V2 inference request."""
    return {
        "inputs": [{"name": "features", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
    }


@contextlib.contextmanager
def controller_thread(settings: Settings, store: Store) -> Iterator[Any]:
    """A local controller running its rounds in this process, as `driftline up` runs it."""
    from operators.assembly import local_controller  # noqa: PLC0415

    controller = local_controller(settings, store)
    stop = threading.Event()
    thread = threading.Thread(
        target=controller.run, args=(stop, settings.controller.interval_s), daemon=True
    )
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(120)


@contextlib.contextmanager
def controller_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`driftline controller run --runtime local` as its own process; stopped (TERM) on exit."""
    argv = [str(Path(sys.executable).with_name("driftline")), "controller", "run"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*argv, "--runtime", "local"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, every_s: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def cli(*args: str, model_name: str) -> str:
    """Run a `driftline` command in-process for `model_name`; its output, or fail."""
    from driftline.cli import main  # noqa: PLC0415

    result = CliRunner().invoke(main, list(args), env={"DRIFTLINE_MODEL_NAME": model_name})
    assert result.exit_code == 0, f"driftline {' '.join(args)}: {result.output}"
    return result.output


def audit(model_name: str, since: str = "3h") -> list[dict[str, Any]]:
    """`driftline audit --json` for `model_name`, one dict per event, oldest first."""
    output = cli("audit", "--json", "--since", since, model_name=model_name)
    events: list[dict[str, Any]] = orjson.loads(output)
    return events


def _write_bars(path: Path, index: Index, first: date, last: date) -> None:
    """`index`'s daily bars, `first` to `last`, as a CSV users point DRIFTLINE_DATA_PATH at."""
    from driftline.data import load_bars, validate_bars  # noqa: PLC0415

    if index == "sp500":
        bars = load_bars(None)
    else:
        import arch.data.nasdaq  # noqa: PLC0415  (slow to import)

        bars = validate_bars(arch.data.nasdaq.load(), "arch:nasdaq")
    bars.loc[first.isoformat() : last.isoformat()].to_csv(path)
