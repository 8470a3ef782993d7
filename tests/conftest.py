"""Shared test setup: one torch thread (the CI machine is small and shared), per-user folders
(data, caches) redirected into each test's tmp folder so tests never touch ``~``, the real
``cryotune`` command run in a subprocess (to its end, or in the background), and the one smoke
sweep that the driver, tracking, query and API tests all read."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
CRYOTUNE = (sys.executable, "-m", "cryotune.cli")

# Fixtures that start real processes (the `cryotune` command, a Ray runtime, an MLflow or API
# server, PostgreSQL) or servers (the loopback checkpoint hosts): a test using one (or marked so)
# is an integration test, left out of `make check` and run by `make test`.
INTEGRATION_FIXTURES = frozenset(
    {
        "cryotune",
        "background",
        "cryotune_background",
        "smoke_sweep",
        "serve",
        "contract_store",
        "tracking_server",
        "postgres",
        "cluster",
        "loopback",
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


class SmokeSweep(NamedTuple):
    done: subprocess.CompletedProcess
    folder: Path  # the sweep's folder; its parent is the workspace, which holds the MLflow store
    args: tuple[str, ...]  # `cryotune ARGS` that ran it (add --resume to resume it)


SMOKE_NAME = "smoke-glid-caffe"


@pytest.fixture(scope="session")
def smoke_sweep(cryotune, tmp_path_factory) -> SmokeSweep:
    """`cryotune sweep glid caffe --config sweeps/smoke.yaml` (2 models x 4 trials a pair, the
    default MLflow store in the workspace) on synthetic GLID and CaFFe, run once for the session:
    a sweep takes a minute or more on two cores, and the driver, tracking, query and API tests
    only read it (or resume it, finished, to see that nothing changes)."""
    from cryotune.data.synth import write_synthetic

    base = tmp_path_factory.mktemp("smoke")
    for key in ("glid", "caffe"):
        write_synthetic(key, base / "data" / key, tiles=4, size=48, seed=0)
    args = ("sweep", "glid", "caffe", "--config", "sweeps/smoke.yaml")
    args += ("--data-root", str(base / "data"), "--workspace", str(base / "runs"))
    done = cryotune(*args, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return SmokeSweep(done, base / "runs" / SMOKE_NAME, args)


@pytest.fixture
def loopback():
    """Loopback stand-ins for the checkpoint hosts (``weights_hosts``): the Hugging Face hub,
    which also serves the HTTPS sources as a ``$CRYOTUNE_WEIGHTS_MIRROR``, and its CDN."""
    from weights_hosts import start_loopback

    state, servers = start_loopback()
    yield state
    for server in servers:
        server.shutdown()
        server.server_close()
