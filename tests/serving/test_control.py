"""Local blue/green through Serve's declarative config: the edits, their order, and refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from driftline.config import Settings
from driftline.contracts import INGRESS_APP, RoutingConfig
from serving.cli import printed_url
from serving.control import RolloutError, ServingControl, proxy_port, ray_env, routing_in
from serving.serve_api import ServeApiError


class FakeServe:
    """Serve's REST API as the dashboard answers it: every application runs once it is put."""

    def __init__(self) -> None:
        self.applications: dict[str, dict[str, Any]] = {}
        self.puts: list[dict[str, Any]] = []

    def get_serve_details(self) -> dict[str, Any]:
        return {
            "proxy_location": "HeadOnly",
            "http_options": {"host": "127.0.0.1", "port": 8000},
            "applications": copy.deepcopy(self.applications),
        }

    def deploy_applications(self, config: dict[str, Any]) -> None:
        self.puts.append(copy.deepcopy(config))
        self.applications = {
            app["name"]: {"status": "RUNNING", "message": "", "deployed_app_config": app}
            for app in copy.deepcopy(config["applications"])
        }

    def delete_applications(self) -> None:
        self.applications = {}


@pytest.fixture
def serve() -> FakeServe:
    return FakeServe()


@pytest.fixture
def control(serve: FakeServe) -> ServingControl:
    settings = Settings(rollout={"drain_seconds": 0})  # type: ignore[call-arg]
    return ServingControl(
        settings,
        "http://dashboard",
        http_port=8000,
        loader="tests.loader:load",
        timeout_s=5,
        client=serve,  # type: ignore[arg-type]
    )


def _routing(serve: FakeServe) -> RoutingConfig:
    return routing_in(serve.get_serve_details()["applications"])


def test_a_rollout_deploys_beside_switches_then_retires(
    control: ServingControl, serve: FakeServe
) -> None:
    control.deploy("1")
    serve.puts.clear()
    state = control.rollout("2")
    assert (state.active, state.colours, state.shadow) == ("green", {"green": "2"}, None)
    steps = [sorted(a["name"] for a in put["applications"]) for put in serve.puts]
    # The new colour runs before the ingress knows it; the old one goes only after the switch.
    assert steps == [
        ["blue", INGRESS_APP, "green"],
        ["blue", INGRESS_APP, "green"],
        [INGRESS_APP, "green"],
    ]
    assert _routing(serve) == RoutingConfig({"green": "2"}, "green", None)


def test_a_first_deploy_starts_the_ingress_alone_so_it_binds_the_users_port(
    control: ServingControl, serve: FakeServe
) -> None:
    control.deploy("1")
    steps = [
        (sorted(a["name"] for a in put["applications"]), routing_in(_apps(put)).active)
        for put in serve.puts
    ]
    # Serve gives every application's ingress replica a port, lowest free first: the Driftline
    # ingress starts before any colour can take the one users are given.
    assert steps == [
        ([INGRESS_APP], None),
        (["blue", INGRESS_APP], None),
        (["blue", INGRESS_APP], "blue"),
    ]
    serve.puts.clear()
    control.deploy("2")
    assert [sorted(a["name"] for a in put["applications"]) for put in serve.puts] == [
        ["blue", INGRESS_APP]
    ]


def _apps(config: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: {"deployed_app_config": a} for a in config["applications"]}


def test_a_new_colour_keeps_the_deployed_colours_loader_and_environment(
    control: ServingControl, serve: FakeServe
) -> None:
    control.deploy("1")
    control.deploy_colour("green", "2")
    green = serve.applications["green"]["deployed_app_config"]
    blue = serve.applications["blue"]["deployed_app_config"]
    assert green["args"] == {**blue["args"], "version": "2", "colour": "green"}
    assert green["runtime_env"] == blue["runtime_env"]
    assert green["args"]["loader"] == "tests.loader:load"


def test_routing_to_a_colour_not_deployed_is_refused_and_changes_nothing(
    control: ServingControl, serve: FakeServe
) -> None:
    control.deploy("1")
    before = len(serve.puts)
    with pytest.raises(RolloutError, match="green: it is not deployed"):
        control.route("green")
    assert len(serve.puts) == before
    assert _routing(serve).active == "blue"


def test_a_shadow_is_mirrored_then_stopped(control: ServingControl, serve: FakeServe) -> None:
    control.deploy("1")
    control.set_shadow("2")
    assert _routing(serve) == RoutingConfig({"blue": "1", "green": "2"}, "blue", "green")
    control.set_shadow(None)
    assert _routing(serve) == RoutingConfig({"blue": "1"}, "blue", None)
    assert "green" not in serve.applications


def test_the_ingress_stays_one_replica_through_a_rollout(
    control: ServingControl, serve: FakeServe
) -> None:
    control.deploy("1")
    control.rollout("2")
    ingress = serve.applications[INGRESS_APP]["deployed_app_config"]["deployments"]
    scaling = [d["autoscaling_config"] for d in ingress]
    assert [(s["min_replicas"], s["max_replicas"]) for s in scaling] == [(1, 1)]


def test_the_front_url_is_the_replica_on_the_serving_port_else_the_proxy(
    control: ServingControl, serve: FakeServe
) -> None:
    proxy_only = serve.get_serve_details()
    serve.get_serve_details = lambda: proxy_only  # type: ignore[method-assign]
    assert control.front_url() == "http://127.0.0.1:8000"
    targets = [{"ip": "127.0.0.1", "port": p} for p in (8081, 8080)]
    group = {"app_name": INGRESS_APP, "protocol": "HTTP", "targets": targets}
    serve.get_serve_details = lambda: {**proxy_only, "target_groups": [group]}  # type: ignore[method-assign]
    assert control.front_url() == "http://127.0.0.1:8080"


def test_direct_ingress_ports_start_at_the_serving_port() -> None:
    env = ray_env(Settings(serving={"port": 9123}))
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "9123"
    assert env["RAY_SERVE_PORT_QUARANTINE_S"] == "0"
    assert proxy_port(Settings(serving={"port": 9123})) != 9123
    plain = Settings(serving={"port": 9123, "throughput_optimized": False})
    assert proxy_port(plain) == 9123


def test_printed_url_reads_the_first_serving_line() -> None:
    output = "deploying m version 1 ...\nserving m at http://127.0.0.1:8080\n  V2 infer: x\n"
    assert printed_url(output) == "http://127.0.0.1:8080"
    with pytest.raises(ValueError, match="no `serving"):
        printed_url("deploying m version 1 ...\n")


def test_a_dashboard_500_is_retried_and_a_400_is_not(
    control: ServingControl, serve: FakeServe
) -> None:
    answers = [ServeApiError("PUT /api/serve/applications/: 500 Server got itself in trouble", 500)]
    deploy = serve.deploy_applications

    def flaky(config: dict[str, Any]) -> None:
        if answers:
            raise answers.pop()
        deploy(config)

    serve.deploy_applications = flaky  # type: ignore[method-assign]
    control.deploy("1")
    assert _routing(serve).active == "blue"
    answers.append(ServeApiError("PUT /api/serve/applications/: 400 bad config", 400))
    with pytest.raises(ServeApiError, match="400 bad config"):
        control.deploy("1")
