"""gitops/: Argo CD Applications per environment and the values files the controller edits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GITOPS = REPO_ROOT / "gitops"
ENVIRONMENTS = sorted(p.name for p in (GITOPS / "environments").iterdir())
Render = Callable[..., list[dict[str, Any]]]


def application(env: str) -> dict[str, Any]:
    """The Argo CD Application of one environment."""
    return dict(yaml.safe_load((GITOPS / "applications" / f"{env}.yaml").read_text()))


def test_there_is_one_application_per_environment() -> None:
    assert ENVIRONMENTS == ["prod", "staging"]
    assert sorted(p.stem for p in (GITOPS / "applications").glob("*.yaml")) == ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_application_matches_the_argo_cd_crd(
    env: str, shared_crds: Path, crd_validator: Callable[[dict[str, Any], Path], list[str]]
) -> None:
    errors = crd_validator(application(env), shared_crds / "argoproj.io_applications.yaml")
    assert errors == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_application_deploys_the_chart_with_its_values_file(env: str) -> None:
    app = application(env)
    source = app["spec"]["source"]
    chart = REPO_ROOT / source["path"]
    assert (chart / "Chart.yaml").is_file()
    (values_file,) = source["helm"]["valueFiles"]
    assert (chart / values_file).resolve() == GITOPS / "environments" / env / "values.yaml"
    # The controller patches the Services' selectors; Argo CD must leave them alone.
    ignored = {d["name"] for d in app["spec"]["ignoreDifferences"] if d["kind"] == "Service"}
    assert ignored == {"driftline-active", "driftline-preview"}
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_values_file_holds_the_keys_the_controller_edits(
    env: str, render_chart: Render, tmp_path: Path
) -> None:
    path = GITOPS / "environments" / env / "values.yaml"
    values = yaml.safe_load(path.read_text())
    assert isinstance(values["model"]["name"], str)
    assert isinstance(values["model"]["version"], str)
    assert values["gitops"]["valuesPath"] == f"gitops/environments/{env}/values.yaml"
    # What a promotion commit does: the chart must serve the committed version.
    promoted = yaml.safe_dump({**values, "model": {**values["model"], "version": "42"}})
    edited = tmp_path / "values.yaml"
    edited.write_text(promoted)
    objs = render_chart("-f", str(edited))
    versions = {
        yaml.safe_load(o["spec"]["serveConfigV2"])["applications"][0]["args"]["model_version"]
        for o in objs
        if o["kind"] == "RayService"
    }
    assert "42" in versions


@pytest.mark.parametrize(("env", "required"), [("prod", True), ("staging", False)])
def test_prod_promotions_wait_for_a_reviewer_and_staging_ones_do_not(
    env: str, required: bool, render_chart: Render
) -> None:
    values = GITOPS / "environments" / env / "values.yaml"
    (deployment,) = [o for o in render_chart("-f", str(values)) if o["kind"] == "ModelDeployment"]
    assert deployment["spec"]["rollout"].get("requireApproval", False) is required
    assert deployment["spec"]["gitops"]["enabled"] is True
