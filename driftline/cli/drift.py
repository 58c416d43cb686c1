"""`driftline drift compare|monitor|status` and `driftline outcomes ingest`."""

from __future__ import annotations

import getpass
import importlib
import json
import math
import signal
import threading
from pathlib import Path
from typing import Any

import click
import orjson
import pandas as pd

from driftline.config import Settings
from driftline.contracts import CHAMPION, Severity
from driftline.data import DataValidationError, load_bars
from driftline.drift.compare import DateRange, compare
from driftline.drift.detectors import FeatureDrift
from driftline.drift.errors import DriftInputError
from driftline.drift.report import DriftReport
from driftline.features import FeatureSpec, UnsupportedFeatureSpecError, default_spec
from driftline.store import Store, StoreUnavailableError
from driftline.store.drift_records import Outcome, UnknownOutcomeError
from driftline.symbols import check_symbol

SEVERITIES = [s.label for s in Severity if s is not Severity.NONE]
# 1 is click's usage-free error (ClickException) and 2 its usage error; drift gets its own code.
EXIT_DRIFT = 3

INPUT_ERRORS = (
    DriftInputError,
    DataValidationError,
    UnsupportedFeatureSpecError,
    UnknownOutcomeError,
    StoreUnavailableError,
    ValueError,
)


@click.group()
def drift() -> None:
    """Detect drift: compare date ranges offline, run the monitor, show the latest verdict.

    \b
    Examples:
      driftline drift compare --reference 2000-01-01:2004-12-31 --current 2008-01-01:2008-12-31
      driftline drift compare --reference 2004-01-01:2006-12-31 --current 2008-09-01:2008-12-31 \\
          --html report.html --fail-on high
      driftline drift status --json
    """


@drift.command("compare")
@click.option("--data", "data_path", type=click.Path(path_type=Path), help="OHLCV CSV/Parquet.")
@click.option("--reference", required=True, help="Reference range START:END (YYYY-MM-DD).")
@click.option("--current", required=True, help="Current range START:END (YYYY-MM-DD).")
@click.option("--spec", "spec_path", type=click.Path(path_type=Path), help="Feature spec JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option(
    "--scipy", "use_scipy", is_flag=True, help="Use scipy's KS even if alibi-detect is installed."
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report with charts to this file.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES, case_sensitive=False),
    default=None,
    help=f"Exit {EXIT_DRIFT} when the severity is at or above this grade (for CI).",
)
def compare_command(  # noqa: PLR0917  (click passes options as parameters)
    data_path: Path | None,
    reference: str,
    current: str,
    spec_path: Path | None,
    as_json: bool,
    use_scipy: bool,
    html_path: Path | None,
    fail_on: str | None,
) -> None:
    """Compare two date ranges of one bar history (default: the bundled S&P 500 data).

    \b
    Exit codes:
      0  the comparison ran (and, with --fail-on, the severity is below that grade)
      1  bad input: a range, the data, the spec, or the HTML file could not be used
      2  bad usage (an unknown option or grade)
      3  with --fail-on GRADE: the severity is GRADE or worse
    """
    settings = Settings()
    try:
        ref_range, cur_range = DateRange.parse(reference), DateRange.parse(current)
        spec, spec_source = _spec(spec_path, settings)
        bars = load_bars(data_path or settings.data.path, max_gap_days=settings.data.max_gap_days)
        detector = FeatureDrift(
            alpha=settings.drift.alpha,
            prefer_alibi=settings.drift.prefer_alibi and not use_scipy,
            min_rows=settings.drift.min_rows,
        )
        report = compare(
            bars,
            spec,
            ref_range,
            cur_range,
            detector=detector,
            model_name=settings.registry.model_name,
            bins=settings.drift.bins,
            null_windows=settings.drift.null_windows,
        )
    except INPUT_ERRORS as error:
        raise click.ClickException(_one_line(error)) from None
    document = {**report.to_dict(), "reference": str(ref_range), "current": str(cur_range)}
    document["spec"] = {"source": spec_source, "hash": spec.hash}
    if html_path is not None:
        _write_html(html_path, document)
    if as_json:
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_verdict(report, document)
    if fail_on is not None and report.severity >= Severity.parse(fail_on):
        click.get_current_context().exit(EXIT_DRIFT)


def _write_html(path: Path, document: dict[str, Any]) -> None:
    from driftline.drift.html import render_html  # noqa: PLC0415  (only when asked for)

    try:
        path.write_text(render_html(document), encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"{path}: {error.strerror or error}") from None
    click.echo(f"wrote {path}", err=True)


def _print_verdict(report: DriftReport, document: dict[str, Any]) -> None:
    summary = report.results[0].summary
    click.echo(f"severity {document['severity']}  recommendation {document['recommendation']}")
    for reason in report.reasons:
        click.echo(f"  - {reason}")
    click.echo(
        f"  textbook KS+FDR flagged {summary['textbook_ks_drifted']} of {summary['n_features']}; "
        f"PSI > 0.25 on {summary['textbook_psi_over_0_25']} ({summary['backend']})"
    )


@drift.command("monitor")
@click.option("--once", is_flag=True, help="Run one window and exit.")
@click.option("--port", type=int, default=None, help="Port for /metrics (default from settings).")
def monitor_command(once: bool, port: int | None) -> None:
    """Run the drift monitor: a report every DRIFTLINE_DRIFT_INTERVAL_S, /metrics on a port."""
    from driftline.drift.service import build_monitor  # noqa: PLC0415  (loads the registry)

    settings = Settings()
    monitor = build_monitor(settings)
    if once:
        try:
            monitor.warm_up()
            run = monitor.run_once()
        except INPUT_ERRORS as error:
            raise click.ClickException(_one_line(error)) from None
        if run.report is None:
            click.echo(f"no report: {run.skipped}")
        else:
            click.echo(orjson.dumps(run.report.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    from driftline.observability.server import MetricsServer, server_guard  # noqa: PLC0415

    server = MetricsServer(
        settings.drift.metrics_host,
        settings.drift.metrics_port if port is None else port,
        monitor.metrics.registry,
        live=lambda: (True, "alive"),
        ready=lambda: (True, "leading" if monitor.leading else "standing by"),
        guard=server_guard(settings),
    ).start()
    host = settings.drift.metrics_host
    click.echo(f"drift monitor: metrics on http://{host}:{server.port}/metrics (scope `read`)")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    monitor.run_forever(stop)


@drift.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(as_json: bool) -> None:
    """Show the latest drift report and the open alerts."""
    settings = Settings()
    store = Store.from_settings(settings)
    try:
        report = store.drift.latest_report(settings.registry.model_name)
        open_alerts = store.drift.alerts(
            model_name=settings.registry.model_name, acknowledged=False
        )
    except INPUT_ERRORS as error:
        raise click.ClickException(_one_line(error)) from None
    finally:
        store.close()
    if report is None:
        raise click.ClickException(f"no drift report for {settings.registry.model_name!r} yet")
    document: dict[str, Any] = {
        "model_name": report.model_name,
        "model_version": report.model_version,
        "created_at": report.created_at.isoformat(),
        "severity": report.severity,
        "recommendation": report.recommendation,
        "reasons": report.payload.get("reasons", []),
        "open_alerts": len(open_alerts),
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"{report.model_name} v{report.model_version}: {report.severity} "
        f"({report.recommendation}) at {report.created_at:%Y-%m-%d %H:%M:%S}Z; "
        f"{len(open_alerts)} open alert(s)"
    )
    for reason in document["reasons"]:
        click.echo(f"  - {reason}")


@click.group()
def outcomes() -> None:
    """Record realised values so that live performance can be judged.

    \b
    Example:
      driftline outcomes ingest outcomes.csv
    """


@outcomes.command("ingest")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--bars",
    "from_bars",
    is_flag=True,
    help="PATH is OHLCV bars: settle every prediction they realise.",
)
@click.option("--symbol", default=None, help="Symbol of the bars (default DRIFTLINE_SYMBOL).")
def ingest_command(path: Path, from_bars: bool, symbol: str | None) -> None:
    """Store outcomes from PATH (CSV or JSON with symbol, as_of, value), all or nothing.

    With --bars, PATH holds OHLCV bars; outcomes are the forward log returns over the
    configured horizon, and bars with no prediction are counted as unknown and skipped.
    """
    from driftline.drift.outcomes import OutcomeRecorder, realised  # noqa: PLC0415

    settings = Settings()
    store = Store.from_settings(settings)
    recorder = OutcomeRecorder(store, settings)
    try:
        if from_bars:
            bars = load_bars(path, max_gap_days=settings.data.max_gap_days)
            batch = realised(
                symbol or settings.data.symbol, bars, settings.training.horizon, source="cli"
            )
            result = store.drift.record_outcomes(
                batch, late_after_s=settings.drift.outcome_late_s, allow_unknown=True
            )
        else:
            result = recorder.ingest(_read_outcomes(path))
    except INPUT_ERRORS as error:
        raise click.ClickException(_one_line(error)) from None
    finally:
        store.close()
    click.echo(" ".join(f"{k}={v}" for k, v in result.as_dict().items()))


def _read_outcomes(path: Path) -> list[Outcome]:
    from driftline.drift.outcomes import utc  # noqa: PLC0415

    if path.suffix.lower() == ".json":
        document = json.loads(path.read_text())
        rows = document["outcomes"] if isinstance(document, dict) else document
        table = pd.DataFrame(rows)
    else:
        table = pd.read_csv(path, dtype={"symbol": str})
    missing = {"symbol", "as_of", "value"} - set(table.columns)
    if missing:
        raise DriftInputError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
    out = []
    for i, row in enumerate(table.itertuples(index=False), start=1):
        try:
            value = float(str(row.value))
            when = utc(row.as_of)
        except (TypeError, ValueError):
            raise DriftInputError(f"{path.name}: row {i}: bad as_of or value") from None
        if not math.isfinite(value):
            raise DriftInputError(f"{path.name}: row {i}: value is not finite")
        try:
            symbol = check_symbol(str(row.symbol))
        except ValueError as error:
            raise DriftInputError(f"{path.name}: row {i}: {error}") from None
        out.append(
            Outcome(symbol=symbol, as_of=when, value=value, source="cli", recorded_by=_operator())
        )
    if not out:
        raise DriftInputError(f"{path.name}: no outcomes")
    return out


def _operator() -> str:
    # The CLI writes to the store directly, with the database's credentials: name the user.
    return f"cli:{getpass.getuser()}"


def _spec(path: Path | None, settings: Settings) -> tuple[FeatureSpec, str]:
    if path is not None:
        try:
            return FeatureSpec.from_dict(json.loads(path.read_text())), str(path)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise DriftInputError(f"{path}: not a feature spec ({_one_line(error)})") from None
    champion = _champion_spec(settings)
    return (champion, CHAMPION) if champion is not None else (default_spec(), "default")


def _champion_spec(settings: Settings) -> FeatureSpec | None:
    try:
        registry = importlib.import_module("driftline.registry").Registry(settings)
        spec = registry.load_bundle(CHAMPION).spec
    except Exception:
        click.echo("no registered champion: using the default feature spec", err=True)
        return None
    return spec if isinstance(spec, FeatureSpec) else None


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["drift", "outcomes"]
