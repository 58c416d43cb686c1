"""A local Ray head node bound to loopback, started and stopped as one process we own."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from driftline.config import Settings

# Ray swaps 127.0.0.1 for the machine's routable address unless told this is a single-node
# cluster; this switch (named for Windows and macOS) keeps every Ray socket on loopback.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

log = logging.getLogger(__name__)


class RayClusterError(RuntimeError):
    """The local Ray head did not come up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalRayCluster:
    """A Ray head on loopback with its own ports and temp dir (`driftline.rayhead`).

    `ray stop` would kill every Ray process on the machine; owning the blocking head process
    instead means stopping it stops exactly this cluster.
    """

    num_cpus: float = 2
    dashboard_port: int | None = None
    object_store_mb: int = 512
    env: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    startup_timeout_s: float = 90.0
    gcs_port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _temp_dir: str | None = field(default=None, init=False, repr=False)
    _auth_env: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # What this process presented before this head's token: given back when the head stops.
    _previous_auth: dict[str, str | None] | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> LocalRayCluster:
        """A cluster sized and placed as the settings say."""
        settings.ensure_home()
        options: dict[str, object] = {
            "num_cpus": settings.ray.num_cpus,
            "dashboard_port": settings.ray.dashboard_port,
            "log_path": settings.home / "ray-head.log",
            **overrides,
        }
        return cls(**options)  # type: ignore[arg-type]

    @property
    def address(self) -> str:
        """The GCS address clients pass to `ray.init` and `RAY_ADDRESS`."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def _ready_file(self) -> Path:
        return Path(self._temp_dir or "") / "driftline-head-ready"

    @property
    def dashboard_url(self) -> str:
        """The dashboard, Jobs API and Serve REST API."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, attempts: int = 2) -> LocalRayCluster:
        """Start the head and wait until its dashboard answers and its node is alive.

        On a loaded host the head sometimes gives up on one of its own processes (one timing
        out on node info); a second attempt on fresh ports then succeeds.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except RayClusterError:
                self.stop()
                if attempt == attempts:
                    raise
                log.warning("Ray head failed; trying fresh ports", extra={"log": self.log_path})
                self.gcs_port, self.dashboard_port = free_port(), free_port()
        raise AssertionError  # unreachable: the last attempt returns or raises

    def _start_once(self) -> LocalRayCluster:
        if self.dashboard_port is None or not _port_is_free(self.dashboard_port):
            self.dashboard_port = free_port()
        # Drivers in this process (ray.init, Serve, Jobs clients) must agree on loopback too.
        os.environ.update(LOOPBACK_ENV)
        # Unix socket paths are limited to 107 bytes: keep the temp dir short.
        self._temp_dir = tempfile.mkdtemp(prefix="dl-ray-", dir="/tmp")
        self._auth_env = _token_auth(Path(self._temp_dir))
        if self._previous_auth is None:
            self._previous_auth = {k: os.environ.get(k) for k in self._auth_env}
        _present_token(self._auth_env)
        argv = [
            sys.executable,
            "-m",
            "driftline.rayhead",
            f"--port={self.gcs_port}",
            f"--dashboard-port={self.dashboard_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            # Ray takes whole CPUs for a node; `ray.num_cpus` is a float.
            f"--num-cpus={int(self.num_cpus)}",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            f"--temp-dir={self._temp_dir}",
            f"--ready-file={self._ready_file}",
        ]
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                argv,
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=self._process_env(),
                start_new_session=True,
                # Its own session keeps terminal signals away; the death signal still ends it
                # (and, through its SIGTERM handler and reaper, its workers) with this process.
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 (prctl only; no locks)
            )
        finally:
            if log is not None:
                log.close()  # the child holds its own descriptor; ours would leak
        self._wait_until_ready()
        return self

    @property
    def running(self) -> bool:
        """Whether this object's head process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the head and every worker it started."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        previous, self._previous_auth = self._previous_auth, None
        if previous is not None and all(os.environ.get(k) == v for k, v in self._auth_env.items()):
            # Clients of a head started earlier in this process (a second head in tests, say)
            # present that head's token again, not this one's deleted file.
            _present_token(previous)

    def _process_env(self) -> dict[str, str]:
        # Job entrypoints say `python`: make it this interpreter, with our packages installed.
        bin_dir = str(Path(sys.executable).parent)
        path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {
            **os.environ,
            "PATH": path,
            **LOOPBACK_ENV,
            **self._auth_env,
            # On SIGTERM (our stop, or the death signal when our process dies) the head would
            # first drain the node for up to 30 s; nothing routes to a local head being stopped,
            # and the wait left its processes running 30 s past a SIGKILLed `driftline serve`.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            **self.env,
        }

    def client_env(self) -> dict[str, str]:
        """Environment variables that point Ray clients at this cluster."""
        return {
            "RAY_ADDRESS": self.address,
            "RAY_DASHBOARD_ADDRESS": self.dashboard_url,
            # Jobs and Serve clients otherwise resolve RAY_ADDRESS through the GCS, even when
            # given this URL; this is the one variable Ray lets outrank it.
            "RAY_API_SERVER_ADDRESS": self.dashboard_url,
            **LOOPBACK_ENV,
            **self._auth_env,
        }

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RayClusterError(
                    f"the Ray head exited with code {self._process.returncode}; see {self.log_path}"
                )
            try:
                if self._node_alive():
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RayClusterError(f"Ray head not ready after {self.startup_timeout_s:.0f}s")

    def _node_alive(self) -> bool:
        # The head marks itself ready once its raylet is alive; the APIs must answer too.
        if not self._ready_file.exists():
            return False
        token = Path(self._auth_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
        reply = httpx.get(
            f"{self.dashboard_url}/api/jobs/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        return reply.status_code == 200


def _token_auth(directory: Path) -> dict[str, str]:
    """Token authentication for one cluster, its own token in a 0600 file under `directory`.

    Ray's default is one token at ~/.ray/auth_token shared by every cluster of the user: two heads
    started at once rewrite it under each other, and anyone with that file reaches every cluster.
    """
    path = directory / "auth_token"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}


def _present_token(auth_env: Mapping[str, str | None]) -> None:
    """Make this process's Ray clients (Serve, Jobs, ray.init) present the cluster's token
    (a None value unsets that variable)."""
    for name, value in auth_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "ray._raylet" not in sys.modules:
        return  # Ray reads the variables when first imported; no control loop here imports it
    # Ray caches its auth mode and token at first use; this is how `ray start` refreshes them.
    from ray._raylet import (  # type: ignore[attr-defined]  # noqa: PLC0415  (compiled, no stubs)
        AuthenticationTokenLoader,
        Config,
    )

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec hook asking Linux to SIGTERM the child when `parent_pid` dies (even SIGKILLed)."""

    def hook() -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook
