"""Shared test setup: one torch thread (the CI machine is small and shared), per-user folders
(data, caches) redirected into each test's tmp folder so tests never touch ``~``, the real
``cryotune`` command run in a subprocess (to its end, or in the background), and the one smoke
sweep that the driver, tracking, query and API tests all read."""

from __future__ import annotations

import contextlib
import json
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
        "in_terminal",
        "notebook_sweep",
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

    def start(*args: str, log: str | Path, **env: str) -> subprocess.Popen:
        return background(*CRYOTUNE, *args, log=log, **env)

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


NOTEBOOK = """
import json, sys
from pathlib import Path

import cryotune

workspace, data, spec, out = sys.argv[1:5]
settings = dict(config=spec, models="unet", data_root=data, workspace=workspace, name="nb-glid")
seen = {}

# Start in the background, follow its progress, stop it once a trial has ended.
handle = cryotune.start_sweep("glid", **settings)
started_running = not handle.done
while not handle.wait(timeout=0.5):
    progress = handle.progress()
    seen["progress"] = progress.model_dump(mode="json")
    if progress.trials.done >= 1:
        break
stopped = handle.stop()
seen["stopped"] = stopped.model_dump(mode="json")

# Continue it to its end.
handle = cryotune.start_sweep("glid", resume=True, **settings)
while not handle.wait(timeout=0.5):
    handle.progress()
result = handle.result()
seen["result"] = result.model_dump(mode="json")
seen["result_ok"] = result.ok
seen["log"] = Path(handle.log).read_text()

status = cryotune.status("nb-glid", workspace=workspace)
seen["status"] = status.model_dump(mode="json")
seen["status_frame"] = cryotune.to_frame(status).to_dict(orient="records")
seen["sweeps_frame"] = cryotune.to_frame(cryotune.sweeps(workspace=workspace)).to_dict("records")
best = cryotune.best("glid", workspace=workspace)
seen["best"] = [record.model_dump(mode="json") for record in best]
seen["best_frame"] = cryotune.to_frame(best).to_dict(orient="records")
seen["leaderboard_frame"] = cryotune.to_frame(cryotune.leaderboard("glid", workspace=workspace)).to_dict("records")

# The best trial as a model: score it on the validation tiles as the trainer does.
import torch
from cryotune.data.bands import map_bands
from cryotune.data.datasets import get_dataset
from cryotune.data.segmentation import SegmentationData, evaluation_loader
from cryotune.models.encoders import get_encoder_spec
from cryotune.train.trainer import Runtime, evaluate, open_splits

model = cryotune.load_best_model("glid", "unet", workspace=workspace, device="cpu")
config = best[0].config
dataset, encoder = get_dataset("glid"), get_encoder_spec("unet")
mapping = map_bands(dataset, encoder.bands, encoder.key, config.view)
splits = open_splits("glid", config.data_root, config.cache_dir, mapping.dataset_modalities)
val = evaluation_loader(SegmentationData(splits["val"], mapping, None, False))
batch = next(iter(val))
with torch.no_grad():
    logits = model(batch["inputs"])
seen["model"] = {
    "class": type(model).__name__,
    "is_module": isinstance(model, torch.nn.Module),
    "training": model.training,
    "inputs": list(model.encoder.modalities),
    "logits_shape": list(logits.shape),
    "tile_shape": list(batch["mask"].shape),
    "val_miou": evaluate(model, val, dataset, None, Runtime(torch.device("cpu")))["miou"],
}
Path(out).write_text(json.dumps(seen, default=str))
"""

NOTEBOOK_SPEC = """
# sweeps/smoke.yaml, with the first trial of each pair to reach the grace period stopped there
name: nb
models: [unet]
space:
  lr: {low: 1.0e-4, high: 3.0e-3}
sampler: {kind: tpe, seed: 0, startup_trials: 2}
scheduler: {kind: asha, grace_period: 1, reduction_factor: 2, max_epochs: 3, bootstrap_trials: 1}
budget: {trials: 3, retries: 1}
resources: {cpu: 1}
trial:
  weights: random
  batch_size: 4
  crop_size: 32
  max_steps_per_epoch: 2
  val_every: 1
"""


@pytest.fixture(scope="session")
def notebook_sweep(cli_env, tmp_path_factory) -> dict:
    """A user's notebook, run as a script: it starts a sweep of the U-Net on synthetic GLID in
    the background through ``cryotune``'s Python API, follows its progress, stops it after a
    trial, resumes it to its end, reads its status, records and leaderboard as typed objects and
    DataFrames, and loads the best trial as a model. Returns what it saw, with ``workspace``;
    the sweep's first trial is pruned (bootstrap_trials: 1)."""
    from cryotune.data.synth import write_synthetic

    base = tmp_path_factory.mktemp("notebook")
    write_synthetic("glid", base / "data" / "glid", tiles=4, size=48, seed=0)
    (base / "nb.yaml").write_text(NOTEBOOK_SPEC)
    (base / "notebook.py").write_text(NOTEBOOK)
    out = base / "seen.json"
    args = [str(base / "runs"), str(base / "data"), str(base / "nb.yaml"), str(out)]
    done = subprocess.run(
        [sys.executable, str(base / "notebook.py"), *args],
        capture_output=True,
        text=True,
        env=cli_env,
        cwd=base,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {**json.loads(out.read_text()), "workspace": base / "runs", "name": "nb-glid"}


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
