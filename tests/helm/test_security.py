"""helm/driftline security: Ray token auth, TLS ingress, per-component egress and identities, the
rate limiter's Redis and API-auth settings (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

Obj = dict[str, Any]
Render = Callable[..., list[Obj]]
EGRESS = ("database", "mlflow", "artifactStore", "apiServer", "redis", "gitRemote")
# What each component may reach besides DNS (values.yaml `networkPolicy.egress`).
NEEDS = {
    "serving": {"database", "mlflow", "artifactStore", "redis"},
    "drift-monitor": {"database", "mlflow", "artifactStore"},
    "controller": {"database", "mlflow", "artifactStore", "apiServer", "gitRemote"},
    "training": {"database", "mlflow", "artifactStore"},
}


def find(objs: list[Obj], kind: str, suffix: str = "") -> list[Obj]:
    """Objects of a kind whose name ends with `suffix`."""
    return [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]


def ray_clusters(objs: list[Obj]) -> dict[str, Obj]:
    """Every Ray cluster spec the chart renders, by where it is."""
    found = {}
    for obj in objs:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "RayService":
            found[name] = obj["spec"]["rayClusterConfig"]
        elif obj["kind"] == "RayJob":
            found[name] = obj["spec"]["rayClusterSpec"]
        elif obj["kind"] == "ModelDeployment":
            found[name] = obj["spec"]["retraining"]["rayClusterSpec"]
    return found


def all_egress_set() -> tuple[str, ...]:
    """`--set-json` arguments giving each egress target its own CIDR (10.0.<i>.0/24)."""
    args: list[str] = []
    for i, name in enumerate(EGRESS):
        peers = [{"ipBlock": {"cidr": f"10.0.{i}.0/24"}}]
        args += ["--set-json", f"networkPolicy.egress.{name}.to={json.dumps(peers)}"]
    return tuple(args)


def test_every_ray_cluster_requires_the_token(render_chart: Render) -> None:
    objs = render_chart("--set", "training.enabled=true")
    clusters = ray_clusters(objs)
    assert len(clusters) == 4  # two colours, the training RayJob, the controller's retraining
    assert all(c["authOptions"] == {"mode": "token"} for c in clusters.values())
    own = ray_clusters(
        render_chart("--set", "training.enabled=true,rayAuth.existingSecret=ray-tok")
    )
    assert all(c["authOptions"] == {"mode": "token", "secretName": "ray-tok"} for c in own.values())
    off = ray_clusters(render_chart("--set", "rayAuth.enabled=false"))
    assert all("authOptions" not in c for c in off.values())


def test_no_policy_opens_egress_to_everywhere(every_mode: dict[str, list[Obj]]) -> None:
    for mode, objs in every_mode.items():
        for policy in find(objs, "NetworkPolicy"):
            for rule in policy["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    cidr = peer.get("ipBlock", {}).get("cidr")
                    assert cidr not in {"0.0.0.0/0", "::/0"}, f"{mode}: {policy['metadata']}"


def reached(objs: list[Obj]) -> dict[str, set[str]]:
    """The egress targets (of `all_egress_set`) each component's policies allow."""
    cidr_of = {f"10.0.{i}.0/24": name for i, name in enumerate(EGRESS)}
    found: dict[str, set[str]] = {}
    for policy in find(objs, "NetworkPolicy"):
        component = (
            policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        )
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                cidr = peer.get("ipBlock", {}).get("cidr")
                if cidr in cidr_of and component:
                    found.setdefault(component, set()).add(cidr_of[cidr])
    return found


def test_each_component_reaches_only_what_it_needs(render_chart: Render) -> None:
    objs = render_chart(*all_egress_set(), "--set", "gitops.enabled=true,gitops.repoUrl=git@x:y")
    assert reached(objs) == NEEDS
    # Without GitOps the controller pushes nowhere.
    plain = reached(render_chart(*all_egress_set()))
    assert plain["controller"] == NEEDS["controller"] - {"gitRemote"}
    # KubeRay's autoscaler sidecars reach the API server, nothing else outside the release.
    (kube_api,) = find(objs, "NetworkPolicy", "-kube-api")
    assert kube_api["spec"]["podSelector"]["matchLabels"]["driftline.io/kube-api"] == "true"
    assert [p["ipBlock"]["cidr"] for p in kube_api["spec"]["egress"][0]["to"]] == [
        f"10.0.{EGRESS.index('apiServer')}.0/24"
    ]


def test_one_service_account_per_component(render_chart: Render) -> None:
    objs = render_chart("--set", "training.enabled=true,serving.ray.enableInTreeAutoscaling=false")
    accounts = {sa["metadata"]["name"] for sa in find(objs, "ServiceAccount")}
    expected = {
        "controller": "driftline-controller",
        "drift-monitor": "driftline-drift-monitor",
        "serving": "driftline-serving",
        "training": "driftline-training",
    }
    assert accounts == set(expected.values())
    used: dict[str, set[str]] = {}

    def note(labels: dict[str, str], spec: Obj) -> None:
        used.setdefault(labels["app.kubernetes.io/component"], set()).add(
            spec["serviceAccountName"]
        )

    for obj in objs:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            note(obj["spec"]["template"]["metadata"]["labels"], obj["spec"]["template"]["spec"])
        for cluster in ray_clusters([obj]).values():
            for template in [
                cluster["headGroupSpec"]["template"],
                *(g["template"] for g in cluster["workerGroupSpecs"]),
            ]:
                note(template["metadata"]["labels"], template["spec"])
    assert used == {component: {name} for component, name in expected.items()}
    # Only the controller's account is bound to a Role.
    subjects = [s["name"] for b in find(objs, "RoleBinding") for s in b["subjects"]]
    assert subjects == ["driftline-controller"]


def test_rate_limiter_and_auth_settings_reach_serving_only(render_chart: Render) -> None:
    args = (
        "--set",
        "rateLimit.redis.existingSecret=driftline-redis,auth.settings.mode=api-key,"
        "auth.settings.jwtIssuer=https://issuer.example,"
        "auth.secrets.jwtSecret.secretName=driftline-auth,auth.secrets.jwtSecret.key=jwt",
    )
    for runtime in ("RayService", "InferenceService"):
        objs = render_chart(*args, "--set", f"serving.runtime={runtime}")
        for obj in objs:
            for container in _containers(obj):
                env = {e["name"]: e for e in container.get("env", [])}
                serving = obj["kind"] == runtime
                assert ("DRIFTLINE_RATE_LIMIT_REDIS_URL" in env) == serving, obj["kind"]
                if not serving:
                    assert not any(n.startswith("DRIFTLINE_AUTH_") for n in env)
                    continue
                assert env["DRIFTLINE_RATE_LIMIT_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
                    "name": "driftline-redis",
                    "key": "url",
                }
                assert env["DRIFTLINE_AUTH_MODE"]["value"] == "api-key"
                assert env["DRIFTLINE_AUTH_JWT_ISSUER"]["value"] == "https://issuer.example"
                assert env["DRIFTLINE_AUTH_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {
                    "name": "driftline-auth",
                    "key": "jwt",
                }
    defaults = render_chart()
    for obj in defaults:
        for container in _containers(obj):
            names = {e["name"] for e in container.get("env", [])}
            assert not any(n.startswith(("DRIFTLINE_AUTH_", "DRIFTLINE_RATE_LIMIT")) for n in names)


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] in {"Deployment", "StatefulSet"}:
        return list(spec["template"]["spec"]["containers"])
    if obj["kind"] == "InferenceService":
        return list(spec["predictor"]["containers"])
    found: list[Obj] = []
    for cluster in ray_clusters([obj]).values():
        found += cluster["headGroupSpec"]["template"]["spec"]["containers"]
        for group in cluster["workerGroupSpecs"]:
            found += group["template"]["spec"]["containers"]
    return found


def test_tls_ingress_is_off_by_default_and_reaches_the_active_service(
    render_chart: Render,
) -> None:
    assert not find(render_chart(), "Ingress")
    objs = render_chart(
        "--set",
        "ingress.enabled=true,ingress.host=api.example.com,ingress.className=nginx,"
        "ingress.tls.enabled=true,ingress.tls.clusterIssuer=letsencrypt",
    )
    (ingress,) = find(objs, "Ingress")
    kubernetes_validate.validate(ingress, "1.30.0", strict=True)
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": ["api.example.com"], "secretName": "driftline-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    (active,) = find(objs, "Service", "-active")
    assert backend["name"] == active["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in active["spec"]["ports"]}
    with pytest.raises(RuntimeError, match=r"ingress\.host is required"):
        render_chart("--set", "ingress.enabled=true")
