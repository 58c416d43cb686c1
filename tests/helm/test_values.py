"""values.yaml: every value documented helm-docs style, and values.schema.json accepts it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "driftline"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?: |$)")


def undocumented_values(text: str) -> list[str]:
    """Dotted paths of keys that neither carry nor inherit a `# --` comment."""
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    pending_doc = False
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        if stripped.startswith("# --"):
            pending_doc = True
            continue
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = pending_doc or any(doc for _, _, doc in stack)
        pending_doc = False
        stack.append((indent, match["key"], documented))
        value = line.split(":", 1)[1].strip()
        is_leaf = bool(value) and not value.startswith("#")
        if is_leaf and not documented:
            missing.append(".".join(key for _, key, _ in stack))
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART / "values.yaml").read_text()) == []


def test_the_doc_check_catches_an_undocumented_value() -> None:
    text = "# -- documented\na: 1\nb:\n  # -- yes\n  c: 2\n  d: 3\n"
    assert undocumented_values(text) == ["b.d"]


def test_values_schema_is_valid_and_accepts_the_defaults() -> None:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(values)


def test_schema_rejects_unknown_keys_and_bad_types(
    render_chart: Callable[..., list[dict[str, Any]]],
) -> None:
    with pytest.raises(RuntimeError, match="serving"):
        render_chart("--set", "serving.replicaz=3")
    with pytest.raises(RuntimeError, match="model/version"):
        render_chart("--set-string", "model.version=latest")
    with pytest.raises(RuntimeError, match="imageDigest"):
        render_chart("--set", "controller.imageDigest=latest")


def test_every_alert_has_its_own_switch() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rules = yaml.safe_load((CHART.parents[1] / "monitoring" / "alerts.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    switches = values["monitoring"]["prometheusRule"]["alerts"]
    assert set(switches) == alerts
    assert all(s["enabled"] is True for s in switches.values())


def test_optional_features_are_off_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["serving"]["runtime"] == "RayService"
    assert values["serving"]["hpa"]["enabled"] is False
    assert values["training"]["enabled"] is False
    assert values["gitops"]["enabled"] is False
    monitoring = values["monitoring"]
    assert not any(
        monitoring[k]["enabled"] for k in ("serviceMonitor", "prometheusRule", "dashboards")
    )
    assert values["networkPolicy"]["enabled"] is True  # secure by default stays on
    assert values["rayAuth"]["enabled"] is True  # KubeRay generates the token when none is given
    assert values["ingress"]["enabled"] is False
    assert values["ingress"]["tls"]["enabled"] is False
    assert values["rateLimit"]["redis"]["existingSecret"] == ""
    assert values["auth"] == {"settings": {}, "secrets": {}}
