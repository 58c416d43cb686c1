"""Serving benchmark: in-process predict, KServe's ModelServer and Driftline's graph, one run.

The graph is measured where users call it: `driftline serve` runs as a command and is loaded
at the URL it printed, with every prediction logged to the store (DRIFTLINE_DATABASE_URL, else
SQLite in a fresh home). `python -m benchmarks.serving [--quick]` writes
benchmarks/results/serving.json and serving.md. Every configuration runs on the same machine
in the same run, so ratios are fair even where absolute numbers move with the shared host's
load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from benchmarks import synthetic
from benchmarks.chart_path import chart_path
from benchmarks.loadgen import LoadResult, run_load
from benchmarks.trace_overhead import SAMPLERS, tracing_overhead
from driftline.config import Settings
from driftline.raycluster import LOOPBACK_ENV, LocalRayCluster, free_port
from driftline.registry.bundle import ModelBundle
from driftline.registry.predictor import EnsemblePredictor

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 4, 16)
ROWS = (1, 1024)
MODEL = "market-ensemble"
INFER = f"/v2/models/{MODEL}/infer"


def body(rows: np.ndarray[Any, Any]) -> bytes:
    """A V2 infer body carrying `rows` as FP32 (what a client of a float32 model sends)."""
    tensor = {
        "name": "features",
        "shape": list(rows.shape),
        "datatype": "FP32",
        "data": rows.astype(np.float32).tolist(),
    }
    return orjson.dumps({"id": "bench", "inputs": [tensor]})


def onnx_ensemble(bundle: ModelBundle) -> Callable[[np.ndarray[Any, Any]], Any]:
    """The ensemble through the registry's runtime in this process: ONNX, one thread a member."""
    predictor = EnsemblePredictor(bundle)

    def predict(rows: np.ndarray[Any, Any]) -> Any:
        return predictor.predict_rows(rows)[0]

    return predict


def onnx_rate(
    bundle: ModelBundle, x: np.ndarray[Any, Any], seconds: float
) -> Callable[[int], float]:
    """In-process rows/s of the ONNX ensemble on the first n rows of `x`, as a function of n."""
    ensemble = onnx_ensemble(bundle)
    return lambda n: rows_per_s(ensemble, x[:n], seconds=seconds)


def in_process(bundle: ModelBundle, x: np.ndarray[Any, Any], repeats: int) -> dict[str, Any]:
    """The ensemble predict called directly: native models and ONNX Runtime, 1 and 1,024 rows."""
    onnx_predict = onnx_ensemble(bundle)

    def native_predict(rows: np.ndarray[Any, Any]) -> Any:
        return synthetic.native_predict(bundle, rows)

    results: dict[str, Any] = {}
    for name, predict in (("onnx", onnx_predict), ("native", native_predict)):
        for n in ROWS:
            rows = x[:n]
            count = max(3, repeats // (50 if n > 1 else 1) // (20 if name == "native" else 1))
            results[f"{name}_{n}"] = _time_calls(predict, rows, count)
    results["max_abs_diff_onnx_vs_native"] = float(
        np.max(np.abs(onnx_predict(x[:1024]) - native_predict(x[:1024])))
    )
    return results


def _time_calls(
    predict: Callable[[np.ndarray[Any, Any]], Any], rows: np.ndarray[Any, Any], count: int
) -> dict[str, float]:
    predict(rows)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        predict(rows)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"p50_ms": median * 1e3, "calls_per_s": 1 / median, "rows_per_s": len(rows) / median}


def rows_per_s(predict: Callable[[np.ndarray[Any, Any]], Any], rows: Any, seconds: float) -> float:
    """Rows/s of back-to-back `predict(rows)` calls for about `seconds`."""
    predict(rows)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(rows)
        calls += 1
    return calls * len(rows) / (time.perf_counter() - start)


def sweep(
    urls: dict[str, str],
    bodies: dict[int, bytes],
    duration_s: float,
    rounds: int,
    *,
    local: Callable[[int], float] | None = None,
    key: str = "",
) -> dict[str, dict[str, Any]]:
    """Every (concurrency, rows) point against every system, interleaved point by point.

    The host is shared: its load drifts over minutes. Running the systems alternately on each
    point, `rounds` times, and keeping each system's median run makes the ratios fair. With
    `local(n)` (in-process rows/s for n-row calls), the in-process baseline is measured beside
    every run of the systems too, under the same conditions.
    """
    results: dict[str, dict[str, Any]] = {name: {} for name in urls}
    results["in_process_interleaved"] = {}
    # Every request each system answered, warm-ups and every round included: what it logged.
    sent = dict.fromkeys(urls, 0)
    results["sent_requests"] = sent
    for n, payload in bodies.items():
        local_runs: list[float] = []
        for name, url in urls.items():
            warm = run_load(url, payload, concurrency=4, duration_s=1.0, key=key)
            _refuse_errors(name, warm)
            sent[name] += warm.requests
        for c in CONCURRENCY:
            runs: dict[str, list[LoadResult]] = {name: [] for name in urls}
            for _ in range(rounds):
                for name, url in urls.items():
                    one = run_load(url, payload, concurrency=c, duration_s=duration_s, key=key)
                    runs[name].append(one)
                    sent[name] += one.requests
                if local is not None:
                    local_runs.append(local(n))
            for name, measured in runs.items():
                median = sorted(measured, key=lambda r: r.rps)[len(measured) // 2]
                results[name][f"c{c}_rows{n}"] = {
                    **median.as_dict(),
                    "rows_per_s": median.rps * n,
                    "rps_runs": [round(r.rps, 1) for r in measured],
                }
        if local_runs:
            results["in_process_interleaved"][f"onnx_{n}"] = {
                "rows_per_s": float(np.median(local_runs)),
                "runs": [round(r) for r in local_runs],
            }
    return results


def _refuse_errors(name: str, result: LoadResult) -> None:
    """Stop the benchmark if a system answered non-2xx: its figures would time errors."""
    if result.errors:
        raise RuntimeError(f"{name}: {result.errors} of {result.requests} requests failed")


def create_key(env: Mapping[str, str], name: str, scopes: str = "predict,read") -> str:
    """A key issued by `driftline keys create` in the user's environment `env`."""
    argv = [str(Path(sys.executable).with_name("driftline")), "keys", "create", name]
    done = subprocess.run(
        [*argv, "--scope", scopes, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(done.stdout)["key"])


def start_kserve(home: Path, port: int) -> subprocess.Popen[bytes]:
    """KServe's ModelServer in its own process, waited on until ready."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.kserve_server",
            "--port",
            str(port),
            "--home",
            str(home),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", 120)
    return process


@contextlib.contextmanager
def driftline_serve(
    version: str,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float = 600.0,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """`driftline serve --version VERSION` as a user runs it; yields the URL it printed first.

    The URL is read from the command's own output (`serving.cli.printed_url`), so what is
    measured is the address users are given. Ctrl-C (SIGINT) stops it, flushing predictions.
    """
    from serving.cli import printed_url  # noqa: PLC0415

    argv = [str(Path(sys.executable).with_name("driftline")), "serve", "--version", version]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--loader", synthetic.LOADER, *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            start_new_session=True,
        )
    try:
        yield printed_url(_wait_for_output(log_path, "try:", process, timeout_s))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_output(
    log_path: Path, marker: str, process: subprocess.Popen[bytes], timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if marker in text:
            return text
        if process.poll() is not None:
            raise RuntimeError(f"driftline serve exited ({process.returncode}):\n{text[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"driftline serve printed no URL in {timeout_s:.0f}s; see {log_path}")


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s")


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run the whole benchmark and write the results; returns the JSON document."""
    os.environ.update(LOOPBACK_ENV)  # before Ray is imported anywhere
    from serving.control import ServingControl, ray_env  # noqa: PLC0415

    duration = 3.0 if quick else 5.0
    home = Path(tempfile.mkdtemp(prefix="dl-bench-serving-"))
    os.environ["DRIFTLINE_HOME"] = str(home)
    settings = Settings(home=home)
    bundle = synthetic.make_bundle(settings, "1")  # RF 200 trees depth 8, XGB 300 depth 6
    x = np.random.default_rng(1).normal(size=(1024, len(bundle.spec.features)))
    bodies = {n: body(x[:n]) for n in ROWS}
    document: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "model": {
            "members": "RandomForest(200, depth 8) + XGBoost(300, depth 6)",
            "features": len(bundle.spec.features),
        },
        "in_process": in_process(bundle, x, repeats=200 if quick else 1000),
    }
    from driftline.store import Store  # noqa: PLC0415

    store_url = os.environ.get("DRIFTLINE_DATABASE_URL") or settings.store_url
    store = Store(store_url)
    store.upgrade()
    kserve_port = free_port()
    kserve = start_kserve(home, kserve_port)
    try:
        # The user's path: `driftline serve` on its own Ray head, loaded at the URL it printed,
        # with every prediction logged to the store.
        key = user_path(
            document,
            home,
            (store, store_url),
            f"http://127.0.0.1:{kserve_port}{INFER}",
            bodies=bodies,
            local=onnx_rate(bundle, x, seconds=duration / 2),
            quick=quick,
        )
        store.close()
        # The levers need Serve's internals (its proxy, redeploys with one setting changed).
        env = ray_env(settings, direct_port_base=random.randint(20000, 29000))
        cluster = LocalRayCluster(num_cpus=2, env=env, log_path=home / "ray.log").start()
        try:
            control = ServingControl(
                settings, cluster.dashboard_url, http_port=free_port(), loader=synthetic.LOADER
            )
            control.deploy("1")
            proxy = f"http://127.0.0.1:{control.http_port}"
            document["levers"] = lever_runs(control, proxy, bodies, duration, key)
            control.shutdown()
        finally:
            cluster.stop()
    finally:
        kserve.terminate()
        kserve.wait(30)
    if not quick:  # a second Ray head: about a minute more
        document["levers"]["throughput_optimized_off"] = throughput_optimized_off(
            settings, home, bodies, duration, key
        )
    # Measured again at the end: the shared host's load moves, and the ratio takes the faster.
    document["in_process_end"] = in_process(bundle, x, repeats=200 if quick else 1000)
    document["machine"]["loadavg_end"] = os.getloadavg()
    document["targets"] = targets(document)
    write(document)
    return document


def user_path(
    document: dict[str, Any],
    home: Path,
    store: tuple[Any, str],
    kserve: str,
    *,
    bodies: dict[int, bytes],
    local: Callable[[int], float],
    quick: bool,
) -> str:
    """The sweep against KServe, what was logged, and the tracing overhead, all at the URL
    `driftline serve` printed with every prediction logged; returns the client key it made."""
    duration = 3.0 if quick else 5.0
    rounds = 1 if quick else 3
    env = user_env(home, store[1])
    stored_before = store[0].predictions.count_predictions()
    with driftline_serve("1", env, home / "serve.log") as printed:
        # A client key, created as users create one; KServe's own server ignores it.
        key = create_key(env, "bench-serving")
        with chart_path(Settings(home=home), home, store[1]) as chart:
            urls = {"kserve": kserve, "graph": printed + INFER, "chart": chart + INFER}
            document.update(sweep(urls, bodies, duration, rounds, local=local, key=key))
        document["chart_url"] = chart
        # Counted before the traced server starts: it logs to the same store. Both the
        # printed URL's server and the chart's path log every prediction.
        sent = document["sent_requests"]
        document["logged"] = logged(sent["graph"] + sent["chart"], *store, stored_before)
        document["tracing"] = tracing_overhead(
            driftline_serve,
            printed,
            INFER,
            env,
            home,
            body=bodies[1],
            duration_s=duration,
            rounds=rounds + 2,
            key=key,
        )
    document["printed_url"] = printed
    return key


def user_env(home: Path, store_url: str) -> dict[str, str]:
    """What a user's shell would hold: a home, a store, ports free on this shared host."""
    return {
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_DATABASE_URL": store_url,
        "DRIFTLINE_SERVE_PORT": str(free_port()),
        "DRIFTLINE_RAY_DASHBOARD_PORT": str(free_port()),
    }


def logged(answered: int, store: Any, store_url: str, stored_before: int) -> dict[str, Any]:
    """Requests the graph answered against prediction records (one per request) the store
    gained meanwhile, once the writer's last batches have landed; KServe logs nothing."""
    stored, deadline = -1, time.monotonic() + 30
    while time.monotonic() < deadline:
        now = store.predictions.count_predictions() - stored_before
        if now >= answered or now == stored:
            break
        stored = now
        time.sleep(2.0)
    stored = store.predictions.count_predictions() - stored_before
    backend = store_url.split(":", 1)[0].split("+", 1)[0]
    # Requests still in flight when a load run ends are answered but not counted by it.
    return {"store": backend, "answered_requests": answered, "stored_records": stored}


# Each lever is switched off (or on) alone against the tuned graph, in the same run.
LEVERS: dict[str, dict[str, str]] = {
    "member_calls_through_serve_handles": {"DRIFTLINE_SERVE_MEMBER_TRANSPORT": "serve"},
    "no_ingress_or_member_batching": {"DRIFTLINE_SERVE_BATCH_SIZE": "1"},
    "serve_access_log_on": {"DRIFTLINE_SERVE_ACCESS_LOG": "true"},
}


def lever_runs(
    control: Any, proxy: str, bodies: dict[int, bytes], duration: float, key: str
) -> dict[str, Any]:
    """What single levers gave: c1 and c16 one-row runs beside the tuned graph's own."""
    one = bodies[1]
    base_env = dict(control.env)

    def measure(url: str) -> dict[str, Any]:
        return c1_c16(url, one, duration, key)

    levers: dict[str, Any] = {"tuned": measure(control.direct_urls()[0] + INFER)}
    levers["serve_proxy_instead_of_direct_ingress"] = measure(proxy + INFER)
    for name, env in LEVERS.items():
        control.env = {**base_env, **env}
        control.deploy("1")
        levers[name] = measure(control.direct_urls()[0] + INFER)
    control.env = base_env
    return levers


def c1_c16(url: str, body: bytes, duration: float, key: str) -> dict[str, Any]:
    """One-row runs at concurrency 1 and 16; a run with failed requests stops the benchmark."""
    runs = {c: run_load(url, body, concurrency=c, duration_s=duration, key=key) for c in (1, 16)}
    for c, result in runs.items():
        _refuse_errors(f"{url} c{c}", result)
    return {f"c{c}": result.as_dict() for c, result in runs.items()}


def throughput_optimized_off(
    settings: Settings, home: Path, bodies: dict[int, bytes], duration: float, key: str
) -> dict[str, Any]:
    """The graph on a Ray head started without RAY_SERVE_THROUGHPUT_OPTIMIZED (Serve's proxy)."""
    from serving.control import ServingControl, ray_env  # noqa: PLC0415

    env = ray_env(
        settings.updated({"serving": {"throughput_optimized": False}}), direct_port_base=0
    )
    cluster = LocalRayCluster(num_cpus=2, env=env, log_path=home / "ray-plain.log").start()
    try:
        control = ServingControl(
            settings, cluster.dashboard_url, http_port=free_port(), loader=synthetic.LOADER
        )
        control.deploy("1")
        url = f"http://127.0.0.1:{control.http_port}{INFER}"
        result = c1_c16(url, bodies[1], duration, key)
        control.shutdown()
        return result
    finally:
        cluster.stop()


def targets(document: dict[str, Any]) -> dict[str, Any]:
    """The three ratios the issue sets, from this run's figures."""
    ratios: dict[str, float] = {}
    met: dict[str, bool] = {}
    # The printed URL keeps the three original keys; the chart's path has them prefixed.
    for system, prefix in (("graph", ""), ("chart", "chart_")):
        for name, value in _ratios(document, system).items():
            ratios[prefix + name] = value
            met[prefix + name] = _meets(name, value)
    met["p50_c1_traced_vs_untraced"] = document["tracing"]["met"]
    return {
        **{k: round(v, 3) for k, v in ratios.items()},
        "p50_c1_traced_vs_untraced": document["tracing"]["ratio"],
        "met": met,
    }


def _ratios(document: dict[str, Any], system: str) -> dict[str, float]:
    served, kserve = document[system], document["kserve"]
    best_rows = max(served[f"c{c}_rows1024"]["rows_per_s"] for c in CONCURRENCY)
    # The in-process figure measured beside the runs, not at the start or the end.
    inproc = document["in_process_interleaved"]["onnx_1024"]["rows_per_s"]
    return {
        "rps_c16_vs_kserve": served["c16_rows1"]["rps"] / kserve["c16_rows1"]["rps"],
        "p50_c1_vs_kserve": served["c1_rows1"]["p50_ms"] / kserve["c1_rows1"]["p50_ms"],
        "rows_1024_vs_inprocess": best_rows / inproc,
    }


def _meets(name: str, ratio: float) -> bool:
    bound = {"rps_c16_vs_kserve": 1.0, "p50_c1_vs_kserve": 1.5, "rows_1024_vs_inprocess": 0.7}
    return ratio <= bound[name] if name.startswith("p50") else ratio >= bound[name]


def write(document: dict[str, Any]) -> None:
    """serving.json and a Markdown table beside it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "serving.md").write_text(markdown(document))


def markdown(document: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    logged_rows = document["logged"]
    lines = [
        "# Serving benchmark",
        "",
        f"`graph` is the URL `driftline serve` printed ({document['printed_url']}), with every "
        f"prediction logged ({logged_rows['store']}: {logged_rows['stored_records']} records "
        f"stored for {logged_rows['answered_requests']} requests answered by it and `chart`, "
        "warm-ups included). `chart` is the chart's RayService path run locally (its rendered "
        f"serveConfigV2 and head environment, `serving.app:build_app`) at the direct-ingress "
        f"port its Services target ({document['chart_url']}), logging too. `kserve` is KServe's "
        "ModelServer serving the same version.",
        "",
        "| system | concurrency | rows | req/s | rows/s | p50 ms | p99 ms | errors | loadgen CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for system in ("kserve", "graph", "chart"):
        for key, r in document[system].items():
            c, n = key[1:].split("_rows")
            lines.append(
                f"| {system} | {c} | {n} | {r['rps']:.1f} | {r['rows_per_s']:.0f} | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
                f"{r['loadgen_cpu_share']:.1%} |"
            )
    lines += [
        "",
        "| in-process, beside every run | rows/s (median) | runs |",
        "| --- | --- | --- |",
    ]
    for key, r in document["in_process_interleaved"].items():
        lines.append(f"| {key} | {r['rows_per_s']:.0f} | {r['runs']} |")
    lines += ["", "| in-process | p50 ms | calls/s | rows/s |", "| --- | --- | --- | --- |"]
    for phase in ("in_process", "in_process_end"):
        for key, r in document[phase].items():
            if isinstance(r, dict):
                lines.append(
                    f"| {key} ({'start' if phase == 'in_process' else 'end'}) | "
                    f"{r['p50_ms']:.3f} | {r['calls_per_s']:.0f} | {r['rows_per_s']:.0f} |"
                )
    lines += [
        "",
        "| lever (one change from the tuned graph) | c1 p50 ms | c1 req/s | c16 req/s "
        "| c16 p99 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, r in document["levers"].items():
        one, sixteen = r["c1"], r["c16"]
        lines.append(
            f"| {key} | {one['p50_ms']:.2f} | {one['rps']:.0f} | {sixteen['rps']:.0f} | "
            f"{sixteen['p99_ms']:.2f} |"
        )
    traced = document["tracing"]
    lines += [
        "",
        f"Traces: {traced['what']}. Spans received by the collector and the processes that sent "
        "them are in serving.json.",
        "",
        "| sampler | traced requests | c1 p50 ms untraced | traced | ratio | c1 p99 ms untraced "
        "| traced |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {label} | {traced[label]['traced_requests']} | "
            f"{traced[label]['untraced_c1_p50_ms']} | {traced[label]['traced_c1_p50_ms']} | "
            f"{traced[label]['ratio']} | {traced[label]['untraced_c1_p99_ms']} | "
            f"{traced[label]['traced_c1_p99_ms']} |"
            for label in SAMPLERS
        ),
    ]
    t = document["targets"]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    for key in t["met"]:
        lines.append(f"| {key} | {t[key]} | {t['met'][key]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one round of 3 s per point; no second Ray head"
    )
    args = parser.parse_args()
    document = run(quick=args.quick)
    print(json.dumps(document["targets"], indent=2))


if __name__ == "__main__":
    main()


__all__ = ["LoadResult", "run"]
