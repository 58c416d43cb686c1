"""Who owns what: the controller's patches on the rendered chart are what Argo CD ignores.

The chart is rendered as Argo CD renders it (`helm template`), the real KubernetesRuntime then
deploys, routes and retires on those objects through a validating in-memory API, and every field
that differs afterwards must be listed in the Application's ignoreDifferences; otherwise Argo CD's
self-heal would revert a rollout.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.kube.api import INFERENCE_SERVICE, RAY_SERVICE
from operators.kube.manifests import Target
from operators.runtimes.kubernetes import KubernetesRuntime
from tests.operators.kube.cluster import FakeKubeApi, Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "helm" / "driftline" / "templates"
APPLICATIONS = REPO_ROOT / "gitops" / "applications"
Obj = dict[str, Any]
Render = Callable[..., list[Obj]]
Key = tuple[str, str, str]  # (group, kind, name)
RUNTIMES = {"RayService": RAY_SERVICE, "InferenceService": INFERENCE_SERVICE}


class Champion:
    """The registry's champion alias, held in memory."""

    def __init__(self) -> None:
        self.version: str | None = "5"

    def get(self) -> str | None:
        return self.version

    def set(self, action: object) -> None:
        self.version = str(getattr(action, "version", self.version))


def key_of(obj: Obj) -> Key:
    """(group, kind, name) as Argo CD's ignoreDifferences names a resource."""
    api_version = str(obj["apiVersion"])
    group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
    return group, str(obj["kind"]), str(obj["metadata"]["name"])


def ignored(app: Obj) -> dict[Key, tuple[str, ...]]:
    """The JSON pointers an Application ignores, by resource."""
    return {
        (d.get("group", ""), d["kind"], d["name"]): tuple(d.get("jsonPointers", ()))
        for d in app["spec"]["ignoreDifferences"]
    }


def differences(before: Any, after: Any, at: str = "") -> Iterator[str]:
    """JSON pointers of every leaf that differs between two documents."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            pointer = f"{at}/{str(key).replace('~', '~0').replace('/', '~1')}"
            yield from differences(before.get(key), after.get(key), pointer)
    elif before != after:
        yield at


def ignored_by(pointers: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a JSON pointer lies under one of `pointers`."""
    return lambda path: any(path == p or path.startswith(f"{p}/") for p in pointers)


def unignored(
    rendered: list[Obj], live: dict[Key, Obj], ignore: dict[Key, tuple[str, ...]]
) -> list[str]:
    """`kind/name pointer` of each difference no ignoreDifferences entry covers."""
    found = []
    for obj in rendered:
        key = key_of(obj)
        if key not in live:
            continue
        pointers = ignored_by(ignore.get(key, ()))
        paths = [
            *differences(obj.get("spec"), live[key].get("spec"), "/spec"),
            *differences(
                obj["metadata"].get("annotations") or {},
                live[key]["metadata"].get("annotations") or {},
                "/metadata/annotations",
            ),
        ]
        found += [f"{key[1]}/{key[2]} {path}" for path in paths if not pointers(path)]
    return found


def two_rollouts(objs: list[Obj], shared_crds: Path) -> list[dict[Key, Obj]]:
    """The chart's objects after each step of two rollouts by the controller (blue→green→blue)."""
    api = FakeKubeApi(Validator(shared_crds))
    (md,) = [o for o in objs if o["kind"] == "ModelDeployment"]
    runtime_kind = RUNTIMES[md["spec"]["serving"]["runtime"]]
    for obj in objs:
        if obj["kind"] == "Service" or (obj["kind"] == runtime_kind.kind):
            api.seed(copy.deepcopy(obj))
    target = Target(
        md["metadata"]["name"], md["metadata"]["namespace"], "uid-md", copy.deepcopy(md["spec"])
    )
    runtime = KubernetesRuntime(api, target, Champion(), None, None)  # type: ignore[arg-type]
    states = []
    for old, new, version in (("blue", "green", "7"), ("green", "blue", "8")):
        for verb, args in (
            ("deploy", (new, version)),
            ("route", (old, new)),  # the shadow phase: the preview Service mirrors the candidate
            ("route", (new, None)),
            ("retire", (old,)),
        ):
            getattr(runtime, verb)(*args)
            states.append({key_of(body): copy.deepcopy(body) for body in api.objects.values()})
    assert api.writes(), "the runtime changed nothing: the test would prove nothing"
    return states


def unignored_ever(
    rendered: list[Obj], states: list[dict[Key, Obj]], ignore: dict[Key, tuple[str, ...]]
) -> set[str]:
    """Differences no entry covers, at any step."""
    return {d for live in states for d in unignored(rendered, live, ignore)}


@pytest.fixture(params=sorted(p.stem for p in APPLICATIONS.glob("*.yaml")))
def app(request: pytest.FixtureRequest) -> Obj:
    """One environment's Argo CD Application."""
    return dict(yaml.safe_load((APPLICATIONS / f"{request.param}.yaml").read_text()))


def test_no_template_reads_the_cluster() -> None:
    # Argo CD renders with `helm template`: a `lookup` would silently render its fallback there.
    calls = [
        f"{path.relative_to(TEMPLATES)}"
        for path in TEMPLATES.rglob("*")
        if path.is_file()
        and re.search(
            r"\{\{-?[^}]*\blookup\s", re.sub(r"\{\{/\*.*?\*/\}\}", "", path.read_text(), flags=re.S)
        )
    ]
    assert calls == []


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_every_controller_patch_is_ignored_by_argo(
    app: Obj, runtime: str, render_chart: Render, shared_crds: Path
) -> None:
    values = (
        REPO_ROOT / app["spec"]["source"]["path"] / app["spec"]["source"]["helm"]["valueFiles"][0]
    )
    objs = render_chart("-f", str(values), "--set", f"serving.runtime={runtime}")
    states = two_rollouts(objs, shared_crds)
    assert unignored_ever(objs, states, ignored(app)) == set()
    # The ignore list is no wider than what the controller patches, resource by resource.
    patched = {d.split(" ")[0] for d in unignored_ever(objs, states, {})}
    ignored_here = {
        f"{kind}/{name}" for _, kind, name in ignored(app) if kind in {"Service", runtime}
    }
    assert ignored_here == patched


def test_a_missing_ignore_entry_is_caught(
    app: Obj, render_chart: Render, shared_crds: Path
) -> None:
    objs = render_chart("--set", "serving.runtime=RayService")
    states = two_rollouts(objs, shared_crds)
    narrow = {k: v for k, v in ignored(app).items() if k[1] != "RayService"}
    assert any("serveConfigV2" in d for d in unignored_ever(objs, states, narrow))


def test_a_promotion_commit_changes_only_controller_owned_fields(
    app: Obj, render_chart: Render, tmp_path: Path
) -> None:
    # The GitOps runtime commits `model.version` and `serving.activeColour`; the chart puts the
    # version on that colour, whose serveConfigV2 the controller already pinned when it deployed
    # it, and points the Services there, which the controller already did. Argo CD applies the
    # commit where it creates the objects (a new cluster) and leaves live ones alone.
    values_file = (
        REPO_ROOT
        / "gitops"
        / "environments"
        / app["metadata"]["labels"]["driftline.io/environment"]
        / "values.yaml"
    )
    values = yaml.safe_load(values_file.read_text())
    promoted = tmp_path / "values.yaml"
    serving = {**values.get("serving", {}), "activeColour": "green"}
    promoted.write_text(
        yaml.safe_dump(
            {**values, "model": {**values["model"], "version": "42"}, "serving": serving}
        )
    )
    before = render_chart("-f", str(values_file))
    after = {key_of(o): o for o in render_chart("-f", str(promoted))}
    changed = unignored(before, after, ignored(app))
    assert changed == []
    assert any("42" in str(after[key_of(o)]["spec"]) for o in before if o["kind"] == "RayService")
    (active,) = [o for o in after.values() if o["kind"] == "Service" and "-active" in key_of(o)[2]]
    assert active["spec"]["selector"]["driftline.io/colour"] == "green"
