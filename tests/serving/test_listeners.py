"""Issue 14: a running `driftline serve` on default settings listens on loopback only, and every
protected route of its port answers 401 without a key.

The whole command runs (its own Ray head included, as a user starts it); psutil walks its process
tree, Ray's processes and Serve's actors among them, for every listening socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from benchmarks import synthetic
from driftline.config import Settings
from driftline.raycluster import free_port
from serving.ingress import ingress_table
from tests.serving.shell import user_shell

pytestmark = [pytest.mark.ray, pytest.mark.slow]

START_TIMEOUT_S = 420


# Variables a session Ray head (tests/conftest.py) may have set: `serve` must start its own.
@pytest.fixture(scope="module")
def running_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """`driftline serve` on default settings (a version of its own home's), until the end."""
    home = tmp_path_factory.mktemp("serve-home")
    synthetic.make_bundle(Settings(home=home), "1", trees=(10, 10), depths=(3, 3), rows=300)
    port = free_port()
    env = user_shell(DRIFTLINE_HOME=str(home), DRIFTLINE_SERVE_PORT=str(port))
    argv = [sys.executable, "-c", "from driftline.cli import main; main()", "serve"]
    argv += ["--version", "1", "--no-follow", "--loader", synthetic.LOADER]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.put(raw.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("serving ") for line in output):
            assert process.poll() is None, "driftline serve exited:\n" + "".join(output)
            assert time.monotonic() < deadline, "driftline serve never served:\n" + "".join(output)
            with contextlib.suppress(queue.Empty):
                output.append(lines.get(timeout=1.0))
        yield process.pid, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def _listening(pid: int) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP and bound UDP socket in the tree."""
    root = psutil.Process(pid)
    found = []
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            # psutil 6 renamed `connections` (Ray's vendored psutil may be newer than ours).
            connections = getattr(proc, "net_connections", None) or proc.connections
            for conn in connections(kind="inet"):
                tcp_listen = conn.status == psutil.CONN_LISTEN
                udp_bound = conn.type == 2 and not conn.raddr  # SOCK_DGRAM
                if tcp_listen or udp_bound:
                    found.append((proc.name(), conn.laddr.ip, conn.laddr.port))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    # Ray's gRPC servers listen on IPv4 loopback through dual-stack sockets (::ffff:127.0.0.1).
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_serve_listens_on_loopback_only(running_serve: tuple[int, str]) -> None:
    pid, base = running_serve
    sockets = _listening(pid)
    port = int(base.rsplit(":", 1)[1])
    assert port in {p for _, _, p in sockets}, sockets
    assert len({name for name, _, _ in sockets}) > 2, "Ray's processes were not found"
    exposed = [s for s in sockets if not _is_loopback(s[1])]
    assert exposed == [], exposed


def test_every_protected_route_of_serve_refuses_without_a_key(
    running_serve: tuple[int, str],
) -> None:
    protected = 0
    with httpx.Client(base_url=running_serve[1], timeout=30) as client:
        for route in ingress_table().routes:
            if route.method == "WEBSOCKET":
                continue
            path = re.sub(r"\{([a-z_]+)(:path)?\}", "1", route.path)
            status = client.request(route.method, path).status_code
            if route.is_public:
                assert status not in {401, 403}, (route, status)
            else:
                assert status == 401, (route, status)
                protected += 1
        assert client.get("/v2/health/ready").status_code == 200
    assert protected >= 15


def test_the_key_file_of_serve_is_private(running_serve: tuple[int, str]) -> None:
    home = Path(psutil.Process(running_serve[0]).environ()["DRIFTLINE_HOME"])
    assert (home / "serve.key").stat().st_mode & 0o077 == 0
