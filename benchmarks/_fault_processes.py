"""Processes a fault scenario kills or must see gone: a command's whole family, Serve replicas
and the Ray temp dir of one Driftline home (other homes' clusters on the host are left out).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

TEMP_DIR_FLAG = "--temp-dir="


def of_home(home: Path) -> list[psutil.Process]:
    """Every process of this user started for the Driftline home `home` (its environment says
    so: the command, its Ray head and everything the head starts inherit DRIFTLINE_HOME)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DRIFTLINE_HOME") == str(home):
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def serve_replicas(home: Path, deployment: str) -> list[psutil.Process]:
    """Processes of `home` running a Serve replica of `deployment` (e.g. `member_rf`)."""
    return [p for p in of_home(home) if _names_replica(p, deployment)]


def _names_replica(process: psutil.Process, deployment: str) -> bool:
    try:
        line = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    # Ray titles a replica's worker `ray::ServeReplica:<app>:<deployment>`.
    return "ServeReplica:" in line and line.split()[0].endswith(f":{deployment}")


def ray_temp_dir(home: Path) -> Path | None:
    """The temp dir (sessions, logs) of the Ray head `home`'s command started."""
    for process in of_home(home):
        try:
            for arg in process.cmdline():
                if arg.startswith(TEMP_DIR_FLAG):
                    return Path(arg.removeprefix(TEMP_DIR_FLAG))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return None


def family(root: psutil.Process, home: Path) -> set[psutil.Process]:
    """`root`'s descendants and every other process of `home`, `root` left out."""
    found = set(of_home(home))
    with contextlib.suppress(psutil.NoSuchProcess):
        found.update(root.children(recursive=True))
    found.discard(root)
    return found


def sigkill_and_watch(
    process: subprocess.Popen[bytes], home: Path, timeout_s: float = 20.0
) -> dict[str, Any]:
    """SIGKILL `process` alone (not its group) and wait for its family to go; who outlived it."""
    members = family(psutil.Process(process.pid), home)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = time.monotonic()
    while alive(members) and time.monotonic() - killed < timeout_s:
        time.sleep(0.2)
    survivors = alive(members)
    return {
        "processes_before": len(members),
        "survivors": len(survivors),
        "survivor_names": sorted({_name(p) for p in survivors}),
        "gone_after_s": round(time.monotonic() - killed, 2),
    }


def alive(processes: set[psutil.Process]) -> list[psutil.Process]:
    """Those of `processes` still running (zombies count as gone)."""
    return [p for p in processes if _running(p)]


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _name(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:80] or process.name()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return "?"


def kill_leftovers(processes: list[psutil.Process]) -> None:
    """SIGKILL what a failed scenario left running, so the next one starts clean."""
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
