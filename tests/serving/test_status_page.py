"""The status page in headless Chromium (Debian's), driven by Playwright, over real API data.

The serving port as `serving.ingress.assemble` builds it for an ingress replica (the guard with
authentication on, /ui, the KServe and models routes, the drift and controller API, the stream),
without Ray: a store holding a real drift report, controller state and audit events, and a
prediction stream of real bars scored by a real (small) ensemble. The page is opened at the link
`driftline up` prints, with a key issued as users issue one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.routing import Route

from benchmarks import synthetic
from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.cli.up import status_page_url
from driftline.config import Settings
from driftline.controller_api import controller_router
from driftline.data import load_bars
from driftline.drift.api import drift_app
from driftline.drift.compare import compare_rows
from driftline.drift.detectors import FeatureDrift
from driftline.drift.outcomes import OutcomeRecorder
from driftline.features import default_spec
from driftline.features.compute import compute_matrix, compute_vector
from driftline.raycluster import free_port
from driftline.registry.predictor import EnsemblePredictor
from driftline.store import Store
from driftline.store.drift_records import StoredReport
from driftline.store.keys import KeyStore
from driftline.store.records import AuditEvent
from operators.codec import encode_state
from operators.states import GateResult, Phase, Rollout, RolloutKind, RolloutState
from serving import endpoints
from serving.ingress import assemble
from serving.metrics import metrics
from serving.model import summary
from serving.routing import ColourRoute, Router, Routing
from serving.stream import BarReplay, StreamHub
from serving.writer import PredictionWriter
from tests.conftest import IN_CI

pytestmark = pytest.mark.slow  # a browser, a small ensemble, a drift comparison

CHROMIUM = Path("/usr/bin/chromium")
MODEL = "market-ensemble"
VERSION = "3"


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: `make tools` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (`make tools` installs it)")
    return CHROMIUM


def _report(store: Store, settings: Settings) -> None:
    # A real comparison: the 2008 crash against 2004-2006, on the model's own features.
    bars = load_bars(settings.data.path).loc["2003-01-01":"2009-06-30"]  # type: ignore[misc]
    spec = default_spec()
    rows = compute_matrix(bars, spec)
    reference = rows.loc["2004-01-01":"2006-12-31"]  # type: ignore[misc]
    current = rows.loc["2008-09-01":"2008-12-31"]  # type: ignore[misc]
    found = compare_rows(
        reference,
        current,
        detector=FeatureDrift(),
        model_name=MODEL,
        model_version=VERSION,
        null_windows=50,
    )
    document = found.to_dict()
    stored = StoredReport(
        found.report_id,
        found.created_at,
        MODEL,
        VERSION,
        found.severity.label,
        int(found.severity),
        found.recommendation.value,
        found.n_rows,
        found.window_start,
        found.window_end,
        document,
    )
    store.drift.record_report(stored, [])


def _controller(store: Store) -> None:
    now = datetime.now(UTC)
    rollout = Rollout(
        rollout_id="r-1",
        kind=RolloutKind.RETRAIN,
        trigger="drift high",
        started_at=now - timedelta(minutes=5),
        champion_version=VERSION,
        champion_colour="blue",
        candidate_colour="green",
        candidate_version="4",
        gates=(
            GateResult("offline_metrics", True, "rmse 0.0121 <= champion 0.0124"),
            GateResult("shadow", False, "shadow pairs 12 of 50 needed", stage="shadow"),
        ),
    )
    state = RolloutState(
        model_name=MODEL,
        phase=Phase.VERIFYING,
        active_version=VERSION,
        passed_versions=(VERSION,),
        rollout=rollout,
        reason="candidate 4 in shadow on green",
    )
    record = store.controller.acquire_controller_lease(MODEL, "test", ttl_s=60, now=now)
    assert record is not None
    store.controller.save_controller_state(
        MODEL,
        encode_state(state),
        phase="verifying",
        revision=record.revision,
        holder="test",
        now=now,
    )
    store.controller.record_audit(
        AuditEvent(
            MODEL, "drift", "drift high for 2 rounds", state_from="stable", state_to="drifting"
        ),
        AuditEvent(
            MODEL,
            "deploy",
            "candidate 4 deployed on green",
            rollout_id="r-1",
            state_from="deploying",
            state_to="verifying",
        ),
    )


def _stream(settings: Settings, bundle: Any) -> StreamHub:
    predictor = EnsemblePredictor(bundle)
    replay = BarReplay(
        load_bars(settings.data.path), window=bundle.spec.window, start=date(2008, 9, 1)
    )

    async def produce() -> dict[str, Any]:
        window = replay.next_window()
        features = compute_vector(window, bundle.spec)[None, :]
        ensemble, members = predictor.predict_rows(features)
        # The ingress's `_stream_message` shape.
        return {
            "timestamp": window.index[-1].isoformat(),
            "symbol": settings.data.symbol,
            "prediction": float(ensemble[0]),
            "close": float(window["close"].iloc[-1]),
            "members": {k: float(v[0]) for k, v in members.items()},
            "model_version": VERSION,
            "colour": "blue",
            "latency_ms": 1.0,
            "request_id": uuid.uuid4().hex,
        }

    return StreamHub(produce, interval_s=0.05, queue_size=64)


def _port(store: Store, settings: Settings, bundle: Any, hub: StreamHub) -> Any:
    route = ColourRoute("blue", None, summary(bundle, settings))  # type: ignore[arg-type]
    writer = PredictionWriter(store.predictions, batch_size=10, interval_s=1.0, max_buffer=100)
    router = Router(MODEL, settings, metrics(), writer)
    router.routing = Routing(route, None, {VERSION: route})
    api = drift_app(store, OutcomeRecorder(store, settings), model_name=MODEL)
    api.include_router(controller_router(store, model_name=MODEL))
    handlers = [
        Route(path, endpoints.wrap(router, name, fn), methods=[method])
        for path, name, fn, method, _scope in endpoints.routes()
    ]
    return assemble(
        settings, handlers=handlers, stream=hub.serve, api=api, keys=KeyStore(store.url)
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The port's base URL and a read-and-stream key for the page."""
    home = tmp_path_factory.mktemp("status-home")
    settings = Settings(home=home, registry={"model_name": MODEL})
    assert settings.auth.enabled
    store = Store(f"sqlite:///{home / 'status.db'}")
    store.upgrade()
    bundle = synthetic.make_bundle(
        settings, VERSION, trees=(10, 10), depths=(3, 3), rows=300, seed=3
    )
    _report(store, settings)
    _controller(store)
    port = free_port()
    keys = KeyStore(store.url)
    key = issue_key(keys, "status-page", frozenset({Scope.READ, Scope.STREAM})).key
    config = uvicorn.Config(
        _port(store, settings, bundle, _stream(settings, bundle)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", key
    server.should_exit = True
    thread.join(10)
    keys.close()
    store.close()


def test_the_page_shows_version_verdict_decisions_and_the_live_chart(
    chromium: Path, served: tuple[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        base_url, key = served
        page.goto(status_page_url(base_url, key))
        expect(page.locator("#active")).to_have_text(f"version {VERSION} on blue")
        expect(page.locator("#verdict")).to_have_text("critical")
        expect(page.locator("#features li").first).not_to_have_text("none")
        expect(page.locator("#reasons li").first).to_contain_text("feature groups drifted")
        expect(page.locator("#phase")).to_contain_text("verifying")
        expect(page.locator("#gates li")).to_have_count(2)
        expect(page.locator("#audit li")).to_have_count(2)
        expect(page.locator("#connection")).to_contain_text("updated")
        # The key left the address bar and stayed in this tab's session storage.
        assert "key=" not in page.url
        assert page.evaluate("sessionStorage.getItem('driftline.key')") == key
        # The live chart draws predictions, and realised returns from consecutive closes.
        expect(page.locator("#stream-info")).to_contain_text("2008-")
        page.wait_for_function(
            "document.querySelector('#chart polyline.realised')"
            "?.getAttribute('points').split(' ').length > 5"
        )
        shot = tmp_path / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)
        # The full report opens from the page, fetched with the same key.
        with page.expect_popup() as popup:
            page.click("#report-link")
        report = popup.value
        report.wait_for_load_state()
        expect(report.locator("h1")).to_have_text(f"Drift report: {MODEL} v{VERSION}")
        assert report.locator("svg").count() >= 45
        browser.close()
    assert errors == []
    print(f"status page screenshot: {shot}")


def test_without_a_key_the_page_says_how_to_get_one(
    chromium: Path, served: tuple[str, str]
) -> None:
    base_url, _key = served
    from playwright.sync_api import expect, sync_playwright  # noqa: PLC0415

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{base_url}/ui/")
        expect(page.locator("#auth")).to_be_visible()
        expect(page.locator("#connection")).to_have_text("no key")
        browser.close()
