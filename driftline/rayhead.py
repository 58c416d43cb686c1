"""The local Ray head as `ray start --head --block` runs it, minus what Driftline never calls.

`ray start` imports Ray's whole CLI (about 130 MiB that its blocking process keeps for the life of
the head), starts every dashboard module as its own process (about 25 MiB each) and a Ray Client
server (about 50 MiB), and offers no flag for the last two. This entry point starts the same
`ray._private.node.Node` that `ray start` and `ray.init` start, with the dashboard loading the
Jobs API, Serve's REST API and the node summary only, and no client server; like `--block`, it
watches the head's processes and ends them all when it is stopped or one of them dies (ray==2.60;
tests/driftline/test_rayhead.py checks what it starts).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray._private import ray_constants, services
from ray._private.authentication.authentication_token_setup import (
    ensure_token_if_auth_enabled,
    maybe_enable_token_auth_if_token_available,
)
from ray._private.node import Node
from ray._private.parameter import RayParams
from ray._raylet import GcsClient  # type: ignore[attr-defined]
from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]

# The dashboard modules behind the routes Driftline uses: /api/jobs (JobHead), /api/serve
# (ServeHead). Readiness is this process's to say (--ready-file), not the dashboard's node list.
DASHBOARD_MODULES = ("JobHead", "ServeHead")
HOST = "127.0.0.1"
# How `ray start --block` tells a process stopped on purpose from one that died.
_EXPECTED_EXIT = {0, signal.SIGTERM, -signal.SIGTERM, 128 + signal.SIGTERM}
_ALIVE = GcsNodeInfo.GcsNodeState.ALIVE


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The options LocalRayCluster passes (the names of `ray start`'s)."""
    parser = argparse.ArgumentParser(prog="python -m driftline.rayhead")
    for name in ("port", "dashboard-port", "dashboard-agent-listen-port", "metrics-export-port"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--num-cpus", type=int, required=True)
    parser.add_argument("--object-store-memory", type=int, required=True)
    parser.add_argument("--temp-dir", required=True)
    parser.add_argument("--ready-file", required=True, help="created once the node is alive")
    return parser.parse_args(argv)


def ray_params(args: argparse.Namespace) -> RayParams:
    """The head's parameters: loopback only, no autoscaler monitor, no log monitor."""
    return RayParams(
        node_ip_address=HOST,
        node_name=HOST,
        gcs_server_port=args.port,
        num_cpus=args.num_cpus,
        object_store_memory=args.object_store_memory,
        temp_dir=args.temp_dir,
        include_dashboard=True,
        dashboard_host=HOST,
        dashboard_port=args.dashboard_port,
        dashboard_agent_listen_port=args.dashboard_agent_listen_port,
        metrics_export_port=args.metrics_export_port,
        # The autoscaler's monitor sizes clusters it can add nodes to; this one has a fixed size.
        no_monitor=True,
        # The log monitor copies workers' lines to drivers; ours read logs from files.
        # Annotated `str | None`; `ray start` passes its flag's bool.
        include_log_monitor=False,  # type: ignore[arg-type]
        ray_client_server_port=None,
    )


def dashboard_command(command: Sequence[str], modules: Sequence[str]) -> list[str]:
    """The dashboard's command line with only `modules` loaded (argparse keeps the last flag)."""
    return [*command, f"--modules-to-load={','.join(modules)}"]


def _load_only_our_modules() -> None:
    start_ray_process = services.start_ray_process

    def start(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == ray_constants.PROCESS_TYPE_DASHBOARD:
            command = dashboard_command(command, DASHBOARD_MODULES)
        return start_ray_process(command, process_type, *args, **kwargs)

    services.start_ray_process = start


def _wait_for_raylet(node: Node, timeout_s: float = 120.0) -> None:
    # The dashboard answers before the raylet registers, and Ray tears a head down whose raylet
    # misses its 30 s on a loaded machine: ready means the node is alive in the GCS.
    gcs = GcsClient(address=node.gcs_address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gcs.get_all_node_info(timeout=5, state_filter=_ALIVE):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the raylet did not register within {timeout_s:.0f} s")


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")  # the head's log (LocalRayCluster.log_path)
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """Start the head and block until SIGTERM (or until one of its processes dies)."""
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    _load_only_our_modules()
    maybe_enable_token_auth_if_token_available()
    ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    # shutdown_at_exit: SIGTERM or exit ends every process; spawn_reaper: so does a SIGKILL here.
    node = Node(ray_params(args), head=True, shutdown_at_exit=True, spawn_reaper=True)
    _wait_for_raylet(node)
    Path(args.ready_file).touch()
    _say(f"Ray head at {node.address}, dashboard at {HOST}:{args.dashboard_port}")
    while True:
        time.sleep(1)
        dead = node.dead_processes()  # type: ignore[no-untyped-call]
        died = [kind for kind, p in dead if p.returncode not in _EXPECTED_EXIT]
        if died:
            _say(f"Ray processes exited unexpectedly: {died}; stopping the head")
            node.kill_all_processes(check_alive=False, allow_graceful=False)
            os._exit(1)


if __name__ == "__main__":
    main()
