"""Resident memory and CPU of a process tree, summed by kind of process (Ray, Serve, ours)."""

from __future__ import annotations

import re
from collections import defaultdict

import psutil

# RSS and PSS in MiB by kind of process.
Sample = dict[str, dict[str, float]]


def tree(root: psutil.Process) -> list[psutil.Process]:
    """`root` and every process it started."""
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(root: psutil.Process) -> Sample:
    """RSS and PSS (MiB) of every process `root` started, summed by kind.

    RSS counts a page shared by N processes N times (Ray forks many workers and dashboard
    modules from one parent); PSS charges each process 1/N of it, so PSS sums to what the
    stack really occupies.
    """
    by_kind: Sample = defaultdict(lambda: {"rss": 0.0, "pss": 0.0})
    for process in tree(root):
        try:
            memory = process.memory_full_info()
            kind = by_kind[kind_of(process.cmdline())]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        kind["rss"] += memory.rss / 2**20
        kind["pss"] += memory.pss / 2**20
    return dict(by_kind)


def total(sample: Sample, key: str) -> float:
    """`key` (rss or pss) summed over every kind."""
    return sum(kind[key] for kind in sample.values())


def cpu_seconds(root: psutil.Process) -> float:
    """User and system CPU seconds of `root`'s tree so far."""
    seconds = 0.0
    for process in tree(root):
        try:
            times = process.cpu_times()
            seconds += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return seconds


def host_busy_seconds() -> float:
    """CPU seconds every core of the host has spent busy (not idle, not waiting on I/O)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def postgres_cpu_seconds() -> float:
    """User and system CPU seconds of the host's PostgreSQL processes so far."""
    seconds = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] in {"postgres", "postmaster"} and times is not None:
            seconds += times.user + times.system
    return seconds


def kind_of(cmdline: list[str]) -> str:
    """A short name for a process of the stack, from its command line."""
    text = " ".join(cmdline)
    replica = re.search(r"ray::ServeReplica:(\S+?):([^.\s]+)", text)
    if replica:
        return f"serve replica {replica.group(1)}/{replica.group(2)}"
    if "driftline.cli up" in text or "driftline up" in text:
        return "driftline up (drift monitor, controller, stream client)"
    if "driftline serve" in text:
        return "driftline serve"
    for marker, name in (
        ("ServeController", "serve controller"),
        ("ProxyActor", "serve proxy"),
        ("gcs_server", "ray gcs"),
        ("raylet", "ray raylet"),
        ("DashboardAgent", "ray agents"),
        ("dashboard/agent.py", "ray agents"),
        ("dashboard.py", "ray dashboard"),
        ("driftline.rayhead", "ray head (driftline.rayhead)"),
        ("dashboard", "ray dashboard"),
        ("ray start", "ray start"),
        ("DashboardAgent", "ray agents"),
        ("RuntimeEnvAgent", "ray agents"),
        ("log_monitor", "ray monitors"),
        ("monitor.py", "ray monitors"),
        ("ray.util.client", "ray client server"),
        ("ray::IDLE", "ray idle workers"),
    ):
        if marker in text:
            return name
    return "other ray workers"
