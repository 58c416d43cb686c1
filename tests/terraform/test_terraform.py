"""terraform/: standard module structure, typed and described variables, pinned versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ENVS = sorted(p for p in (TERRAFORM / "envs").iterdir() if p.is_dir())
ROOTS = MODULES + ENVS
EXACT = re.compile(r"^v?\d+\.\d+\.\d+$")
PESSIMISTIC = re.compile(r"^~> ?\d+\.\d+(\.\d+)?$")


def parse(directory: Path) -> dict[str, list[Any]]:
    """Every block of a module's .tf files, merged by block type, quotes and markers removed."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for block, items in normalise(hcl2.load(handle)).items():
                merged.setdefault(block, []).extend(items)
    return merged


def normalise(node: Any) -> Any:
    """python-hcl2 8 keeps string quotes and adds `__is_block__`/`__comments__`; drop them."""
    if isinstance(node, dict):
        return {
            unquote(key): normalise(value)
            for key, value in node.items()
            if key not in {"__is_block__", "__comments__"}
        }
    if isinstance(node, list):
        return [normalise(item) for item in node]
    return unquote(node)


def unquote(value: Any) -> Any:
    """A quoted HCL string literal without its quotes; anything else unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def test_standard_layout() -> None:
    assert [m.name for m in MODULES] == ["cluster", "platform"]
    assert [e.name for e in ENVS] == ["prod", "staging"]
    for module in MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            assert (module / name).is_file(), f"{module.name}/{name}"
    for env in ENVS:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (env / name).is_file(), f"{env.name}/{name}"


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_variables_are_typed_and_described(root: Path) -> None:
    variables = parse(root).get("variable", [])
    assert variables
    for block in variables:
        ((name, body),) = block.items()
        assert "type" in body, f"{root.name}: variable {name} has no type"
        assert len(unquote(body.get("description", ""))) > 10, f"{root.name}: {name} undescribed"
        for rule in body.get("validation", []):
            assert rule["condition"], name
            assert unquote(rule["error_message"]), name


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_outputs_are_described(root: Path) -> None:
    for block in parse(root).get("output", []):
        ((name, body),) = block.items()
        assert len(unquote(body.get("description", ""))) > 10, f"{root.name}: output {name}"


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_terraform_and_providers_are_pinned(root: Path) -> None:
    (settings,) = parse(root)["terraform"]
    required = unquote(settings["required_version"])
    assert re.fullmatch(r">= ?1\.\d+\.\d+, ?< ?2\.0\.0", required), required
    (providers,) = settings["required_providers"]
    assert providers
    for name, spec in providers.items():
        assert unquote(spec["source"]).startswith("hashicorp/"), name
        assert PESSIMISTIC.match(unquote(spec["version"])), f"{name}: {spec['version']}"


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_registry_modules_and_charts_are_pinned_exactly(root: Path) -> None:
    blocks = parse(root)
    for block in blocks.get("module", []):
        ((name, body),) = block.items()
        source = unquote(body["source"])
        if not source.startswith("../"):
            assert EXACT.match(unquote(body["version"])), f"module {name} not pinned exactly"
    for block in blocks.get("resource", []):
        for kind, resources in block.items():
            if kind != "helm_release":
                continue
            for name, body in resources.items():
                if "repository" in body:
                    assert "version" in body, f"helm_release {name} has no version"
    for block in blocks.get("variable", []):
        ((name, body),) = block.items()
        if name == "chart_versions":
            assert all(EXACT.match(v) for v in body["default"].values())


def test_cluster_module_has_eks_a_ray_pool_and_autoscaling() -> None:
    modules = {
        name: body
        for block in parse(TERRAFORM / "modules" / "cluster")["module"]
        for name, body in block.items()
    }
    assert unquote(modules["eks"]["source"]) == "terraform-aws-modules/eks/aws"
    groups = modules["eks"]["eks_managed_node_groups"]
    ray = groups["ray"]
    assert "k8s.io/cluster-autoscaler/enabled" in ray["tags"]
    assert ray["taints"]["ray"]["effect"] == "NO_SCHEDULE"
    assert modules["cluster_autoscaler_irsa"]["attach_cluster_autoscaler_policy"] is True


def test_platform_module_installs_every_release() -> None:
    releases = {
        name
        for block in parse(TERRAFORM / "modules" / "platform")["resource"]
        for kind, resources in block.items()
        if kind == "helm_release"
        for name in resources
    }
    assert releases >= {
        "cluster_autoscaler",
        "kuberay_operator",
        "kserve",
        "kube_prometheus_stack",
        "argo_cd",
        "driftline",
        "driftline_application",
    }


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_environments_pass_every_required_module_input(env: Path) -> None:
    calls = {name: body for block in parse(env)["module"] for name, body in block.items()}
    assert set(calls) == {"cluster", "platform"}
    for name, body in calls.items():
        module_dir = (env / unquote(body["source"])).resolve()
        required = {
            var_name
            for block in parse(module_dir)["variable"]
            for var_name, spec in block.items()
            if "default" not in spec
        }
        declared = {var_name for block in parse(module_dir)["variable"] for var_name in block}
        given = set(body) - {"source", "version", "providers", "depends_on"}
        assert required <= given, f"{env.name}: {name} lacks {required - given}"
        assert given <= declared, f"{env.name}: {name} has unknown inputs {given - declared}"


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed; formatting is checked where it is")
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
