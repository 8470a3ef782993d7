"""The driver lock of a sweep, held by a real second process: a second driver of the sweep is
refused before anything is opened or computed, readers see the sweep running, and the lock dies
with a SIGKILLed driver."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import socket
import threading
from pathlib import Path

import pytest

from cryotune.errors import UsageError
from cryotune.files import lock_is_held
from cryotune.query.workspace import WorkspaceSource
from cryotune.sweep.driver import SweepRequest, prepare, run_sweep
from cryotune.sweep.workspace import SweepWorkspace

NAME = "held"
SMOKE = Path(__file__).resolve().parents[2] / "sweeps" / "smoke.yaml"


def _drive(root: str, name: str, ready) -> None:
    """Stand in for a running driver: hold the sweep's driver lock until killed."""
    with SweepWorkspace.at(root, name).driver_lock():
        ready.set()
        threading.Event().wait(300)


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def held(data_root, tmp_path):
    """A planned sweep whose driver lock another process holds: (request, workspace, holder)."""
    request = SweepRequest(
        datasets=["glid"],
        config=str(SMOKE),
        models=["unet"],
        name=NAME,
        workspace=str(tmp_path / "runs"),
        data_root=[str(data_root)],
    )
    _, workspace = prepare(request)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_drive, args=(str(workspace.root), NAME, ready))
    holder.start()
    assert ready.wait(60)
    yield dataclasses.replace(request, resume=True), workspace, holder
    if holder.is_alive():
        os.kill(holder.pid, signal.SIGKILL)
    holder.join(60)


def test_a_second_driver_is_refused_before_anything_is_opened(held):
    request, workspace, holder = held
    before = _listing(workspace.root)
    with pytest.raises(UsageError) as refused:
        run_sweep(request)
    message = str(refused.value)
    assert f"sweep '{NAME}' is being run by pid {holder.pid} on {socket.gethostname()}" in message
    assert "wait for it or stop it: a second --resume would race it" in message
    assert _listing(workspace.root) == before
    assert holder.is_alive()


def test_readers_see_the_sweep_running_until_its_driver_is_killed(held):
    _, workspace, holder = held
    assert workspace.driver_owner()["pid"] == holder.pid
    assert WorkspaceSource(workspace.root).sweep(NAME).state == "running"
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(60)
    assert workspace.driver_owner() is None
    assert WorkspaceSource(workspace.root).sweep(NAME).state == "interrupted"
    with workspace.driver_lock():
        assert json.loads(workspace.driver_file.read_text())["pid"] == os.getpid()
        assert workspace.driver_owner() is None  # this process's own driver
    assert not workspace.driver_file.exists()


def test_the_cli_refuses_a_second_resume_with_the_message(held, cryotune, data_root):
    _, workspace, holder = held
    resumed = cryotune(
        *["sweep", "glid", "--config", str(SMOKE), "--models", "unet", "--name", NAME],
        *["--workspace", str(workspace.root), "--data-root", str(data_root), "--resume"],
    )
    assert resumed.returncode == 2, resumed.stderr[-3000:]
    assert f"is being run by pid {holder.pid}" in resumed.stderr
    assert "a second --resume would race it" in resumed.stderr


def _probe(lock: str, probing, stop) -> None:
    while not stop.is_set():
        lock_is_held(lock)
        probing.set()


def test_a_reader_probing_the_lock_never_fails_a_starting_driver(tmp_path):
    workspace = SweepWorkspace.at(tmp_path, "probed")
    workspace.dir.mkdir(parents=True)
    workspace.driver_lock_file.touch()
    context = multiprocessing.get_context("spawn")
    probing, stop = context.Event(), context.Event()
    reader = context.Process(target=_probe, args=(str(workspace.driver_lock_file), probing, stop))
    reader.start()
    try:
        assert probing.wait(60)
        for _ in range(200):
            with workspace.driver_lock():
                pass
    finally:
        stop.set()
        reader.join(60)
    assert reader.exitcode == 0
