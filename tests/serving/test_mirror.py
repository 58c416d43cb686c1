"""serving.mirror, the shadow mirror over HTTP on both runtimes: the controller's stored route
decides which colour mirrors to which, only the mirror's key marks a request as mirrored, and
the sender stores the shadow's answer under the live request's id. The ingress's side: a shadow
bound in its application is asked directly, any other over HTTP, and a request another colour
mirrored to it is answered but never stored or mirrored again."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.features import default_spec
from driftline.raycluster import free_port
from driftline.store import PredictionRecord, Store
from driftline.store.keys import KeyStore
from operators.states import Phase, RolloutKind, RolloutState
from serving.kserve_contract import PredictionLog
from serving.metrics import _LOCAL, metrics
from serving.mirror import ShadowMirror, is_mirror, shadow_answer, shadow_colour
from serving.routing import Router, Routing, ShadowSink
from serving.writer import PredictionWriter
from tests.serving.ingress_harness import colour_router, serving_port
from tests.serving.stored_route import MODEL, in_rollout, set_route

N_FEATURES = len(default_spec().names)
Lifespan = contextlib.AbstractAsyncContextManager[None]
# Shortened for the tests (5 s by default): how often a server re-reads the controller's route.
POLL_S = 0.2


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    yield store
    store.close()


# --- which colour mirrors to which, and what marks a mirror -------------------------------------


def test_the_controllers_stored_route_decides_who_mirrors_to_whom(sqlite_store: Store) -> None:
    def route() -> tuple[str | None, str | None]:
        """Where blue mirrors to, and where green does."""
        blue, green = (shadow_colour(sqlite_store, MODEL, c) for c in ("blue", "green"))
        return blue, green

    assert route() == (None, None)  # no controller yet
    set_route(sqlite_store, in_rollout(Phase.DEPLOYING, "blue"))
    assert route() == ("green", None)  # the candidate is judged in shadow
    set_route(sqlite_store, in_rollout(Phase.VERIFYING, "green"))
    assert route() == (None, "blue")  # after the switch the old champion scores in shadow
    set_route(sqlite_store, in_rollout(Phase.DEPLOYING, "blue", RolloutKind.ROLLBACK))
    assert route() == (None, None)  # a rollback shadows nothing
    set_route(sqlite_store, RolloutState(MODEL, phase=Phase.STABLE, active_colour="green"))
    assert route() == (None, None)


def test_only_the_mirror_key_marks_a_request_as_mirrored() -> None:
    settings = Settings(serving={"shadow_key": "dl_mirror"})
    assert is_mirror({"authorization": "Bearer dl_mirror"}, settings)
    assert is_mirror({"authorization": "bearer  dl_mirror "}, settings)
    for headers in ({"authorization": "Bearer dl_other"}, {"authorization": "dl_mirror"}, {}):
        assert not is_mirror(headers, settings)
    assert not is_mirror(None, settings)
    assert not is_mirror({"authorization": "Bearer dl_mirror"}, Settings())
    # An empty Secret value is no key: "Bearer " must not pass for it.
    assert not is_mirror({"authorization": "Bearer "}, Settings(serving={"shadow_key": ""}))


def _answer(version: str | None, rows: int, members: tuple[str, ...] = ("rf",)) -> dict[str, Any]:
    names = ["prediction", *(f"member_{m}" for m in members)]
    outputs = [
        {"name": n, "shape": [rows], "datatype": "FP64", "data": [0.5] * rows} for n in names
    ]
    return {"model_name": MODEL, "model_version": version, "id": "x", "outputs": outputs}


def test_the_shadows_answer_must_be_an_ensemble_answer_for_every_row() -> None:
    version, ensemble, members = shadow_answer(_answer("2", 3), 3)
    assert (version, ensemble.tolist(), list(members)) == ("2", [0.5] * 3, ["rf"])
    for document, rows in (
        (_answer("2", 2), 3),  # too few rows
        (_answer(None, 3), 3),  # no version to store
        ({"outputs": [{"name": "member_rf", "shape": [1], "datatype": "FP64", "data": [1]}]}, 1),
        ({"error": "no"}, 1),
        ([], 1),
    ):
        with pytest.raises(ValueError, match="the shadow's answer"):
            shadow_answer(document, rows)


# --- the mirror itself, with the predictor's prediction log -------------------------------------


def test_without_a_url_and_a_key_nothing_mirrors(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def mirror(**serving: Any) -> ShadowMirror | None:
        settings = Settings(serving=serving)
        log = PredictionLog(
            sqlite_store, settings, model_name=MODEL, version="1", metrics=metrics()
        )
        return ShadowMirror.from_settings(log, settings, metrics())

    assert mirror() is None
    assert mirror(shadow_key="dl_mirror") is None
    assert mirror(shadow_url="http://driftline-preview.driftline.svc:80") is None
    assert mirror(shadow_url="http://driftline-preview.driftline.svc:80", shadow_key="") is None
    assert "DRIFTLINE_SERVE_SHADOW_KEY is not" in caplog.text
    found = mirror(shadow_url="http://preview:80/", shadow_key="dl_mirror")
    assert found is not None
    assert found.url == f"http://preview:80/v2/models/{MODEL}/infer"


def _errors(kind: str) -> float:
    labels = {"endpoint": "shadow", "kind": kind}
    return _LOCAL.get_sample_value("driftline_request_errors_total", labels) or 0.0


async def _until(what: str, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_dead_shadow_is_counted_and_stores_nothing(sqlite_store: Store) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(
        serving={
            "shadow_url": dead,
            "shadow_key": "dl_mirror",
            "shadow_poll_s": POLL_S,
            "write_interval_s": 0.05,
        }
    )
    log = PredictionLog(sqlite_store, settings, model_name=MODEL, version="1", metrics=metrics())
    mirror = ShadowMirror(log, settings, metrics())
    set_route(sqlite_store, in_rollout(Phase.DEPLOYING, "blue"))
    before = _errors("unavailable")
    await mirror.start()
    try:
        await _until("the controller's route", lambda: mirror.shadow == "green")
        mirror.mirror("dead-1", "v2_infer", np.zeros((2, N_FEATURES)))
        await _until("the failed mirror", lambda: _errors("unavailable") == before + 1)
    finally:
        await mirror.close()
        await log.close()
    assert sqlite_store.predictions.count_predictions(["dead-1"]) == 0


async def test_with_no_shadow_in_the_route_nothing_is_sent(sqlite_store: Store) -> None:
    settings = Settings(
        serving={"shadow_url": "http://127.0.0.1:9", "shadow_key": "k", "shadow_poll_s": POLL_S}
    )
    log = PredictionLog(sqlite_store, settings, model_name=MODEL, version="1", metrics=metrics())
    mirror = ShadowMirror(log, settings, metrics())
    set_route(sqlite_store, RolloutState(MODEL, phase=Phase.STABLE, active_colour="blue"))
    await mirror.start()
    try:
        await asyncio.sleep(POLL_S * 3)
        mirror.mirror("none-1", "v2_infer", np.zeros((1, N_FEATURES)))
        assert not mirror._tasks  # nothing in flight: the route has no shadow
    finally:
        await mirror.close()
        await log.close()


# --- the ingress's side: a shadow bound here, or one over HTTP ----------------------------------


class _Remote:
    """Stands for the HTTP mirror: what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def mirror(self, request_id: str, _endpoint: str, _rows: Any) -> None:
        self.sent.append(request_id)


class _Discard:
    def record_predictions(self, records: list[Any]) -> int:
        return len(records)


async def test_the_ingress_mirrors_over_http_only_without_a_shadow_bound_here() -> None:
    settings = Settings()
    writer = PredictionWriter(_Discard(), batch_size=10, interval_s=1.0, max_buffer=100)
    router = colour_router(settings, writer)
    rows = np.zeros((1, N_FEATURES))
    router.mirror("alone", "v2_infer", rows)  # no shadow anywhere: nothing to do
    remote = _Remote()
    router.remote = remote  # type: ignore[assignment]
    router.mirror("remote-1", "v2_infer", rows)
    assert remote.sent == ["remote-1"]
    # A shadow bound in this application is scored here, never also sent over HTTP.
    live = router.routing.active
    assert live is not None
    shadow = colour_router(settings, writer, colour="green", version="2").routing.active
    router.routing = Routing(active=live, shadow=shadow, by_version={"1": live})
    router.mirror("local-1", "v2_infer", rows)
    assert remote.sent == ["remote-1"]
    await asyncio.sleep(0)  # let the local shadow's scoring run
    # A request mirrored here stores and mirrors nothing, with the same routing and scorer.
    quiet = router.unlogged()
    assert quiet.routing is router.routing
    assert quiet._scorer is router._scorer
    quiet.record(request_id="q")  # type: ignore[call-arg]
    quiet.mirror("q", "v2_infer", rows)
    assert remote.sent == ["remote-1"]
    assert isinstance(quiet, Router)


@dataclass
class Keys:
    """A store with a client's key and the mirror's, issued as `driftline keys create` does."""

    settings: Settings
    store: Store
    keys: KeyStore
    client: str
    mirror: str


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Keys]:
    settings = Settings(
        home=tmp_path / "home", serving={"write_interval_s": 0.05, "shadow_poll_s": POLL_S}
    )
    store = Store.from_settings(settings)
    store.upgrade()
    keys = KeyStore.from_settings(settings)
    client = issue_key(keys, "tests-client", frozenset({Scope.PREDICT})).key
    mirror = issue_key(keys, "shadow-mirror", frozenset({Scope.PREDICT})).key
    yield Keys(settings, store, keys, client, mirror)
    keys.close()
    store.close()


def _writer(store: Store, settings: Settings) -> PredictionWriter:
    serving = settings.serving
    return PredictionWriter(
        store.predictions,
        batch_size=serving.write_batch,
        interval_s=serving.write_interval_s,
        max_buffer=serving.write_buffer,
    )


@contextlib.contextmanager
def _served(app: Any) -> Iterator[str]:
    """`app` on a loopback port in a thread of its own (its own event loop), and its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped before it started"
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _writing(writer: PredictionWriter) -> Callable[[Any], Lifespan]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await writer.close(timeout_s=5)

    return lifespan


def _v2(rows: int) -> dict[str, Any]:
    data = np.random.default_rng(rows).normal(size=rows * N_FEATURES).tolist()
    shape = [rows, N_FEATURES]
    return {"inputs": [{"name": "features", "shape": shape, "datatype": "FP64", "data": data}]}


async def _stored(store: Store, ids: set[str], count: int) -> list[PredictionRecord]:
    """The rows of `ids` (every slot), once `count` are stored (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        found = [
            r
            for r in await asyncio.to_thread(store.predictions.predictions, slot=None)
            if r.request_id in ids
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_an_ingress_mirrors_over_http_to_a_colour_bound_elsewhere(keyed: Keys) -> None:
    """Blue's ingress port, with the HTTP mirror as `serving.ingress.Ingress` wires it, sends to
    green's whole port (guard included) over loopback; the two colours share one store."""
    settings, store = keyed.settings, keyed.store
    green_settings = settings.updated({"serving": {"colour": "green", "shadow_key": keyed.mirror}})
    green_writer = _writer(store, green_settings)
    # Green's ensemble weighs its one member twice: its answers are its own.
    green = colour_router(green_settings, green_writer, colour="green", version="2", weight=2.0)
    green_port = serving_port(
        green_settings, store, keyed.keys, router=green, lifespan=_writing(green_writer)
    )
    with _served(green_port) as green_url:
        blue_settings = settings.updated(
            {
                "serving": {
                    "colour": "blue",
                    "shadow_url": green_url,
                    "shadow_key": keyed.mirror,
                }
            }
        )
        blue_writer = _writer(store, blue_settings)
        blue = colour_router(blue_settings, blue_writer)
        mirror = ShadowMirror(ShadowSink(blue, store), blue_settings, metrics())
        blue.remote = mirror
        blue_port = serving_port(blue_settings, store, keyed.keys, router=blue)
        set_route(store, in_rollout(Phase.DEPLOYING, "blue", model="m"))
        blue_writer.start()
        await mirror.start()
        transport = httpx.ASGITransport(app=blue_port)
        try:
            await _until("the controller's route", lambda: mirror.shadow == "green")
            async with httpx.AsyncClient(transport=transport, base_url="http://blue") as client:
                for request_id, rows in (("ri-1", 1), ("ri-2", 3)):
                    response = await client.post(
                        "/v2/models/m/infer",
                        json=_v2(rows),
                        headers={
                            "Authorization": f"Bearer {keyed.client}",
                            "X-Request-ID": request_id,
                        },
                    )
                    assert response.status_code == 200, response.text
                    assert response.json()["model_version"] == "1"
            # A client of green itself is green's live traffic, stored by green: a mirror's
            # name without the mirror's key marks nothing.
            direct = await asyncio.to_thread(
                httpx.post,
                f"{green_url}/v2/models/m/infer",
                json=_v2(2),
                headers={
                    "Authorization": f"Bearer {keyed.client}",
                    "X-Request-ID": "shadow-direct",
                },
            )
            assert direct.status_code == 200, direct.text
            ids = {"ri-1", "ri-2", "shadow-ri-1", "shadow-ri-2", "shadow-direct"}
            stored = await _stored(store, ids, 5)
        finally:
            await mirror.close()
            await blue_writer.close(timeout_s=5)
    slots = {(r.request_id, r.slot): r for r in stored}
    # Each answer of blue once live and once in shadow, under blue's request id; green stored
    # nothing of what was mirrored to it (no `shadow-<id>` row, no live green row for it).
    assert sorted(slots) == [
        ("ri-1", "live"),
        ("ri-1", "shadow"),
        ("ri-2", "live"),
        ("ri-2", "shadow"),
        ("shadow-direct", "live"),
    ]
    for request_id in ("ri-1", "ri-2"):
        live, shadow = slots[(request_id, "live")], slots[(request_id, "shadow")]
        assert (live.model_version, live.colour) == ("1", "blue")
        assert (shadow.model_version, shadow.colour) == ("2", "green")
        assert shadow.endpoint == live.endpoint == "v2_infer"
        assert live.features is not None
        assert shadow.features is not None
        np.testing.assert_array_equal(shadow.features, live.features)
        np.testing.assert_allclose(shadow.prediction, 2 * np.asarray(live.prediction))
    direct_row = slots[("shadow-direct", "live")]
    assert (direct_row.colour, direct_row.model_version) == ("green", "2")
