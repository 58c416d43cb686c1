"""The served graph end to end: KServe clients, bad input, metrics, stream, rollout, shutdown.

Tests run in file order against one session deployment: the last ones roll out and shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import numpy as np
import orjson
import pytest
import websockets
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from benchmarks import synthetic
from driftline.data import load_bars
from driftline.observability.catalog import CATALOG
from serving.follow import ChampionFollower

if TYPE_CHECKING:
    from tests.serving.conftest import Served

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]

MODEL = "market-ensemble"


@contextlib.asynccontextmanager
async def kserve_client(protocol: str) -> AsyncIterator[InferenceRESTClient]:
    """KServe's own REST client, closed afterwards."""
    client = InferenceRESTClient(RESTConfig(protocol=protocol, timeout=60))
    try:
        yield client
    finally:
        await client.close()


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 45))


def infer_body(data: np.ndarray, name: str = "features", datatype: str = "FP64") -> bytes:
    return orjson.dumps(
        {
            "id": "t",
            "inputs": [
                {
                    "name": name,
                    "shape": list(data.shape),
                    "datatype": datatype,
                    "data": data.tolist(),
                }
            ],
        }
    )


async def test_v2_infer_with_kserve_client_matches_native(served: Served) -> None:
    x = rows(8)
    request = InferRequest(MODEL, [InferInput("features", list(x.shape), "FP64")], request_id="r1")
    request.inputs[0].set_data_from_numpy(x, binary_data=False)
    async with kserve_client("v2") as client:
        assert await client.is_server_ready(served.base_url)
        assert await client.is_model_ready(served.base_url, MODEL)
        response = await client.infer(
            served.base_url, request, model_name=MODEL, headers=served.headers
        )
    assert response.id == "r1"
    prediction = response.get_output_by_name("prediction").as_numpy()
    expected = synthetic.native_predict(served.bundles["1"], x)
    np.testing.assert_allclose(prediction, expected, atol=1e-5)


async def test_v2_binary_and_versioned_path(served: Served) -> None:
    x = rows(3, seed=1)
    request = InferRequest(MODEL, [InferInput("features", list(x.shape), "FP64")])
    request.inputs[0].set_data_from_numpy(x, binary_data=True)
    async with kserve_client("v2") as client:
        response = await client.infer(
            f"{served.base_url}/v2/models/{MODEL}/versions/1/infer",
            request,
            is_graph_endpoint=True,
            headers=served.headers,
        )
    np.testing.assert_allclose(
        response["outputs"][0]["data"],
        synthetic.native_predict(served.bundles["1"], x),
        atol=1e-5,
    )


async def test_v1_predict_with_kserve_client(served: Served) -> None:
    x = rows(5, seed=2)
    async with kserve_client("v1") as client:
        assert await client.is_server_live(served.base_url)
        response = await client.infer(
            served.base_url, {"instances": x.tolist()}, model_name=MODEL, headers=served.headers
        )
    np.testing.assert_allclose(
        response["predictions"], synthetic.native_predict(served.bundles["1"], x), atol=1e-5
    )


def bar_inputs(n: int) -> list[dict[str, object]]:
    bars = load_bars().iloc[:n]
    return [
        {"name": c, "shape": [n], "datatype": "FP64", "data": bars[c].tolist()}
        for c in ("open", "high", "low", "close", "volume")
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("infer", infer_body(rows(1)[:, :40]), 400, "shape [1, 40], expected [n, 45]"),
        ("infer", infer_body(rows(1), datatype="BYTES"), 400, "is not numeric"),
        ("infer", infer_body(rows(1), name="x"), 400, "expected one input named 'features'"),
        (
            "infer",
            b'{"inputs": [{"name": "features", "shape": [1, 45], "datatype": "FP64", '
            b'"data": [[' + b", ".join([b"NaN"] * 45) + b"]]}]}",
            400,
            "non-finite value",
        ),
        ("infer", infer_body(rows(2049)), 400, "2049 rows exceed the limit of 2048"),
        (
            "infer",
            orjson.dumps({"inputs": bar_inputs(100)}),
            400,
            "100 bars given; the model's feature spec needs 260",
        ),
        ("infer", b'{"inputs": [', 400, "malformed JSON"),
        ("infer", b"x" * (2 * 1024 * 1024 + 1), 413, "exceeds the limit of 2097152 bytes"),
        ("unknown-model", infer_body(rows(1)), 404, "model 'nope' not found"),
        ("unknown-version", infer_body(rows(1)), 404, "no deployed version '99'"),
        ("v1", b'{"instances": [[1, 2]]}', 400, "shape [1, 2], expected [n, 45]"),
        ("v1", b'{"rows": []}', 400, '"instances" list'),
    ],
)
def test_bad_input_gets_4xx_with_message(
    served: Served, path: str, body: bytes, status: int, message: str
) -> None:
    url = {
        "infer": f"/v2/models/{MODEL}/infer",
        "unknown-model": "/v2/models/nope/infer",
        "unknown-version": f"/v2/models/{MODEL}/versions/99/infer",
        "v1": f"/v1/models/{MODEL}:predict",
    }[path]
    response = httpx.post(served.base_url + url, content=body, headers=served.headers, timeout=60)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]


def test_unknown_route_is_json_404(served: Served) -> None:
    response = httpx.get(f"{served.base_url}/nowhere", headers=served.headers, timeout=30)
    assert response.status_code == 404
    assert "error" in response.json()


def test_bars_forecast_and_models(served: Served) -> None:
    bars = load_bars().iloc[:300].reset_index()
    bars["date"] = bars["date"].dt.strftime("%Y-%m-%d")
    body = {"symbol": "SPX", "bars": bars.to_dict(orient="records")}
    response = httpx.post(
        f"{served.base_url}/api/forecast", json=body, headers=served.headers, timeout=60
    )
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["model_version"] == "1"
    assert set(document["members"]) == {"rf", "xgb"}
    assert np.isfinite(document["prediction"])
    short = {"bars": body["bars"][:10]}
    response = httpx.post(
        f"{served.base_url}/api/forecast", json=short, headers=served.headers, timeout=60
    )
    assert response.status_code == 400
    assert "needs 260" in response.json()["error"]
    models = httpx.get(f"{served.base_url}/api/models", headers=served.headers, timeout=30).json()
    assert models["active"]["version"] == "1"
    assert models["active"]["colour"] == "blue"
    assert [m["name"] for m in models["active"]["members"]] == ["rf", "xgb"]
    assert models["active"]["spec_hash"] == served.bundles["1"].spec.hash


def test_predictions_are_persisted(served: Served) -> None:
    request_id = "persist-" + str(time.time_ns())
    response = httpx.post(
        f"{served.base_url}/v2/models/{MODEL}/infer",
        content=infer_body(rows(2)),
        headers={**served.headers, "x-request-id": request_id},
        timeout=60,
    )
    assert response.headers["x-correlation-id"] == request_id
    assert request_id in response.headers["x-request-id"]
    deadline = time.monotonic() + 30
    while served.store.predictions.count_predictions([request_id]) == 0:
        assert time.monotonic() < deadline, "prediction never reached the store"
        time.sleep(0.2)
    (record,) = [
        r for r in served.store.predictions.predictions(limit=10_000) if r.request_id == request_id
    ]
    assert record.model_version == "1"
    assert record.colour == "blue"
    assert record.features is not None
    assert record.features.shape == (2, 45)
    assert set(record.member_outputs) == {"rf", "xgb"}


def test_metrics_pass_promtool_and_match_catalogue(served: Served) -> None:
    httpx.post(
        f"{served.base_url}/v2/models/{MODEL}/infer",
        content=infer_body(rows(1)),
        headers=served.headers,
        timeout=60,
    )
    text = httpx.get(f"{served.base_url}/metrics", headers=served.headers, timeout=30).text
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not installed (apt-get install -y --no-install-recommends prometheus)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for spec in CATALOG:
        if spec.exported_by("serving"):
            assert f"# TYPE {spec.name}" in text or any(
                f"# TYPE {n}" in text for n in spec.series_names()
            ), spec.name
    assert 'driftline_member_duration_seconds_count{member="rf"' in text
    # Feature rows reach the members over their sockets: the Serve handle is the fallback.
    for member in ("rf", "xgb"):
        socket_calls = [
            line
            for line in text.splitlines()
            if line.startswith("driftline_member_calls_total")
            and f'member="{member}"' in line
            and 'transport="socket"' in line
        ]
        assert socket_calls, member
        assert float(socket_calls[0].rsplit(" ", 1)[1]) >= 1, member


async def test_stream_reaches_reader_while_another_client_never_reads(served: Served) -> None:
    url = served.base_url.replace("http://", "ws://") + "/ws/predictions"
    # max_queue=1: once one message is buffered the stalled client stops reading its socket.
    async with websockets.connect(url, max_queue=1, additional_headers=served.headers) as stalled:
        # The stalled client never reads; its queue fills and its messages are dropped.
        async with websockets.connect(url, additional_headers=served.headers) as reader:
            stamps = []
            messages = []
            for _ in range(5):
                messages.append(orjson.loads(await asyncio.wait_for(reader.recv(), 30)))
                stamps.append(time.monotonic())
        assert stalled.state.name == "OPEN"
    gaps = np.diff(stamps[1:])
    assert 0.2 < float(np.median(gaps)) < 1.5, gaps
    first = messages[0]
    assert {"timestamp", "prediction", "members", "model_version", "latency_ms"} <= set(first)
    assert first["model_version"] == "1"
    assert [m["timestamp"] for m in messages] == sorted(m["timestamp"] for m in messages)


def test_shadow_mirrors_without_answering(served: Served) -> None:
    since = datetime.now(UTC)
    state = served.control.set_shadow("2")
    assert state.shadow == "green"
    request_id = "shadow-" + str(time.time_ns())
    # A V2 batch naming what it predicts (a symbol of this test's own): the shadow gate pairs it.
    key = {"symbol": f"G{time.time_ns()}", "as_of": "2009-03-09"}
    body = {**orjson.loads(infer_body(rows(2))), "parameters": key}
    response = httpx.post(
        f"{served.base_url}/v2/models/{MODEL}/infer",
        content=orjson.dumps(body),
        headers={**served.headers, "x-request-id": request_id},
        timeout=60,
    )
    assert response.json()["model_version"] == "1"
    deadline = time.monotonic() + 30
    while True:
        scored = {
            r.slot: r
            for r in served.store.predictions.predictions(since=since, slot=None)
            if r.request_id == request_id
        }
        if "shadow" in scored:
            break
        assert time.monotonic() < deadline, "shadow prediction never stored"
        time.sleep(0.2)
    live, shadow = scored["live"], scored["shadow"]
    assert shadow.model_version == "2"
    assert (live.symbol, live.as_of) == (key["symbol"], datetime(2009, 3, 9, tzinfo=UTC))
    outcome = {"outcomes": [{**key, "value": 0.02}]}
    settled = httpx.post(
        f"{served.base_url}/api/outcomes", json=outcome, headers=served.headers, timeout=60
    )
    assert settled.json()["stored"] == 1, settled.text
    # The gate's pair: the batch's last row, as each version scored it, and the outcome.
    pairs = served.store.controller.paired_outcomes(MODEL, "2", "1", since=since)
    assert (shadow.prediction[-1], live.prediction[-1], 0.02) in pairs


async def test_alias_switch_under_load_fails_no_request(served: Served) -> None:
    stop = asyncio.Event()
    outcomes: list[tuple[int, str]] = []
    body = infer_body(rows(1))

    async def load(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            r = await client.post(f"{served.base_url}/v2/models/{MODEL}/infer", content=body)
            outcomes.append((r.status_code, r.json().get("model_version", r.text)))

    follower = ChampionFollower(served.control, lambda: "2", interval_s=0.1)
    async with httpx.AsyncClient(timeout=60, headers=served.headers) as client:
        workers = [asyncio.create_task(load(client)) for _ in range(4)]
        await asyncio.sleep(1)
        state = await asyncio.to_thread(follower.step)
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*workers)
    assert state is not None
    assert state.active_version == "2"
    failures = [o for o in outcomes if o[0] != 200]
    assert failures == [], failures[:5]
    versions = [v for _, v in outcomes]
    assert versions[0] == "1"
    assert versions[-1] == "2"
    assert served.control.state().colours == {"green": "2"}


def test_every_answered_request_is_stored_after_shutdown(served: Served) -> None:
    ids = [f"shutdown-{i}-{time.time_ns()}" for i in range(50)]
    with httpx.Client(timeout=60) as client:
        for request_id in ids:
            response = client.post(
                f"{served.base_url}/v2/models/{MODEL}/infer",
                content=infer_body(rows(1)),
                headers={**served.headers, "x-request-id": request_id},
            )
            assert response.status_code == 200
    served.control.shutdown()
    assert served.store.predictions.count_predictions(ids) == len(ids)
