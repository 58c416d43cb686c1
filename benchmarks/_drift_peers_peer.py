"""Evidently and NannyML on Driftline's market windows; runs inside the peers' own venv.

Not a benchmark module and never imported by Driftline: `drift_peers` runs it with the
peers' interpreter as `python _drift_peers_peer.py MANIFEST OUT`. The manifest names one CSV
of feature rows per market (date-indexed) and the windows (reference and current date
ranges, crash and calm windows first); the output holds one JSON line per window with each
tool's verdict and seconds.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd


def evidently_verdict(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """DataDriftPreset with its defaults: dataset drift when >= half the columns drift."""
    from evidently import Report  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    for metric in snapshot.dict()["metrics"]:
        if metric["config"]["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            return {
                "drift": share >= float(metric["config"]["drift_share"]),
                "drifted_columns": int(metric["value"]["count"]),
                "share": share,
            }
    raise RuntimeError("Evidently's report has no DriftedColumnsCount metric")


def nannyml_verdict(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Univariate KS and Jensen-Shannon with NannyML's default chunking and thresholds."""
    import nannyml as nml  # noqa: PLC0415

    columns = list(reference.columns)
    calculator = nml.UnivariateDriftCalculator(
        column_names=columns, continuous_methods=["kolmogorov_smirnov", "jensen_shannon"]
    )
    calculator.fit(reference.reset_index(drop=True))
    table = calculator.calculate(current.reset_index(drop=True)).to_df()
    analysis = table[table[("chunk", "chunk", "period")] == "analysis"]
    alerted = [
        c
        for c in columns
        if any(
            bool(analysis[(c, m, "alert")].any()) for m in ("kolmogorov_smirnov", "jensen_shannon")
        )
    ]
    return {
        "drift": bool(alerted),
        "alerted_columns": len(alerted),
        "share": len(alerted) / len(columns),
        "chunks": len(analysis),
    }


def main(manifest_path: str, out_path: str) -> None:
    """Run both tools on the manifest's windows, in its order, appending one JSON line each.

    Lines are written as windows finish, so a run stopped at the manifest's time budget
    leaves every finished verdict behind.
    """
    warnings.filterwarnings("ignore")
    # Imported before the clock starts: time per window excludes loading the libraries.
    import evidently  # noqa: PLC0415
    import nannyml  # noqa: PLC0415

    manifest = json.loads(Path(manifest_path).read_text())
    frames = {
        market: pd.read_csv(csv, index_col=0, parse_dates=True)
        for market, csv in manifest["features"].items()
    }
    deadline = time.monotonic() + float(manifest.get("budget_s") or float("inf"))
    with Path(out_path).open("w") as out:
        versions = {"evidently": evidently.__version__, "nannyml": nannyml.__version__}
        out.write(json.dumps({"versions": versions}) + "\n")
        out.flush()
        for window in manifest["windows"]:
            if time.monotonic() > deadline:
                break
            frame = frames[window["market"]]
            reference = frame.loc[window["reference"][0] : window["reference"][1]]
            current = frame.loc[window["current"][0] : window["current"][1]]
            row: dict[str, Any] = {"market": window["market"], "window": window["name"]}
            for tool, verdict in (("evidently", evidently_verdict), ("nannyml", nannyml_verdict)):
                start = time.perf_counter()
                row[tool] = verdict(reference, current)
                row[tool]["seconds"] = time.perf_counter() - start
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
