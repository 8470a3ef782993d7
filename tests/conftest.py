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

    def start(*args: str, log: str | Path, **env: str) -> subprocess.Popen:
        return background(*CRYOTUNE, *args, log=log, **env)

    return start


@pytest.fixture
def planned_sweeps() -> Callable[..., Path]:
    """``planned_sweeps(root, *names)``: sweeps planned in workspace ``root`` (a plan of one
    glid/unet pair each, written by the workspace class) that never ran; returns ``root``."""
    from cryotune.documents.plan import PlannedPair, SweepPlanDocument
    from cryotune.sweep.workspace import SweepWorkspace

    def plan(root: Path, *names: str) -> Path:
        for name in names:
            pair = PlannedPair(
                key="glid/unet",
                dataset="glid",
                model="unet",
                study_name=f"{name}/glid/unet",
                trials=2,
                space={},
                base_config={},
            )
            document = SweepPlanDocument(
                name=name,
                datasets=["glid"],
                pairs=[pair.key],
                spec={},
                weights="random",
                data_roots={},
                pair_plans=[pair],
            )
            SweepWorkspace.at(root, name).create(document)
        return root

    return plan
