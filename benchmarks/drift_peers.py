"""Driftline's drift grading beside Evidently and NannyML on the same features and windows.

Windows are those of the multi-market test (`_drift_windows`: S&P 500 and NASDAQ, crash
windows, calm years, other years) with Driftline's default 45 features. Driftline grades
each by `driftline drift compare`'s path; Evidently 0.7 (DataDriftPreset: dataset drift when
at least half the columns drift) and NannyML 0.13 (univariate KS and Jensen-Shannon, default
chunking: an alert when any feature alerts on any chunk) run in their own virtual environment,
`.driftline/peers-venv` (created here with uv if missing), never in Driftline's install.

An alarm is `medium` or worse for Driftline, dataset drift for Evidently, any alert for NannyML.

Run: `python -m benchmarks.drift_peers` (writes results/drift_peers.json and .md).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _drift_windows as markets
from benchmarks.harness import main_for
from driftline.contracts import Severity
from driftline.drift.severity import SeverityRules, findings_of

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".driftline" / "peers-venv"
PEERS = ("evidently==0.7.23", "nannyml==0.13.1", "pandas==2.3.3", "statsmodels")
PEER_SCRIPT = Path(__file__).with_name("_drift_peers_peer.py")
TELEMETRY_OFF = {
    "NML_DISABLE_USAGE_LOGGING": "1",
    "DO_NOT_TRACK": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
}


def run() -> dict[str, Any]:
    """Every window graded by the three tools, the calm-year alarm counts and the timings."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dl-drift-peers-") as scratch:
        manifest: dict[str, Any] = {"features": {}, "windows": [], "budget_s": _budget()}
        for market in markets.MARKETS:
            path = Path(scratch) / f"{market}.csv"
            markets.features(market).to_csv(path)
            manifest["features"][market] = str(path)
            for window in markets.windows(market):
                start = time.perf_counter()
                report = markets.driftline_report(market, window)
                seconds = time.perf_counter() - start
                findings = findings_of(report.results)
                rows.append(
                    {
                        "market": market,
                        "window": window.name,
                        "kind": window.kind,
                        "volatility_ratio": round(window.volatility_ratio, 2),
                        "driftline": {
                            "severity": report.severity.label,
                            "alarm": report.severity >= Severity.MEDIUM,
                            "groups_drifted": len(findings.drifted_groups(_RULES)),
                            "groups": len(findings.groups),
                            "groups_far": len(findings.far_groups(_RULES)),
                            "joint_ratio": round(findings.joint_ratio, 2),
                            "features_drifted": len(findings.drifted),
                            "seconds": seconds,
                        },
                    }
                )
                manifest["windows"].append(
                    {
                        "market": market,
                        "kind": window.kind,
                        "name": window.name,
                        "reference": [str(window.reference.start), str(window.reference.end)],
                        "current": [str(window.current.start), str(window.current.end)],
                    }
                )
        # Windows with an expectation first, markets alternating, so a budget cuts "other" years.
        order = {"crash": 0, "calm": 1, "other": 2}
        manifest["windows"].sort(key=lambda w: order[w["kind"]])
        versions, peers = _run_peers(manifest, Path(scratch))
    for row in rows:
        peer = peers.get((row["market"], row["window"]))
        row["evidently"] = peer["evidently"] if peer else None
        row["nannyml"] = peer["nannyml"] if peer else None
    return _summary(rows, versions)


def _budget() -> float | None:
    # On a loaded 2-core host the peers take about a minute per window; a budget bounds the run.
    text = os.environ.get("DRIFTLINE_BENCH_PEERS_BUDGET_S")
    return float(text) if text else None


_RULES = SeverityRules()


def _summary(rows: list[dict[str, Any]], versions: dict[str, str]) -> dict[str, Any]:
    tools = ("driftline", "evidently", "nannyml")
    compared = [r for r in rows if r["evidently"] is not None and r["nannyml"] is not None]
    calm = [r for r in compared if r["kind"] == "calm"]
    crash = [r for r in compared if r["kind"] == "crash"]
    calm_alarms = {t: sum(_alarm(r, t) for r in calm) for t in tools}
    crash_alarms = {t: sum(_alarm(r, t) for r in crash) for t in tools}
    seconds = {t: statistics.median(r[t]["seconds"] for r in compared) for t in tools}
    return {
        "title": "Drift verdicts beside Evidently and NannyML (S&P 500 and NASDAQ, 45 features)",
        "versions": versions,
        "windows_compared": len(compared),
        "windows_total": len(rows),
        "calm_windows": len(calm),
        "crash_windows": len(crash),
        "calm_alarms": calm_alarms,
        "crash_alarms": crash_alarms,
        "driftline_crash_high_or_worse": sum(
            Severity.parse(r["driftline"]["severity"]) >= Severity.HIGH
            for r in rows
            if r["kind"] == "crash"
        ),
        "driftline_calm_medium_or_worse": sum(
            r["driftline"]["alarm"] for r in rows if r["kind"] == "calm"
        ),
        "seconds_per_window": seconds,
        "windows": rows,
        "tables": [
            {
                "title": "Alarms (Driftline medium+, Evidently dataset drift, NannyML any alert)",
                "columns": [
                    "tool",
                    "calm windows with an alarm",
                    "crash windows with an alarm",
                    "median seconds per window",
                ],
                "rows": [
                    [
                        t,
                        f"{calm_alarms[t]} of {len(calm)}",
                        f"{crash_alarms[t]} of {len(crash)}",
                        round(seconds[t], 3),
                    ]
                    for t in tools
                ],
            },
            {
                "title": "Verdict per window",
                "columns": [
                    "market",
                    "window",
                    "kind",
                    "vol ratio",
                    "Driftline",
                    "groups drifted",
                    "far",
                    "joint",
                    "Evidently (share)",
                    "NannyML (share)",
                ],
                "rows": [_row(r) for r in rows],
            },
        ],
        "notes": [
            f"Evidently {versions['evidently']} and NannyML {versions['nannyml']} ran in "
            f"{PEERS_VENV.relative_to(ROOT)}, not in Driftline's install.",
            "kind: crash = 2008-09..12, 2000, 2001, 2002 against 2004-06 and years whose "
            "realised volatility is >= 2x the three before; calm = 2005-07..2006-06 against "
            "2004-01..2005-06 and years within 0.7-1.4x; other = no expectation.",
            "Driftline's reference null is calibrated per window (included in its time); "
            "seconds are medians over the compared windows on a shared, loaded 2-core host.",
            f"Peers ran on {len(compared)} of {len(rows)} windows (crash and calm first; "
            "'not run' rows fell outside the time budget DRIFTLINE_BENCH_PEERS_BUDGET_S).",
        ],
    }


def _row(r: dict[str, Any]) -> list[Any]:
    d, e, n = r["driftline"], r["evidently"], r["nannyml"]
    if e is None or n is None:
        return [
            r["market"],
            r["window"],
            r["kind"],
            r["volatility_ratio"],
            d["severity"],
            f"{d['groups_drifted']}/{d['groups']}",
            d["groups_far"],
            d["joint_ratio"],
            "not run",
            "not run",
        ]
    return [
        r["market"],
        r["window"],
        r["kind"],
        r["volatility_ratio"],
        d["severity"],
        f"{d['groups_drifted']}/{d['groups']}",
        d["groups_far"],
        d["joint_ratio"],
        f"{'drift' if e['drift'] else 'no drift'} ({e['share']:.2f})",
        f"{'alert' if n['drift'] else 'no alert'} ({n['share']:.2f})",
    ]


def _alarm(row: dict[str, Any], tool: str) -> bool:
    return bool(row[tool]["alarm"] if tool == "driftline" else row[tool]["drift"])


def _run_peers(
    manifest: dict[str, Any], scratch: Path
) -> tuple[dict[str, str], dict[tuple[str, str], dict[str, Any]]]:
    python = _peers_python()
    manifest_path, out = scratch / "manifest.json", scratch / "peers.jsonl"
    manifest_path.write_text(json.dumps(manifest))
    subprocess.run(
        [str(python), str(PEER_SCRIPT), str(manifest_path), str(out)],
        check=True,
        cwd=scratch,
        env={
            **{k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}},
            # Both tools send usage telemetry by default; the benchmark sends nothing.
            **TELEMETRY_OFF,
        },
    )
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    versions: dict[str, str] = lines[0]["versions"]
    return versions, {(r["market"], r["window"]): r for r in lines[1:]}


def _peers_python() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if python.is_file():
        return python
    uv = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(PEERS_VENV)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *PEERS], check=True)
    return python


if __name__ == "__main__":
    main_for(__name__, run)
