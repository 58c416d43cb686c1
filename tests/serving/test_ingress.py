"""The ingress's reconfigure: which Serve application each colour's members are looked up in,
across rollouts, without Ray (Serve's handle lookups are recorded stand-ins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from ray import serve

import serving.ingress as ingress_module
from driftline.config import Settings
from serving.channel import MemberEndpoint
from serving.ingress import Ingress
from serving.metrics import metrics
from serving.routing import Router
from serving.writer import PredictionWriter
from tests.serving.ingress_harness import _Sink, _writer, colour_info

OWN_APP = "driftline"


class _Info:
    def __init__(self, version: str) -> None:
        self.version = version

    async def remote(self) -> dict[str, Any]:
        return colour_info(Settings(), {"rf": 1.0}, self.version)


class _Combiner:
    """A colour's handle: answers `info.remote()` for the version it serves."""

    def __init__(self, version: str) -> None:
        self.info = _Info(version)


@dataclass
class _Serve:
    """Serve's lookups, recorded: app handles by name, member handles by (name, app)."""

    apps: dict[str, _Combiner]
    app_lookups: list[str] = field(default_factory=list)
    member_lookups: list[tuple[str, str]] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    def get_app_handle(self, name: str) -> _Combiner:
        self.app_lookups.append(name)
        return self.apps[name]

    def get_deployment_handle(self, name: str, app_name: str) -> tuple[str, str]:
        self.member_lookups.append((name, app_name))
        return (name, app_name)


@pytest.fixture
def fake_serve(monkeypatch: pytest.MonkeyPatch) -> _Serve:
    recorded = _Serve({"blue": _Combiner("1"), "green": _Combiner("2")})
    monkeypatch.setattr(serve, "get_app_handle", recorded.get_app_handle)
    monkeypatch.setattr(serve, "get_deployment_handle", recorded.get_deployment_handle)
    monkeypatch.setattr(
        serve, "get_replica_context", lambda: type("Context", (), {"app_name": OWN_APP})
    )
    # The members' sockets and breakers are the channel's business, not the route's.
    monkeypatch.setattr(
        ingress_module,
        "member_endpoints",
        lambda handles, *_: {n: MemberEndpoint(n, h, list) for n, h in handles.items()},
    )
    monkeypatch.setattr(
        ingress_module, "in_background", lambda retiring: _retired(recorded, retiring)
    )
    return recorded


def _retired(recorded: _Serve, retiring: Any) -> None:
    """Records which colour's route a reconfigure retires, without its wait for requests."""
    route = retiring.cr_frame.f_locals["route"]
    recorded.retired.append(f"{route.colour}:{route.version}")
    retiring.close()


def _ingress(bound: dict[str, Any] | None = None) -> Any:
    """An Ingress replica's state as __init__ leaves it, minus Ray, the store and the stream."""
    settings = Settings()
    # The class as written: Serve's ASGI wrapper around it has a coroutine __del__.
    ingress = object.__new__(Ingress.func_or_class.__bases__[0])
    ingress.settings = settings
    ingress.model_name = "m"
    ingress.metrics = metrics()
    ingress._handles = dict(bound or {})
    ingress._info_labels = set()
    ingress.router = Router("m", settings, ingress.metrics, PredictionWriter(_Sink(), **_writer()))
    return ingress


def _member_apps(recorded: _Serve) -> set[str]:
    return {app for _name, app in recorded.member_lookups}


async def test_colours_served_as_apps_are_looked_up_in_their_own_app_on_every_rollout(
    fake_serve: _Serve,
) -> None:
    ingress = _ingress()
    rollouts = [
        {"colours": {"blue": "1"}, "active": "blue"},
        {"colours": {"blue": "1", "green": "2"}, "active": "blue", "shadow": "green"},
        {"colours": {"blue": "1", "green": "2"}, "active": "green"},
        {"colours": {"green": "2"}, "active": "green"},
        # Back to blue after a promotion: the rollout that used to fail reconfigure.
        {"colours": {"blue": "3", "green": "2"}, "active": "green", "shadow": "blue"},
    ]
    for config in rollouts:
        fake_serve.apps["blue"] = _Combiner(config["colours"].get("blue", "1"))
        await ingress.reconfigure(config)

    assert fake_serve.app_lookups == ["blue", "green", "blue"]
    assert fake_serve.member_lookups == [
        ("member_rf", "blue"),
        ("member_rf", "green"),
        ("member_rf", "blue"),
    ]
    assert fake_serve.retired == ["blue:1"]
    routing = ingress.router.routing
    assert (routing.active.colour, routing.shadow.colour) == ("green", "blue")
    assert sorted(routing.by_version) == ["2", "3"]


async def test_a_bound_colour_uses_the_ingress_app_and_is_never_looked_up_by_name(
    fake_serve: _Serve,
) -> None:
    ingress = _ingress(bound={"blue": _Combiner("1")})
    await ingress.reconfigure({"colours": {"blue": "1"}, "active": "blue"})
    await ingress.reconfigure({"colours": {"blue": "1", "green": "2"}, "active": "green"})

    assert fake_serve.app_lookups == ["green"]
    assert _member_apps(fake_serve) == {OWN_APP, "green"}
    assert ("member_rf", OWN_APP) in fake_serve.member_lookups
    assert ingress.router.routing.active.colour == "green"
