"""``cryotune mlflow``: the MLflow UI over a workspace's store, as a lean local server.

``mlflow server`` with its defaults starts 15 processes (~3 GB); with one worker and MLflow's
job execution off it is two processes (~0.5 GB) that answer ``/health`` after a few seconds. It
binds to loopback, reads the workspace's sqlite store and serves the artifacts beside it
(``WORKSPACE/mlartifacts``), so runs logged by sweeps without a server show their files too.
Over a database store (``--tracking-uri postgresql://...``) it is the tracking server of a
cluster: sweeps log to it over HTTP and their artifacts land in ``--artifacts-dir``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryotune.errors import CryotuneError, UsageError
from cryotune.locations import workspace_root
from cryotune.tracking.uri import (
    ARTIFACTS_DIR,
    default_tracking_uri,
    is_http,
    normalize,
    sqlite_path,
)

SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class UiServer:
    """An ``mlflow server`` command line over one backend store."""

    backend_uri: str
    artifacts_dir: Path | None
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri]
        args += ["--host", self.host, "--port", str(self.port), "--workers", "1"]
        if self.artifacts_dir is not None:
            args += ["--artifacts-destination", str(self.artifacts_dir)]
        return args


def ui_server(
    workspace: str | None,
    tracking_uri: str | None,
    port: int,
    host: str = "127.0.0.1",
    artifacts_dir: str | None = None,
) -> UiServer:
    """The server for ``--workspace`` (its sqlite store) or a ``--tracking-uri`` database; the
    artifacts of a database store go to ``artifacts_dir``, else ``WORKSPACE/mlartifacts``."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: give a TCP port in 1..65535")
    if tracking_uri:
        uri = normalize(tracking_uri)
        if is_http(uri):
            raise UsageError(
                f"--tracking-uri {uri} is a tracking server already: open it in a browser, its "
                "UI is served there; give a sqlite:/// or database URI to serve a store"
            )
        path = sqlite_path(uri)
        if path is not None and not path.is_file():
            raise UsageError(f"--tracking-uri {uri}: no such file {path}")
        if artifacts_dir is not None:
            artifacts = Path(artifacts_dir).expanduser().resolve()
        elif path is not None:
            artifacts = path.parent / ARTIFACTS_DIR
        else:
            artifacts = workspace_root(workspace) / ARTIFACTS_DIR
        return UiServer(uri, artifacts, host, port)
    root = workspace_root(workspace)
    if not root.is_dir():
        raise UsageError(
            f"--workspace {root}: no such folder; run a sweep first or give the workspace "
            "folder that holds the sweeps"
        )
    return UiServer(default_tracking_uri(root), root / ARTIFACTS_DIR, host, port)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise UsageError(
                f"--port {port}: {host}:{port} is in use; pick another --port"
            ) from None


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (``mlflow server`` passes it to its uvicorn), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Stopped(Exception):
    """SIGTERM reached ``cryotune mlflow``."""


def run_ui(server: UiServer, on_ready: Callable[[UiServer], None]) -> int:
    """Run the server in the foreground until it exits, Ctrl-C or SIGTERM; returns 0 when
    stopped by the user, the server's exit code otherwise."""
    check_port_free(server.host, server.port)
    if server.artifacts_dir is not None:
        server.artifacts_dir.mkdir(parents=True, exist_ok=True)

    def stop_on_term(signum, frame):
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    process = subprocess.Popen(server.command(), env={**os.environ, **SERVER_ENVIRONMENT})
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(server.url):
            if process.poll() is not None:
                raise CryotuneError(
                    f"mlflow server exited with code {process.returncode} before answering "
                    f"{server.url}/health; see its output above"
                )
            if time.monotonic() > deadline:
                raise CryotuneError(
                    f"mlflow server did not answer {server.url}/health within "
                    f"{START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.5)
        on_ready(server)
        return process.wait()
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        with contextlib.suppress(KeyboardInterrupt, _Stopped):
            _stop(process)
        signal.signal(signal.SIGTERM, previous)
