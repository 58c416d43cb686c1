"""checkov over the rendered chart (every mode), the Dockerfiles and the Terraform, in one run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
Report = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def checkov_report(
    tool: Callable[[str], str],
    every_mode: dict[str, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Report:
    """One checkov run (it is slow) over everything it can scan, results by framework."""
    manifests = tmp_path_factory.mktemp("rendered-chart")
    for mode, objs in every_mode.items():
        (manifests / f"{mode}.yaml").write_text(yaml.safe_dump_all(objs))
    argv = [tool("checkov"), "--compact", "--output", "json", "--skip-download"]
    argv += ["--framework", "kubernetes", "dockerfile", "terraform"]
    for directory in (manifests, REPO_ROOT / "docker", REPO_ROOT / "terraform"):
        argv += ["--directory", str(directory)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    merged: Report = {}
    for report in _json_documents(done.stdout):
        into = merged.setdefault(
            report["check_type"],
            {"results": {"failed_checks": [], "skipped_checks": []}, "summary": {"passed": 0}},
        )
        for key in ("failed_checks", "skipped_checks"):
            into["results"][key] += report["results"].get(key, [])
        into["summary"]["passed"] += report["summary"]["passed"]
    return merged


def _json_documents(text: str) -> list[dict[str, Any]]:
    # With several directories checkov prints one JSON value per scan, each a report or a list.
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        found += value if isinstance(value, list) else [value]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["kubernetes", "dockerfile", "terraform"])
def test_checkov_reports_no_failed_checks(checkov_report: Report, framework: str) -> None:
    report = checkov_report[framework]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 0


@pytest.mark.slow
def test_every_skip_is_inline_with_a_reason(checkov_report: Report) -> None:
    for framework, report in checkov_report.items():
        for check in report["results"]["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) > 15, (
                f"{framework}: {check['check_id']} skipped without reason"
            )
