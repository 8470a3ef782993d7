"""Shared test setup: one torch thread (the CI machine is small and shared), per-user folders
(data, caches) redirected into each test's tmp folder so tests never touch ``~``, and the real
``cryotune`` command run in a subprocess (to its end, or in the background)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
CRYOTUNE = (sys.executable, "-m", "cryotune.cli")

# Fixtures that start real processes (the `cryotune` command, a Ray runtime, an MLflow or API
# server, PostgreSQL): a test using one (or marked so) is an integration test, left out of
# `make check` and run by `make test`.
INTEGRATION_FIXTURES = frozenset(
    {
        "cryotune",
        "in_terminal",
        "background",
        "cryotune_background",
        "api_sweep",
        "serve",
        "finished_sweep",
        "contract_store",
        "tracking_server",
        "tracked_sweep",
        "postgres",
        "cluster",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs the cryotune command, a Ray runtime, a server or a database "
        "(make test only)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for var in ("CRYOTUNE_DATA", "CRYOTUNE_CACHE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """The environment of CLI subprocesses: no user settings of cryotune or MLflow, one thread,
    no GPU, a home of its own."""
    home = tmp_path_factory.mktemp("cli-home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRYOTUNE_", "MLFLOW_")) or k == "MLFLOW_ALLOW_FILE_STORE"
    }
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
            [*CRYOTUNE, *args],
            capture_output=True,
            text=True,
            env=cli_env,
            cwd=REPO,
            timeout=timeout,
        )

    return run


@pytest.fixture
def background(cli_env, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start a command in its own process group without waiting, its output in ``log`` (a path,
    or a name in the test's tmp folder); at teardown whatever is left of that group is killed."""
    started: list[subprocess.Popen] = []

    def start(*args: str, log: str | Path, **env: str) -> subprocess.Popen:
        process = subprocess.Popen(
            list(args),
            stdout=(tmp_path / log).open("w"),
            stderr=subprocess.STDOUT,
            env={**cli_env, **env},
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


@pytest.fixture
def cryotune_background(background) -> Callable[..., subprocess.Popen]:
    """Start ``cryotune ARGS`` in the background (the driver and its embedded Ray cluster)."""

    def start(*args: str, log: str | Path) -> subprocess.Popen:
        return background(*CRYOTUNE, *args, log=log)

    return start


@pytest.fixture(scope="session")
def in_terminal(cli_env) -> Callable[..., str]:
    """Run a command on a terminal (a pseudo-terminal, as an interactive shell gives it) to its
    end; returns what it showed there, control codes included."""
    import pty

    def run(*args: str, timeout: float = 300, **env: str) -> str:
        parent, child = pty.openpty()
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=child,
            stderr=child,
            env={**cli_env, "TERM": "xterm-256color", "COLUMNS": "160", **env},
            cwd=REPO,
        )
        os.close(child)
        shown = b""
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the command ended and its terminal closed
                break
            if not chunk:
                break
            shown += chunk
        process.wait(timeout=timeout)
        os.close(parent)
        return shown.decode(errors="replace")

    return run
