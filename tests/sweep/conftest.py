"""Fixtures for the sweep tests: tiny synthetic GLID and CaFFe, and the CLI in a subprocess.

Sweeps run through the real ``cryotune`` command (a real embedded Ray cluster, real Optuna
storage, the real trainer), one CPU thread per trial, never a GPU.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    from cryotune.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("sweep-data")
    for key in ("glid", "caffe"):
        write_synthetic(key, root / key, tiles=4, size=48, seed=0)
    return root


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOTUNE_")}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def cryotune(cli_env) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``cryotune ARGS`` to its end in the repository root."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cryotune.cli", *args],
            capture_output=True,
            text=True,
            env=cli_env,
            cwd=REPO,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cryotune_background(cli_env) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``cryotune ARGS`` in its own process group without waiting; at teardown whatever
    is left of that group (the driver, its embedded Ray cluster) is killed."""
    started: list[subprocess.Popen] = []

    def start(*args: str, log: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "cryotune.cli", *args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=cli_env,
            cwd=REPO,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
