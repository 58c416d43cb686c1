"""The local Ray head as `ray start --head --block` runs it, minus what Driftline never calls.

`ray start` imports Ray's whole CLI (about 130 MiB that its blocking process keeps for the life of
the head), starts every dashboard module as its own process (about 25 MiB each) and a Ray Client
server (about 50 MiB), and offers no flag for the last two. This entry point starts the same
`ray._private.node.Node` that `ray start` and `ray.init` start, with the dashboard loading the
Jobs API and Serve's REST API only, the dashboard and agent importing only their own modules, and
no client server; like `--block`, it watches the head's processes and ends them all when it is
stopped or one of them dies (ray==2.60; tests/driftline/test_rayhead.py checks what it starts).
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import shlex
import signal
import subprocess
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
# (ServeHead). The node module's part in them (readiness, the head node's id for Jobs) is this
# process's (`_announce_when_alive`).
DASHBOARD_MODULES = {
    "JobHead": "ray.dashboard.modules.job.job_head",
    "ServeHead": "ray.dashboard.modules.serve.serve_head",
}
# Every module the agent runs (Ray 2.60's whole set: jobs, logs, health, events, metrics);
# only where to find them is given, so the agent does what `ray start`'s does.
AGENT_MODULES = {
    "AggregatorAgent": "ray.dashboard.modules.aggregator.aggregator_agent",
    "EventAgent": "ray.dashboard.modules.event.event_agent",
    "JobAgent": "ray.dashboard.modules.job.job_agent",
    "LogAgent": "ray.dashboard.modules.log.log_agent",
    "LogAgentV1Grpc": "ray.dashboard.modules.log.log_agent",
    "HealthzAgent": "ray.dashboard.modules.reporter.healthz_agent",
    "ReporterAgent": "ray.dashboard.modules.reporter.reporter_agent",
}
SCRIPT_MODE = "--ray-script"
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


def through_launcher(command: Sequence[str], script: str, *extra: str) -> list[str]:
    """`command` (which runs Ray's `script`) run through `run_script`, with `extra` flags."""
    at = next(i for i, part in enumerate(command) if part.endswith(script))
    return [*command[:at], "-m", "driftline.rayhead", SCRIPT_MODE, *command[at:], *extra]


def run_script(argv: Sequence[str]) -> None:
    """Ray's dashboard.py or agent.py (`argv[0]`), finding its modules where the tables say.

    Both discover modules by importing every module of every kind (about 50 MiB that stays
    for the life of each process); `--modules-to-load` only filters what was imported.
    """
    from ray.dashboard import utils  # noqa: PLC0415

    table = DASHBOARD_MODULES if argv[0].endswith("dashboard.py") else AGENT_MODULES

    def discover(module_type: type) -> list[type]:
        for path in set(table.values()):
            importlib.import_module(path)
        found: list[type] = module_type.__subclasses__()
        return [m for m in found if m.__name__ in table and _enabled(m)]

    utils.get_all_modules = discover
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


def _enabled(module: type) -> bool:
    return bool(getattr(module, "__ray_dashboard_module_enable__", True))


def _agent_flag(argument: str) -> str:
    # The raylet starts the agent from this flag's command line.
    flag, _, command = argument.partition("=")
    launched = through_launcher(shlex.split(command), os.path.join("dashboard", "agent.py"))
    return f"{flag}={subprocess.list2cmdline(launched)}"


def _load_only_our_modules() -> None:
    start_ray_process = services.start_ray_process

    def start(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == ray_constants.PROCESS_TYPE_DASHBOARD:
            modules = f"--modules-to-load={','.join(DASHBOARD_MODULES)}"  # argparse: last wins
            command = through_launcher(command, "dashboard.py", modules)
        elif process_type == ray_constants.PROCESS_TYPE_RAYLET:
            command = [
                _agent_flag(a) if a.startswith("--dashboard_agent_command=") else a for a in command
            ]
        return start_ray_process(command, process_type, *args, **kwargs)

    services.start_ray_process = start


def _announce_when_alive(node: Node, timeout_s: float = 120.0) -> None:
    """Wait until the raylet is alive in the GCS, then record the head node's id for the Jobs
    API (the one thing of the dashboard's node module that jobs need)."""
    # The dashboard answers before the raylet registers, and Ray tears a head down whose raylet
    # misses its 30 s on a loaded machine: ready means the node is alive in the GCS.
    gcs = GcsClient(address=node.gcs_address)
    deadline = time.monotonic() + timeout_s
    while not gcs.get_all_node_info(timeout=5, state_filter=_ALIVE):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the raylet did not register within {timeout_s:.0f} s")
        time.sleep(0.2)
    gcs.internal_kv_put(
        ray_constants.KV_HEAD_NODE_ID_KEY,
        node.node_id.encode(),
        True,
        ray_constants.KV_NAMESPACE_JOB,
    )


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")  # the head's log (LocalRayCluster.log_path)
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """Start the head and block until SIGTERM (or until one of its processes dies)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == SCRIPT_MODE:
        run_script(argv[1:])
        return
    args = parse(argv)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    _load_only_our_modules()
    maybe_enable_token_auth_if_token_available()
    ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    # shutdown_at_exit: SIGTERM or exit ends every process; spawn_reaper: so does a SIGKILL here.
    node = Node(ray_params(args), head=True, shutdown_at_exit=True, spawn_reaper=True)
    _announce_when_alive(node)
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
