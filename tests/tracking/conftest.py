"""Fixtures for the tracking tests: tiny synthetic GLID, the CLI in a subprocess, a real
``mlflow server`` on a free loopback port (the tracked smoke sweep is the session's, tests/conftest.py).

As in tests/sweep, sweeps run through the real ``cryotune`` command (embedded Ray, real Optuna
storage, the real trainer), one CPU thread per trial.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def port() -> Callable[[], int]:
    """A free loopback TCP port, each call."""
    return free_port


@pytest.fixture(scope="session")
def wait() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait(condition, timeout, what)``: poll until true, failing the test on timeout."""
    return wait_until


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("tracking-data")
    write_synthetic("glid", root / "glid", tiles=4, size=48, seed=0)
    return root


@dataclass
class TrackingServer:
    """A lean ``mlflow server`` over a sqlite store, which a test may kill and start again."""

    store: Path
    port: int
    start_process: Callable[..., subprocess.Popen]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--workers", "1"]
        command += ["--backend-store-uri", f"sqlite:///{self.store / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(self.store / "mlartifacts")]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = self.start_process(
            *command,
            log=f"mlflow-server-{time.time():.0f}.log",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        )
        wait_until(lambda: answers(self.url), 90, f"mlflow server on {self.url}")

    def kill(self) -> None:
        """Gone at once, as a crashed or unplugged server: SIGKILL to its process group."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        wait_until(lambda: not answers(self.url), 10, "the server to stop answering")


@pytest.fixture
def tracking_server(background, tmp_path) -> TrackingServer:
    store = tmp_path / "server-store"
    store.mkdir()
    server = TrackingServer(store, free_port(), background)
    server.start()
    return server
