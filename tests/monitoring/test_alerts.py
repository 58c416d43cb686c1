"""monitoring/alerts.yaml under promtool, and the chart's PrometheusRule built from it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "alerts.yaml"
UNIT_TESTS = MONITORING / "tests" / "alerts_test.yaml"
RUNBOOKS = MONITORING / "runbooks.md"
Render = Callable[..., list[dict[str, Any]]]


def alerts(rules_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alerting rules by name."""
    return {r["alert"]: r for g in rules_file["groups"] for r in g["rules"] if "alert" in r}


def promtool(tool: Callable[[str], str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool, returning the finished process."""
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, check=False)


def test_promtool_check_rules_passes(tool: Callable[[str], str]) -> None:
    done = promtool(tool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_pass(tool: Callable[[str], str]) -> None:
    done = promtool(tool, "test", "rules", str(UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = set(alerts(yaml.safe_load(RULES.read_text())))
    assert names <= fired, f"never fired: {names - fired}"
    assert names <= silent, f"never checked silent: {names - silent}"


def test_promtool_catches_a_broken_expectation(tool: Callable[[str], str], tmp_path: Path) -> None:
    broken = UNIT_TESTS.read_text().replace(
        "severity: critical, namespace: prod}", "severity: page, namespace: prod}"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yaml").write_text(RULES.read_text())
    (tmp_path / "tests" / "alerts_test.yaml").write_text(broken)
    assert (
        promtool(tool, "test", "rules", str(tmp_path / "tests" / "alerts_test.yaml")).returncode
        == 1
    )


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    runbooks = RUNBOOKS.read_text().lower()
    for name, rule in alerts(yaml.safe_load(RULES.read_text())).items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
        url = rule["annotations"]["runbook_url"]
        assert url.endswith(f"runbooks.md#{name.lower()}"), name
        assert f"## {name.lower()}" in runbooks, f"runbooks.md has no section for {name}"


def test_chart_rule_passes_promtool_and_honours_switches(
    tool: Callable[[str], str], render_chart: Render, tmp_path: Path
) -> None:
    objs = render_chart(
        "--set",
        "monitoring.prometheusRule.enabled=true,"
        "monitoring.prometheusRule.alerts.DriftlineStoreDegraded.enabled=false,"
        "monitoring.prometheusRule.runbookBaseUrl=https://runbooks.example/driftline",
    )
    (rule,) = [o for o in objs if o["kind"] == "PrometheusRule"]
    rendered = tmp_path / "chart-rules.yaml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = promtool(tool, "check", "rules", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    source = alerts(yaml.safe_load(RULES.read_text()))
    shipped = alerts(rule["spec"])
    assert set(shipped) == set(source) - {"DriftlineStoreDegraded"}
    for name, alert in shipped.items():
        assert alert["expr"] == source[name]["expr"]
        assert (
            alert["annotations"]["runbook_url"]
            == f"https://runbooks.example/driftline#{name.lower()}"
        )
    # Recording rules the burn-rate alerts need ship whatever the switches say.
    records = {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    assert "driftline:request_slow:ratio_rate1h" in records
