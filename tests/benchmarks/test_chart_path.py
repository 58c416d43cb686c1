"""The serving benchmark's chart path is the chart's own: the rendered RayService's Serve config
and head environment, changed only where a local run must differ."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks import synthetic
from benchmarks.chart_path import head_env, local_config, rendered_rayservice


def test_the_chart_path_deploys_the_rendered_build_app_config(tool: Callable[[str], str]) -> None:
    config, _env = rendered_rayservice(tool("helm"))
    (app,) = config["applications"]
    assert app["import_path"] == "serving.app:build_app"
    local = local_config(config, proxy_port=18000)
    (local_app,) = local["applications"]
    # Only the version, the loader and the proxy's address change; the rest is the chart's.
    assert local_app["args"] == {**app["args"], "model_version": "1", "loader": synthetic.LOADER}
    assert {k: v for k, v in local_app.items() if k != "args"} == {
        k: v for k, v in app.items() if k != "args"
    }
    assert local["http_options"] == {"host": "127.0.0.1", "port": 18000}
    assert local["proxy_location"] == config["proxy_location"]


def test_the_head_keeps_the_charts_serve_settings_on_rebased_ports(
    tool: Callable[[str], str],
) -> None:
    _config, env = rendered_rayservice(tool("helm"))
    local = head_env(env, base_port=30000)
    assert local["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
    assert local["RAY_worker_niceness"] == env["RAY_worker_niceness"]
    assert local["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"] == env["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"]
    width = int(env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) - int(
        env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]
    )
    assert local["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "30000"
    assert int(local["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) - 30000 == width
    # Cluster-specific settings (store, MLflow, home) are the local run's own.
    assert not {"DRIFTLINE_DATABASE_URL", "MLFLOW_TRACKING_URI", "DRIFTLINE_HOME"} & set(local)
