"""`driftline up`: the whole local platform in one process tree, on embedded defaults.

Store migrations, a local Ray head, training when no champion exists, the served graph with
its replay stream (from the champion's hold-out, data it never trained on), the drift monitor
and the rollout controller; it prints the status page's link with the admin key. Ctrl-C stops
it all and flushes the predictions serving still holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click

from driftline.config import Settings
from driftline.observability.logs import configure_logging
from driftline.raycluster import LOOPBACK_ENV

# The demo streams faster than production's 30 s so that drift has data within minutes.
DEMO_ENV = {
    "DRIFTLINE_STREAM_INTERVAL_S": "2",
    "DRIFTLINE_DRIFT_INTERVAL_S": "60",
}
OUTCOME_HOOK = "driftline.drift.outcomes:replay_hook"


@dataclass(frozen=True)
class UpKeys:
    """The keys `up` keeps in its home (mode 0600): the user's admin key and its own clients'."""

    admin: str
    stream: str
    controller: str

    @classmethod
    def ensure(cls, settings: Settings) -> UpKeys:
        """Issue each key on first start; reuse the saved ones after."""
        from driftline.auth.admin import ensure_admin_key, ensure_saved_key  # noqa: PLC0415
        from driftline.auth.scopes import Scope  # noqa: PLC0415

        return cls(
            admin=ensure_admin_key(settings),
            stream=ensure_saved_key(settings, "up-stream", frozenset({Scope.STREAM})),
            # The controller reads serving's /metrics for a rollout's health.
            controller=ensure_saved_key(settings, "up-controller", frozenset({Scope.READ})),
        )


@dataclass
class Background:
    """Threads `up` runs beside serving, and how to stop them."""

    stop: threading.Event
    threads: list[threading.Thread]

    def close(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout_s)


@click.command()
@click.option("--trials", type=int, default=2, show_default=True, help="Tuning trials per member.")
@click.option("--no-controller", is_flag=True, help="Serve and watch drift; never roll out.")
@click.option("--port", type=int, default=None, help="HTTP port (default: DRIFTLINE_SERVE_PORT).")
def up(trials: int, no_controller: bool, port: int | None) -> None:
    """Train if no champion exists, serve it, stream, watch drift and run the controller.

    The stream replays bars from the champion's hold-out start (DRIFTLINE_STREAM_START
    overrides); the status page's link, with the admin key, is printed once serving is up.

    \b
    Examples:
      driftline up                    # everything, on http://127.0.0.1:8080
      driftline up --no-controller --port 8080
    """
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    # Ray reads this when it is imported: set it first so every socket stays on loopback.
    os.environ.update(LOOPBACK_ENV)
    settings = Settings(serving={"port": port} if port else {})
    if not no_controller:
        check_controller_policy(settings)
    settings.ensure_home()
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    from driftline.observability.tracing import configure_tracing  # noqa: PLC0415
    from driftline.store import Store  # noqa: PLC0415  (heavy imports after the env is set)

    # The in-process controller's rounds; the replicas export their own spans.
    configure_tracing("driftline-up", settings.observability.otlp_endpoint)
    from serving.control import ServingControl, local_head, proxy_port  # noqa: PLC0415

    store = Store.from_settings(settings)
    store.upgrade()
    click.echo(f"store: {_redact(settings.store_url)} (migrated)")
    keys = UpKeys.ensure(settings)
    cluster = local_head(settings)
    stop = _stop_on_signals()
    background: Background | None = None
    control: ServingControl | None = None
    try:
        click.echo("starting a local Ray head ...")
        cluster.start()
        # This command's Ray clients use the head it started, whatever the shell points at
        # (RAY_API_SERVER_ADDRESS outranks the address a client is given).
        os.environ.update(cluster.client_env())
        champion = _champion(settings, cluster.dashboard_url, trials)
        settings = replay_from_holdout(settings, champion)
        if settings.serving.stream_start is not None:
            # Serving replicas read their settings from the environment this process forwards.
            os.environ["DRIFTLINE_STREAM_START"] = settings.serving.stream_start.isoformat()
        control = ServingControl(
            settings,
            cluster.dashboard_url,
            http_port=proxy_port(settings),
            outcome_hook=OUTCOME_HOOK,
        )
        click.echo(f"deploying {settings.registry.model_name} version {champion} ...")
        control.deploy(champion)
        front = control.front_url()
        background = _start_background(
            settings, store, cluster.dashboard_url, no_controller, front=front, keys=keys
        )
        _print_urls(settings, front, cluster.dashboard_url, no_controller, keys)
        _print_status_page(front, keys.admin)
        stop.wait()
    finally:
        click.echo("stopping: flushing predictions ...")
        if background is not None:
            background.close()
        if control is not None:
            control.shutdown()
        cluster.stop()


def _champion(settings: Settings, dashboard_url: str, trials: int) -> str:
    """The champion version, training and registering one first when there is none."""
    from driftline.contracts import TrainingRequest  # noqa: PLC0415
    from driftline.training_job import run_training_job  # noqa: PLC0415
    from serving.follow import registry_alias  # noqa: PLC0415

    alias = registry_alias(settings)
    found = alias()
    if found is not None:
        click.echo(f"champion: {settings.registry.model_name} version {found}")
        return found
    click.echo(
        f"no champion yet: training {settings.registry.model_name} ({trials} trials per member) ..."
    )
    outcome = run_training_job(
        dashboard_url, settings, TrainingRequest(trials=trials), echo=click.echo
    )
    if outcome.exit_code != 0 or outcome.version is None:
        raise click.ClickException(f"training failed ({outcome.status}): {outcome.message}")
    # The registry makes a model's first version its champion.
    return alias() or outcome.version


def replay_from_holdout(settings: Settings, champion: str) -> Settings:
    """Start the replay at the champion's hold-out (data it never trained on), unless
    DRIFTLINE_STREAM_START says where; say which on the console."""
    if settings.serving.stream_start is not None:
        click.echo(f"replay: from {settings.serving.stream_start} (DRIFTLINE_STREAM_START)")
        return settings
    first = _holdout_first(settings, champion)
    if first is None:
        click.echo(f"replay: from the first full window (version {champion} records no hold-out)")
        return settings
    click.echo(
        f"replay: from {first}, where version {champion}'s hold-out starts, so its predictions, "
        "live performance and drift are on data it never trained on "
        "(set DRIFTLINE_STREAM_START to choose)"
    )
    return settings.updated({"serving": {"stream_start": first}})


def _holdout_first(settings: Settings, version: str) -> str | None:
    from driftline.registry import Registry  # noqa: PLC0415

    holdout = Registry(settings).load_bundle(version).evaluation.get("holdout") or {}
    first = holdout.get("first")
    return str(first) if first else None


def status_page_url(front: str, key: str) -> str:
    """The status page under the printed address, `key` in its fragment (never sent)."""
    from urllib.parse import quote  # noqa: PLC0415

    return f"{front.rstrip('/')}/ui/#key={quote(key, safe='')}"


def _print_status_page(front: str, admin_key: str) -> None:
    click.echo(f"  status page: {status_page_url(front, admin_key)}")


def _start_background(
    settings: Settings,
    store: Any,
    dashboard_url: str,
    no_controller: bool,
    *,
    front: str,
    keys: UpKeys,
) -> Background:
    """The drift monitor and (unless disabled) the controller, each in a daemon thread."""
    from driftline.drift.service import build_monitor  # noqa: PLC0415

    stop = threading.Event()
    monitor = build_monitor(settings, store=store)
    threads = [
        _thread("drift-monitor", lambda: monitor.run_forever(stop)),
        _thread("stream", lambda: _follow_stream(front, stop, keys.stream)),
    ]
    if not no_controller:
        loop = _controller_loop(
            settings, store, dashboard_url, front=front, stop=stop, key=keys.controller
        )
        threads.append(_thread("controller", loop))
    return Background(stop, threads)


def check_controller_policy(settings: Settings) -> None:
    """Refuse, before anything starts, a rollout policy this controller cannot follow: it
    promotes without GitOps, so approval could never be given."""
    from operators.spec import ApprovalNeedsGitOpsError, RolloutSpec  # noqa: PLC0415

    try:
        RolloutSpec.from_settings(settings, gitops=False)
    except ApprovalNeedsGitOpsError as error:
        raise click.ClickException(f"{error} (or run with --no-controller)") from None


def _controller_loop(
    settings: Settings,
    store: Any,
    dashboard_url: str,
    *,
    front: str,
    stop: threading.Event,
    key: str,
) -> Callable[[], None]:
    from operators.assembly import local_controller  # noqa: PLC0415

    local = settings.updated(
        {
            "controller": {
                "dashboard_url": dashboard_url,
                "serve_url": front,
                "outcome_hook": OUTCOME_HOOK,
                "api_key": key,
            }
        }
    )
    controller = local_controller(local, store)
    return lambda: controller.run(stop, local.controller.interval_s)


def _follow_stream(front: str, stop: threading.Event, key: str) -> None:
    """Print the WebSocket stream; while it is connected, serving replays bars and persists each
    prediction, which is what the drift monitor reads."""
    import orjson  # noqa: PLC0415
    from websockets.exceptions import WebSocketException  # noqa: PLC0415
    from websockets.sync.client import connect  # noqa: PLC0415

    url = "ws" + front.removeprefix("http") + "/ws/predictions"
    while not stop.is_set():
        try:
            auth = {"Authorization": f"Bearer {key}"}
            with connect(url, open_timeout=10, additional_headers=auth) as socket:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        click.echo(stream_line(orjson.loads(socket.recv(timeout=1.0))))
        except (OSError, WebSocketException) as error:
            click.echo(f"stream: {error}; reconnecting", err=True)
            stop.wait(2.0)


def stream_line(message: dict[str, Any]) -> str:
    """One stream message as a console line."""
    members = " ".join(f"{k}={v:+.5f}" for k, v in message.get("members", {}).items())
    return (
        f"stream {message['timestamp'][:10]} {message['symbol']} "
        f"prediction {message['prediction']:+.5f} ({members}) "
        f"v{message['model_version']} {message['colour']} {message['latency_ms']:.1f} ms"
    )


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).render_as_string(hide_password=True)


def _print_urls(
    settings: Settings, base: str, dashboard_url: str, no_controller: bool, keys: UpKeys
) -> None:
    """The printed URLs: `base`, the fast path every user call goes through, comes first."""
    from driftline.auth.admin import admin_key_path  # noqa: PLC0415
    from serving.cli import print_urls  # noqa: PLC0415

    print_urls(settings, base, keys.controller)
    click.echo(f"  drift:      {base}/api/drift/status")
    click.echo(f"  Ray:        {dashboard_url}")
    click.echo(f"  MLflow:     {settings.tracking_uri}")
    if not no_controller:
        click.echo("  controller: `driftline status`, `driftline audit`")
    click.echo(
        f"  stream a prediction every {settings.serving.stream_interval_s:g} s:\n"
        f"    .venv/bin/python -m websockets {'ws' + base.removeprefix('http')}/ws/predictions"
        "  (with a `stream` key: docs/calling-driftline.md)\n"
        f"admin key (saved in {admin_key_path(settings)}, mode 0600):\n"
        f"  export DRIFTLINE_API_KEY={keys.admin}\n"
        "  more keys: `driftline keys create NAME --scope predict`\n"
        "Ctrl-C stops everything."
    )
