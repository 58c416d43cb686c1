"""Ports for servers the tests start the way users do, and who listens on them."""

from __future__ import annotations

import random
import socket

import psutil


def user_port() -> int:
    """A free port below Linux's ephemeral range, like the default 8080: a Ray head's own
    free-port picks (GCS, agent, metrics) come from that range and could take it."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 20000-32000")


def listener(port: int) -> psutil.Process:
    """The process listening on 127.0.0.1:`port`."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            assert connection.pid is not None
            return psutil.Process(connection.pid)
    raise AssertionError(f"nothing listens on {port}")
