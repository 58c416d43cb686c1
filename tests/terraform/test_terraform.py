"""terraform/: standard module structure, typed and described variables, pinned versions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

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
    assert [m.name for m in MODULES] == ["cluster", "data", "platform"]
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
    # The chart renders NetworkPolicies by default; the VPC CNI enforces them only when asked.
    vpc_cni = modules["eks"]["cluster_addons"]["vpc-cni"]
    assert "enableNetworkPolicy" in str(vpc_cni["configuration_values"])


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
        "cert_manager",
        "prometheus_adapter",
        "mlflow",
    }


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_environments_pass_every_required_module_input(env: Path) -> None:
    calls = {name: body for block in parse(env)["module"] for name, body in block.items()}
    assert set(calls) == {"cluster", "data", "platform"}
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


def resources(root: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every resource of one type in a module, by name."""
    return {
        name: body
        for block in parse(root).get("resource", [])
        for resource_kind, found in block.items()
        if resource_kind == kind
        for name, body in found.items()
    }


PLATFORM = TERRAFORM / "modules" / "platform"
DATA = TERRAFORM / "modules" / "data"
CHART = TERRAFORM.parent / "helm" / "driftline"


def test_the_database_is_private_encrypted_and_keeps_its_own_master_password() -> None:
    (db,) = resources(DATA, "aws_db_instance").values()
    assert db["storage_encrypted"] is True
    assert db["publicly_accessible"] is False
    assert db["manage_master_user_password"] is True
    assert "password" not in db
    assert db["deletion_protection"] == "${var.deletion_protection}"
    (params,) = resources(DATA, "aws_db_parameter_group").values()
    forced = {p["name"]: p["value"] for p in params["parameter"]}
    assert forced["rds.force_ssl"] == "1"


def test_the_artifact_bucket_is_versioned_encrypted_and_never_public() -> None:
    found = {kind: resources(DATA, kind) for kind in ("aws_s3_bucket_public_access_block",)}
    (block,) = found["aws_s3_bucket_public_access_block"].values()
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy"))
    (versioning,) = resources(DATA, "aws_s3_bucket_versioning").values()
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    (sse,) = resources(DATA, "aws_s3_bucket_server_side_encryption_configuration").values()
    rule = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert rule["sse_algorithm"] == "aws:kms"


def test_kserve_waits_for_cert_manager_and_both_follow_enable_kserve() -> None:
    releases = resources(PLATFORM, "helm_release")
    assert releases["cert_manager"]["count"] == releases["kserve"]["count"]
    assert "${helm_release.cert_manager}" in releases["kserve_crd"]["depends_on"]


def test_prometheus_adapter_serves_the_metric_the_charts_hpa_reads() -> None:
    hpa = (CHART / "templates" / "serving" / "hpa.yaml").read_text()
    text = (PLATFORM / "main.tf").read_text()
    metric = re.search(r'as\s*=\s*"(\w+)"', text)
    assert metric is not None
    assert f"name: {metric[1]}" in hpa
    assert 'seriesQuery  = "driftline_requests_total' in text


def test_the_mlflow_url_terraform_outputs_is_the_charts_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = (PLATFORM / "main.tf").read_text()
    (url,) = re.findall(r'mlflow_url\s*=\s*"([^"]+)"', text)
    namespace = resources(PLATFORM, "kubernetes_namespace_v1")["mlflow"]["metadata"][0]["name"]
    rendered = url.replace("${kubernetes_namespace_v1.mlflow.metadata[0].name}", namespace)
    assert rendered == values["mlflow"]["trackingUri"]


def test_every_component_gets_a_role_a_password_and_a_secret() -> None:
    variables = {n: b for block in parse(PLATFORM)["variable"] for n, b in block.items()}
    assert set(variables["database_components"]["default"]) == {
        "serving",
        "monitor",
        "controller",
        "training",
    }
    assert variables["database"]["sensitive"] is True
    secrets = resources(PLATFORM, "kubernetes_secret_v1")
    assert secrets["component_database"]["for_each"] == "${var.database_components}"
    assert "sslmode=require" in secrets["component_database"]["data"]["url"]
    sql = (PLATFORM / "files" / "database-roles.sql.tftpl").read_text()
    # Passwords reach psql from the Job's Secret, never through the rendered script.
    assert "\\getenv pw_${c} PASSWORD_${upper(c)}" in sql
    assert "PASSWORD_${upper(c)}" in secrets["database_roles"]["data"]
    assert "ALTER DEFAULT PRIVILEGES FOR ROLE driftline_controller" in sql
    job = resources(PLATFORM, "kubernetes_job_v1")["database_roles"]
    assert job["wait_for_completion"] is True
    container = job["spec"][0]["template"][0]["spec"][0]["container"][0]
    assert container["security_context"][0]["read_only_root_filesystem"] is True


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_environments_output_what_the_chart_install_needs(env: Path) -> None:
    outputs = {n for block in parse(env)["output"] for n in block}
    assert outputs >= {
        "driftline_values",
        "mlflow_tracking_uri",
        "database_secrets",
        "artifact_bucket",
        "driftline_namespace",
    }


def test_every_delivery_gets_terraforms_chart_values() -> None:
    releases = resources(PLATFORM, "helm_release")
    assert "${local.driftline_values}" in releases["driftline"]["values"]
    text = (PLATFORM / "main.tf").read_text()
    assert re.search(
        r"helm\s+= merge\(local\.application\.spec\.source\.helm, "
        r"\{ values = local\.driftline_values",
        text,
    )
    assert "local.application_source" in str(releases["driftline_application"]["values"])
