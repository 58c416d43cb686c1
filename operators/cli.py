"""`driftline controller run|step`, `status`, `promote`, `rollback`, `audit`, and their wiring.

The operator's composition lives here: the local loop with its health server, or kopf in a thread
under leader election. Heavy modules (SQLAlchemy, the store, Ray, kopf) load inside the commands,
so `driftline status` answers quickly.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from driftline.config import Settings

if TYPE_CHECKING:
    from driftline.store import Store
    from driftline.store.rollouts import ControllerRequest
    from operators.controller import Controller

RUNTIMES = ("local", "kubernetes", "gitops")


@click.group()
def controller() -> None:
    """Run the controller: drift-triggered retraining, gated blue/green rollout, rollback.

    \b
    Examples:
      driftline controller run                        # local Ray runtime, until Ctrl-C
      driftline controller run --runtime kubernetes   # the operator, under leader election
      driftline controller step --json                # one round, printed
    """


@controller.command()
@click.option("--runtime", type=click.Choice(RUNTIMES), default="local", show_default=True)
def run(runtime: str) -> None:
    """Run observe-decide-act rounds until stopped, serving /metrics, /healthz and /readyz.

    \b
    Example:
      driftline controller run --runtime local
    """
    from driftline.observability.logs import configure_logging  # noqa: PLC0415
    from driftline.observability.tracing import configure_tracing  # noqa: PLC0415

    settings = Settings()
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    # Every round is traced: rounds are seconds apart and their audit events carry the id.
    configure_tracing("driftline-controller", settings.observability.otlp_endpoint)
    store = _store(settings, migrate=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if runtime == "local":
        sys.exit(_run_local(settings, store, stop))
    sys.exit(_run_operator(settings, store, stop, gitops=runtime == "gitops"))


@controller.command()
@click.option(
    "--runtime", type=click.Choice(("local", "gitops")), default="local", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print the round as JSON.")
def step(runtime: str, as_json: bool) -> None:
    """One observe-decide-act round on the local runtime, printing the decision.

    \b
    Example:
      driftline controller step --json
    """
    settings = Settings()
    store = _store(settings, migrate=True)
    ctl = _local_controller(settings, store, gitops=runtime == "gitops")
    try:
        report = ctl.step()
    except Exception as error:
        raise click.ClickException(f"controller round failed: {_line(error)}") from None
    finally:
        ctl.close()
        store.close()
    data = report.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if report.skipped:
        click.echo(f"skipped: {report.skipped}")
        return
    click.echo(f"{data['state']}: {data['reason']}")
    for action in data["actions"]:
        click.echo(f"  - {action}")
    for failure in data["errors"]:
        click.echo(f"  ! {failure}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """The controller's state, active colour and version, candidate and last decision.

    Before the first controller round there is nothing to show: it says so and exits 0.

    \b
    Examples:
      driftline status
      driftline status --json | jq .candidate
    """
    from operators.codec import decode_state  # noqa: PLC0415

    settings = Settings()
    store = _store(settings)
    try:
        record = _read(
            lambda: store.controller.controller_state(settings.registry.model_name), missing_ok=True
        )
    finally:
        store.close()  # release pooled connections now, not at garbage collection
    if record is None or record.state is None:
        if as_json:
            click.echo(json.dumps({"model": settings.registry.model_name, "state": None}))
        else:
            click.echo(
                f"No controller round has run for {settings.registry.model_name} yet. "
                "Start one with `driftline controller run` (or `driftline up`)."
            )
        return
    state = decode_state(record.state)
    rollout = state.rollout
    data: dict[str, Any] = {
        "model": settings.registry.model_name,
        "state": state.phase.value,
        "since": state.since.isoformat() if state.since else None,
        "reason": state.reason,
        "active": {"colour": state.active_colour, "version": state.active_version},
        "last_passed": state.last_passed,
        "drift": {"severity": state.drift_severity.label, "streak": state.drift_streak},
        "candidate": None,
        "lease": {
            "holder": record.lease_holder,
            "expires": record.lease_expires.isoformat() if record.lease_expires else None,
        },
        "updated_at": record.updated_at.isoformat(),
    }
    if rollout is not None:
        data["candidate"] = {
            "rollout": rollout.rollout_id,
            "kind": rollout.kind.value,
            "trigger": rollout.trigger,
            "version": rollout.candidate_version,
            "colour": rollout.candidate_colour,
            "result": rollout.result.value if rollout.result else None,
            "gates": [
                {"name": g.name, "passed": g.passed, "detail": g.detail} for g in rollout.gates
            ],
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{settings.registry.model_name}: {data['state']} since {data['since']}")
    click.echo(f"  serving version {state.active_version} on {state.active_colour}")
    click.echo(f"  {state.reason}")
    if rollout is not None:
        result = f" -> {rollout.result.value}" if rollout.result else ""
        click.echo(
            f"  rollout {rollout.rollout_id} ({rollout.kind.value}, {rollout.trigger}): "
            f"candidate {rollout.candidate_version} on {rollout.candidate_colour}{result}"
        )


@click.command()
@click.argument("version")
@click.option(
    "--approve",
    is_flag=True,
    help="Approve VERSION's pending promotion instead: merge its GitOps review branch "
    "(driftline/promote-MODEL-VERSION) into the target branch and push, as a reviewer would.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the rollout to its end, printing each decision; exit 0 only when promoted.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=3600,
    show_default=True,
    help="With --wait: give up after this many seconds (the rollout goes on).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the request (and with --wait its rollout and result) as one JSON document.",
)
def promote(version: str, approve: bool, wait: bool, timeout: float, as_json: bool) -> None:
    """Ask the controller to roll VERSION out (gates, shadow and verification still apply).

    With --wait it follows the rollout: exit 0 when VERSION is promoted, 1 when the request is
    refused or the rollout ends otherwise (rejected, rolled back, failed) or times out.

    \b
    Examples:
      driftline promote 7
      driftline promote 7 --wait      # follow it: gates, shadow, switch, verification
      driftline promote 7 --approve   # merge its review branch, as a reviewer would
    """
    from driftline.store.rollouts import ControllerRequest  # noqa: PLC0415

    if not version.isdigit():
        raise click.ClickException(f"VERSION must be a registered version number, got {version!r}")
    settings = Settings()
    if approve:
        _approve(settings, version)
        return
    _check_version(settings, version)
    request = ControllerRequest(settings.registry.model_name, "promote", version, _actor())
    _queue(settings, request, as_json=as_json and not wait)
    if wait:
        follow_rollout(settings, request, timeout_s=timeout, as_json=as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the request as one JSON document.")
def rollback(as_json: bool) -> None:
    """Ask the controller to roll back: abort a rollout, or return to the previous version.

    \b
    Example:
      driftline rollback && driftline audit --since 10m
    """
    from driftline.store.rollouts import ControllerRequest  # noqa: PLC0415

    settings = Settings()
    request = ControllerRequest(settings.registry.model_name, "rollback", None, _actor())
    _queue(settings, request, as_json=as_json)


@click.command()
@click.option(
    "--since", default="24h", show_default=True, help="Duration (30m, 2h, 7d) or ISO time."
)
@click.option("--rollout", "rollout_id", default=None, help="Only this rollout's events.")
@click.option(
    "--kind", default=None, help="Only events of this kind (transition, gate, action, ...)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the events as one JSON array.")
def audit(since: str, rollout_id: str | None, kind: str | None, as_json: bool) -> None:
    """The controller's audit trail: every decision, gate, action and fault, oldest first.

    \b
    Examples:
      driftline audit --since 2h
      driftline audit --kind gate --json
    """
    settings = Settings()
    start = parse_since(since, datetime.now(UTC))
    store = _store(settings)
    try:
        events = _read(
            lambda: store.controller.audit_events(
                model_name=settings.registry.model_name,
                since=start,
                rollout_id=rollout_id,
                kind=kind,
            )
        )
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in events], indent=2, default=str))
        return
    for event in events:
        click.echo(_event_line(event))
    if not events:
        click.echo(f"no audit events since {start.isoformat()}")


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `2h`, `7d`, `45s` before `now`, or an ISO time (UTC when it has no zone)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return now - timedelta(**{unit: int(match[1])})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a duration like 30m, 2h, 7d or an ISO time", param_hint="--since"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


# --- helpers --------------------------------------------------------------------------------
def _store(settings: Settings, *, migrate: bool = False) -> Store:
    from driftline.store import Store  # noqa: PLC0415

    store = Store.from_settings(settings)
    if migrate:
        try:
            store.upgrade()
        except Exception as error:
            raise click.ClickException(f"store {settings.store_url}: {_line(error)}") from None
    return store


def _read(read: Any, *, missing_ok: bool = False) -> Any:
    """`read()`, with store failures as one-line errors (or None, if tables may be missing)."""
    import sqlalchemy as sa  # noqa: PLC0415

    try:
        return read()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as error:
        if "no such table" in str(error) or "does not exist" in str(error):
            if missing_ok:
                return None
            raise click.ClickException(
                "the store has no controller tables yet: run `driftline db upgrade`"
            ) from None
        raise click.ClickException(f"store unavailable: {_line(error)}") from None


def _queue(settings: Settings, request: ControllerRequest, *, as_json: bool = False) -> None:
    store = _store(settings, migrate=True)
    try:
        _read(lambda: store.controller.add_controller_request(request))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(_request_json(request), indent=2))
        return
    what = f"promote version {request.version}" if request.version else "roll back"
    click.echo(
        f"queued request {request.request_id} to {what} {settings.registry.model_name}; "
        "the controller handles it in its next round (see `driftline audit` and `driftline status`)"
    )


def _request_json(request: ControllerRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "model": request.model_name,
        "kind": request.kind,
        "version": request.version,
    }


def follow_rollout(
    settings: Settings,
    request: ControllerRequest,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    as_json: bool = False,
) -> None:
    """Print `request`'s rollout as the controller decides it, until it ends; exit 1 unless
    it was promoted. With `as_json` the progress goes to stderr and the end to stdout."""
    echo = functools.partial(click.echo, err=as_json)
    deadline = time.monotonic() + timeout_s
    store = _store(settings)
    seen: set[str] = set()
    rollout_id: str | None = None
    try:
        while True:
            if rollout_id is None:
                rollout_id = _accepted(store, request, echo)
            if rollout_id is not None:
                result = _progress(store, request, rollout_id, seen, echo)
                if result is not None:
                    if as_json:
                        document = {**_request_json(request), "rollout": rollout_id}
                        click.echo(json.dumps({**document, "result": result}, indent=2))
                    _ended(rollout_id, result, echo)
                    return
            if time.monotonic() >= deadline:
                raise click.ClickException(
                    f"gave up waiting after {timeout_s:g} s; the rollout goes on "
                    "(`driftline status`, `driftline audit`)"
                )
            time.sleep(poll_s)
    finally:
        store.close()


def _progress(
    store: Store,
    request: ControllerRequest,
    rollout_id: str,
    seen: set[str],
    echo: Callable[[str], None],
) -> str | None:
    """Print the rollout's audit events not yet `seen`; its result once it has one."""
    from operators.codec import decode_state  # noqa: PLC0415

    events = _read(
        lambda: store.controller.audit_events(
            model_name=request.model_name, since=request.created_at, rollout_id=rollout_id
        )
    )
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            echo(_event_line(event))
    record = _read(lambda: store.controller.controller_state(request.model_name))
    rollout = decode_state(record.state).rollout if record and record.state else None
    if rollout is None or rollout.rollout_id != rollout_id or rollout.result is None:
        return None
    return str(rollout.result.value)


def _accepted(store: Store, request: ControllerRequest, echo: Callable[[str], None]) -> str | None:
    """The rollout the controller started for `request`, None while it is pending."""
    handled = _read(
        lambda: store.controller.controller_requests(request.model_name, pending=False, limit=1000)
    )
    mine = next((r for r in handled if r.request_id == request.request_id), None)
    if mine is None or mine.consumed_at is None:
        return None
    outcome = mine.outcome or ""
    match = re.fullmatch(r"accepted as rollout (\S+)", outcome)
    if match is None:
        raise click.ClickException(f"the controller did not start a rollout: {outcome}")
    echo(f"rollout {match[1]} started")
    return match[1]


def _ended(rollout_id: str, result: str, echo: Callable[[str], None]) -> None:
    if result != "promoted":
        raise click.ClickException(f"rollout {rollout_id} ended {result}")
    echo(f"rollout {rollout_id} ended promoted")


def _event_line(event: Any) -> str:
    move = f" {event.state_from}->{event.state_to}" if event.state_to else ""
    rollout = f" [{event.rollout_id}]" if event.rollout_id else ""
    return f"{event.created_at:%Y-%m-%d %H:%M:%S} {event.kind:<13}{rollout}{move} {event.reason}"


def _approve(settings: Settings, version: str) -> None:
    from operators.assembly import gitops_repository  # noqa: PLC0415
    from operators.gitops import GitOpsError  # noqa: PLC0415

    try:
        sha = gitops_repository(settings).approve(version, _actor())
    except (ValueError, GitOpsError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"approved version {version} of {settings.registry.model_name}: merged as {sha[:10]} into "
        f"{settings.controller.gitops_branch}; the controller promotes it once verified"
    )


def _check_version(settings: Settings, version: str) -> None:
    from operators.registry_records import RegistryRecords  # noqa: PLC0415

    try:
        RegistryRecords(settings).registry.resolve(version)
    except LookupError:
        raise click.ClickException(
            f"{settings.registry.model_name} has no version {version}"
        ) from None
    except Exception as error:
        raise click.ClickException(f"cannot check version {version}: {_line(error)}") from None


def _run_local(settings: Settings, store: Store, stop: threading.Event) -> int:
    from driftline.observability.server import MetricsServer, server_guard  # noqa: PLC0415
    from driftline.store import utcnow  # noqa: PLC0415
    from operators.metrics import ControllerMetrics  # noqa: PLC0415

    metrics = ControllerMetrics()
    ctl = _local_controller(settings, store, metrics=metrics)
    interval = settings.controller.interval_s

    def ready() -> tuple[bool, str]:
        fresh = ctl.last_ok is not None and (utcnow() - ctl.last_ok).total_seconds() < 3 * interval
        return fresh, "ready" if fresh else f"no successful round recently: {ctl.last_error}"

    server = MetricsServer(
        settings.controller.host,
        settings.controller.port,
        metrics.registry,
        live=lambda: (True, "alive"),
        ready=ready,
        guard=server_guard(settings),
    ).start()
    click.echo(
        f"controller (local runtime) for {settings.registry.model_name}: "
        f"http://{settings.controller.host}:{server.port}/metrics",
        err=True,
    )
    try:
        ctl.run(stop, interval)
    finally:
        server.stop()
    return 0


def _run_operator(settings: Settings, store: Store, stop: threading.Event, *, gitops: bool) -> int:
    from driftline.observability.server import MetricsServer, server_guard  # noqa: PLC0415
    from operators.assembly import operator_context  # noqa: PLC0415
    from operators.controller import default_holder  # noqa: PLC0415
    from operators.kube.api import ClientKubeApi, KubeApiError, api_client  # noqa: PLC0415
    from operators.kube.handlers import run_operator  # noqa: PLC0415
    from operators.kube.leader import LeaseElector  # noqa: PLC0415

    try:
        api = ClientKubeApi(api_client())
    except KubeApiError as error:
        raise click.ClickException(str(error)) from None
    context = operator_context(settings, store, api, gitops=gitops)
    elector = LeaseElector(
        api,
        settings.controller.namespace or "default",
        settings.controller.lease_name,
        default_holder(),
        duration_s=int(settings.controller.lease_s),
    )
    server = MetricsServer(
        settings.controller.host,
        settings.controller.port,
        context.metrics.registry,
        live=lambda: (True, "alive"),
        ready=lambda: (True, "ready"),
        guard=server_guard(settings),
    ).start()
    operator_stop = threading.Event()
    worker = threading.Thread(target=run_operator, args=(context, operator_stop), daemon=True)
    try:
        kept = elector.lead(worker.start, stop)
    finally:
        operator_stop.set()
        server.stop()
    return 0 if kept else 1


def _actor() -> str:
    import getpass  # noqa: PLC0415

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _local_controller(settings: Settings, store: Store, **options: Any) -> Controller:
    """`assembly.local_controller`; a policy it cannot follow (approval without GitOps) is a
    one-line error, not a failure every round."""
    from operators.assembly import local_controller  # noqa: PLC0415
    from operators.spec import ApprovalNeedsGitOpsError  # noqa: PLC0415

    try:
        return local_controller(settings, store, **options)
    except ApprovalNeedsGitOpsError as error:
        raise click.ClickException(str(error)) from None


def _line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
