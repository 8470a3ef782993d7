"""Fixtures for the API tests: a real finished sweep (the session's smoke sweep), a command for
sweeps of their own, and real `cryotune serve` processes (uvicorn on a free loopback port)
talked to over HTTP."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def api_data(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("api-data")
    write_synthetic("glid", root / "glid", tiles=4, size=48, seed=0)
    return root


@pytest.fixture(scope="session")
def sweep_command(api_data) -> Callable[..., list[str]]:
    """`cryotune sweep` arguments for a smoke sweep of MODELS on the synthetic GLID."""

    def args(workspace: Path, name: str, models: str, trials: int) -> list[str]:
        return [
            "sweep",
            "glid",
            "--config",
            "sweeps/smoke.yaml",
            "--models",
            models,
            "--trials",
            str(trials),
            "--name",
            name,
            "--data-root",
            str(api_data),
            "--workspace",
            str(workspace),
        ]

    return args


@pytest.fixture(scope="session")
def api_sweep(smoke_sweep) -> Path:
    """The folder of a finished sweep, the session's smoke sweep: two models on synthetic GLID
    and CaFFe, four trials a pair (its parent is the workspace, with the MLflow store)."""
    return smoke_sweep.folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    log: Path


@pytest.fixture(scope="session")
def serve(cli_env, tmp_path_factory) -> Iterator[Callable[..., Server]]:
    """Start `cryotune serve ARGS` on a free port, wait until /health answers on loopback, and
    return its base URL and output; every server is stopped at the end of the session."""
    started: list[subprocess.Popen] = []
    logs = tmp_path_factory.mktemp("serve-logs")

    def start(*args: str, token: str | None = None) -> Server:
        port = free_port()
        env = dict(cli_env)
        if token is not None:
            env["CRYOTUNE_API_TOKEN"] = token
        log = logs / f"serve-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "cryotune.cli", "serve", "--port", str(port), *args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return Server(url, log)
            time.sleep(0.1)
        raise AssertionError(f"cryotune serve did not answer in 60 s: {log.read_text()}")

    yield start
    for process in started:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
