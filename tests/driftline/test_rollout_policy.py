"""The rollout policy has one set of defaults: the model's, restated by the CRD and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic.alias_generators import to_camel

from driftline.config import Settings
from driftline.rollout_policy import DriftPolicy, PolicySection, RetrainingPolicy, RolloutPolicy
from operators.spec import RolloutSpec

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "helm/driftline/crds/driftline.io_modeldeployments.yaml"
CHART_VALUES = ROOT / "helm/driftline/values.yaml"
ENVIRONMENTS = sorted((ROOT / "gitops/environments").glob("*/values.yaml"))

# ModelDeployment spec key -> the policy model it is read into.
POLICIES: dict[str, type[PolicySection]] = {
    "driftPolicy": DriftPolicy,
    "retraining": RetrainingPolicy,
    "rollout": RolloutPolicy,
}
# What the Kubernetes RayJob reads from the raw spec (no local meaning, so not in the model).
KUBERNETES_ONLY = {("retraining", "entrypoint"), ("retraining", "image")}
KUBERNETES_ONLY |= {("retraining", "rayClusterSpec")}


def _crd_spec() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]["properties"]  # type: ignore[no-any-return]


def _section(model: type[PolicySection], field: str) -> type[PolicySection] | None:
    kind = model.model_fields[field].annotation
    return kind if isinstance(kind, type) and issubclass(kind, PolicySection) else None


def _mismatches(model: type[PolicySection], schema: dict[str, Any], where: str) -> list[str]:
    """Where the CRD's defaults, enums or fields differ from `model`'s."""
    found: list[str] = []
    properties = schema["properties"]
    defaults = model().model_dump(mode="json")
    for name, info in model.model_fields.items():
        key, here = to_camel(name), f"{where}.{to_camel(name)}"
        if key not in properties:
            found.append(f"{here}: not in the CRD")
            continue
        nested = _section(model, name)
        if nested is not None:
            found += _mismatches(nested, properties[key], here)
            continue
        if properties[key].get("default") != defaults[name]:
            found.append(
                f"{here}: CRD {properties[key].get('default')!r}, model {defaults[name]!r}"
            )
        enum = list(get_args(info.annotation))
        if get_origin(info.annotation) is Literal and properties[key].get("enum") != enum:
            found.append(f"{here}: CRD enum {properties[key].get('enum')}")
    names = {to_camel(n) for n in model.model_fields}
    section = where.split(".")[1]
    found += [
        f"{where}.{key}: in the CRD, not in the model"
        for key in properties
        if key not in names and (section, key) not in KUBERNETES_ONLY
    ]
    return found


@pytest.mark.parametrize("key", POLICIES)
def test_the_crd_states_the_models_fields_and_defaults(key: str):
    assert _mismatches(POLICIES[key], _crd_spec()[key], f"spec.{key}") == []


def test_the_crd_check_sees_a_changed_default():
    spec = _crd_spec()["rollout"]
    spec["properties"]["drainSeconds"]["default"] = 30
    assert _mismatches(RolloutPolicy, spec, "spec.rollout") == [
        "spec.rollout.drainSeconds: CRD 30, model 15.0"
    ]


def test_a_resource_without_policy_reads_as_the_settings_defaults():
    spec = RolloutSpec.from_resource({"model": {"name": "m"}})
    local = RolloutSpec.from_settings(Settings(registry={"model_name": "m"}))
    assert spec == local


@pytest.mark.parametrize("key", ["driftPolicy", "rollout"])
def test_the_charts_values_are_the_models_defaults(key: str):
    values = yaml.safe_load(CHART_VALUES.read_text())["modelDeployment"][key]
    assert values == POLICIES[key]().model_dump(by_alias=True, mode="json")


def _overrides(model: type[PolicySection], values: dict[str, Any], where: str) -> list[str]:
    """Keys of `values` that are unknown to `model` or restate its default."""
    found: list[str] = []
    fields = {to_camel(n): n for n in model.model_fields}
    for key, value in values.items():
        if key not in fields:
            found.append(f"{where}.{key}: not a policy field")
            continue
        nested = _section(model, fields[key])
        if nested is not None:
            found += _overrides(nested, value, f"{where}.{key}")
        elif value == model().model_dump(mode="json")[fields[key]]:
            found.append(f"{where}.{key}: restates the default {value!r}")
    return found


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=[p.parent.name for p in ENVIRONMENTS])
def test_an_environment_states_only_the_policy_it_changes(path: Path):
    deployment = yaml.safe_load(path.read_text()).get("modelDeployment") or {}
    found: list[str] = []
    for key, model in POLICIES.items():
        values = deployment.get(key) or {}
        model.model_validate(values)
        found += _overrides(model, values, f"{path.parent.name}.{key}")
    assert found == []
