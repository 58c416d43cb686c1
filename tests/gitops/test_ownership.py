"""Who owns what: the controller's patches on the rendered chart are what Argo CD ignores.

The chart is rendered as Argo CD renders it (`helm template`), the real KubernetesRuntime then
deploys, routes and retires on those objects through a validating in-memory API, and every field
that differs afterwards must be listed in the Application's ignoreDifferences; otherwise Argo CD's
self-heal would revert a rollout. And nothing more: a chart upgrade rendered afterwards must reach
the colours, through Argo CD's sync or the controller's next deploy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.kube import manifests as m
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
    for entry in app["spec"]["ignoreDifferences"]:
        # jqPathExpressions or managedFieldsManagers would go unchecked here; and with
        # RespectIgnoreDifferences a jq path into a list keeps that whole list from the cluster.
        assert set(entry) <= {"group", "kind", "name", "jsonPointers"}, entry
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


def controller_on(objs: list[Obj], shared_crds: Path) -> tuple[FakeKubeApi, KubernetesRuntime]:
    """A validating API holding the chart's Services and colours, and the real runtime acting on
    them for the rendered ModelDeployment."""
    api = FakeKubeApi(Validator(shared_crds))
    md = model_deployment(objs)
    runtime_kind = RUNTIMES[md["spec"]["serving"]["runtime"]]
    for obj in objs:
        if obj["kind"] == "Service" or (obj["kind"] == runtime_kind.kind):
            api.seed(copy.deepcopy(obj))
    return api, runtime_for(api, md)


def model_deployment(objs: list[Obj]) -> Obj:
    (md,) = [o for o in objs if o["kind"] == "ModelDeployment"]
    return md


def runtime_for(api: FakeKubeApi, md: Obj) -> KubernetesRuntime:
    """The runtime for a ModelDeployment as Argo CD last synced it."""
    target = Target(
        md["metadata"]["name"], md["metadata"]["namespace"], "uid-md", copy.deepcopy(md["spec"])
    )
    return KubernetesRuntime(api, target, Champion(), None, None)  # type: ignore[arg-type]


def rollout(runtime: KubernetesRuntime, old: str, new: str, version: str) -> Iterator[None]:
    """One blue/green rollout by the controller, yielding after each step."""
    for verb, args in (
        ("deploy", (new, version)),
        ("route", (old, new)),  # the shadow phase: the preview Service mirrors the candidate
        ("route", (new, None)),
        ("retire", (old,)),
    ):
        getattr(runtime, verb)(*args)
        yield


def snapshot(api: FakeKubeApi) -> dict[Key, Obj]:
    return {key_of(body): copy.deepcopy(body) for body in api.objects.values()}


def two_rollouts(objs: list[Obj], shared_crds: Path) -> list[dict[Key, Obj]]:
    """The chart's objects after each step of two rollouts by the controller (blue→green→blue)."""
    api, runtime = controller_on(objs, shared_crds)
    states = []
    for old, new, version in (("blue", "green", "7"), ("green", "blue", "8")):
        states.extend(snapshot(api) for _ in rollout(runtime, old, new, version))
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


# --- a chart upgrade after a rollout ------------------------------------------------------------
# A later chart version changes the image tag and the serving container's resources (values), a
# readiness probe (a template change: made on the rendered colours and the ModelDeployment's
# template alike, as their shared helpers would) and a serve arg (RayService: `num_cpus`).
UPGRADE = ("--set", "image.tag=9.9.9,serving.resources.requests.cpu=3,serving.serveApp.numCpus=1")
PROBE_TIMEOUT = 7


def containers(kind: str, spec: Obj) -> list[Obj]:
    """The containers of a serving object's spec (both Ray groups, or the predictor)."""
    if kind == "InferenceService":
        return list(spec["predictor"]["containers"])
    cluster = spec["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


def upgraded(objs: list[Obj], runtime: str) -> list[Obj]:
    """`objs` with the upgrade's new readiness probe timeout on every serving container."""
    objs = copy.deepcopy(objs)
    specs = [o["spec"] for o in objs if o["kind"] == runtime]
    specs.append(model_deployment(objs)["spec"]["serving"]["template"]["spec"])
    for spec in specs:
        for container in containers(runtime, spec):
            container["readinessProbe"]["timeoutSeconds"] = PROBE_TIMEOUT
    return objs


def parts(pointer: str) -> list[str]:
    """A JSON pointer's keys, unescaped."""
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def at(doc: Any, pointer: str) -> tuple[bool, Any]:
    """Whether a JSON pointer resolves in `doc`, and to what."""
    for part in parts(pointer):
        assert not isinstance(doc, list), f"{pointer} runs through a list"
        if not isinstance(doc, dict) or part not in doc:
            return False, None
        doc = doc[part]
    return True, doc


def argo_applies(rendered: Obj, live: Obj, pointers: tuple[str, ...]) -> Obj:
    """What Argo CD applies on a sync with RespectIgnoreDifferences=true: the rendered object with
    each ignored field's live value. It copies them with a JSON merge patch, which replaces a
    custom resource's list whole, so a pointer through a list is refused rather than modelled."""
    applied = copy.deepcopy(rendered)
    for pointer in pointers:
        found, value = at(live, pointer)
        *parents, leaf = parts(pointer)
        node = applied
        for part in parents:
            node = node.setdefault(part, {}) if found else node.get(part) or {}
            assert isinstance(node, dict), f"{pointer} runs through a list"
        if found:
            node[leaf] = copy.deepcopy(value)
        else:
            node.pop(leaf, None)
    return applied


def serve_app(body: Obj) -> tuple[Obj, str | None]:
    """A RayService's serve config without the version arg, and that version."""
    config = yaml.safe_load(body["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    return config, app["args"].pop("model_version", None)


def upgrade_problems(
    values: Path, runtime: str, ignore: dict[Key, tuple[str, ...]], render: Render, crds: Path
) -> list[str]:
    """Render, roll out blue→green, render a chart upgrade and let Argo CD sync it, then roll out
    green→blue: what of the upgrade never reaches a colour, or what of the controller's the sync
    reverts."""
    base = ("-f", str(values), "--set", f"serving.runtime={runtime}")
    api, controller = controller_on(render(*base), crds)
    for _ in rollout(controller, "blue", "green", "7"):
        pass
    served = controller.observe_serving()
    chart = upgraded(render(*base, *UPGRADE), runtime)
    problems = []
    live = snapshot(api)
    for obj in chart:
        key = key_of(obj)
        if key not in live or obj["kind"] not in {"Service", runtime}:
            continue
        applied = argo_applies(obj, live[key], ignore.get(key, ()))
        api.seed(applied)
        if obj["kind"] != runtime:
            continue
        wanted = containers(runtime, obj["spec"])
        assert wanted != containers(runtime, live[key]["spec"]), "the upgrade changed nothing"
        # (a) Argo CD applies the image, resources and probe to both colours at once.
        if containers(runtime, applied["spec"]) != wanted:
            problems.append(f"{key[1]}/{key[2]}: the sync keeps the old containers")
    # (b) ... and leaves what the controller set: routing and each colour's version.
    if controller.observe_serving() != served:
        problems.append(f"the sync reverts the controller: {controller.observe_serving()}")
    # (c) The next rollout, with the ModelDeployment as Argo CD synced it, carries the chart's
    # serve app to the colour it deploys and the one it retires, and keeps Argo CD's containers.
    after_sync = snapshot(api)
    for _ in rollout(runtime_for(api, model_deployment(chart)), "green", "blue", "8"):
        pass
    for obj in chart:
        key = key_of(obj)
        if obj["kind"] != runtime:
            continue
        body = snapshot(api)[key]
        if containers(runtime, body["spec"]) != containers(runtime, obj["spec"]):
            problems.append(f"{key[1]}/{key[2]}: the rollout reverts the chart's containers")
        if runtime == "RayService":
            config, version = serve_app(body)
            expected = {"blue": "8", "green": "challenger"}[
                body["metadata"]["labels"]["driftline.io/colour"]
            ]
            if (config, version) != (serve_app(obj)[0], expected):
                problems.append(f"{key[1]}/{key[2]}: serve app {config} version {version}")
            # Until that rollout the colour kept the serve app it had: the controller's field.
            assert serve_app(after_sync[key])[0] != serve_app(obj)[0], "no serve app change"
    return problems


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_chart_upgrade_reaches_both_colours(
    app: Obj, runtime: str, render_chart: Render, shared_crds: Path
) -> None:
    values = (
        REPO_ROOT / app["spec"]["source"]["path"] / app["spec"]["source"]["helm"]["valueFiles"][0]
    )
    assert upgrade_problems(values, runtime, ignored(app), render_chart, shared_crds) == []


def test_ignoring_the_whole_containers_list_is_caught(
    app: Obj, render_chart: Render, shared_crds: Path
) -> None:
    # The list the version's env entry used to live in: Argo CD would keep the old image.
    broad = {
        k: (*v, "/spec/predictor/containers") if k[1] == "InferenceService" else v
        for k, v in ignored(app).items()
    }
    values = REPO_ROOT / "helm" / "driftline" / "values.yaml"
    problems = upgrade_problems(values, "InferenceService", broad, render_chart, shared_crds)
    assert any("keeps the old containers" in p for p in problems), problems


def test_pinning_only_the_version_is_caught(
    app: Obj, render_chart: Render, shared_crds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The controller's old deploy: the version pinned into whatever serve config is live.
    def pin_only(target: Target, colour: str, version: str, live: str) -> str:
        return m.pin_version(live, str(target.spec["serving"]["appName"]), version)

    monkeypatch.setattr(m, "serve_config", pin_only)
    values = REPO_ROOT / "helm" / "driftline" / "values.yaml"
    problems = upgrade_problems(values, "RayService", ignored(app), render_chart, shared_crds)
    assert any("serve app" in p for p in problems), problems
