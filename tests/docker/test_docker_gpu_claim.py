"""gpu-claim: replicas of a scaled worker on one host each get their own GPUs, and give them back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "gpu_claim.py"
REPORT_AND_WAIT = (
    "import os, sys; print(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), flush=True); "
    "sys.stdin.read()"
)


def replica(claims: Path, each: str, devices: int) -> subprocess.Popen:
    """A worker replica whose command prints the GPUs it was given and runs until stdin closes."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--each", each, "--claims", str(claims)]
        + ["--devices", str(devices), "--", sys.executable, "-c", REPORT_AND_WAIT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def gpus_of(process: subprocess.Popen) -> str:
    lines = [process.stdout.readline().strip() for _ in range(2)]
    assert lines[0].startswith("gpu-claim: this replica has GPU(s)"), lines
    return lines[1]


def stop(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(30)


def test_replicas_get_disjoint_gpus_and_a_stopped_replica_frees_its_own(tmp_path):
    first, second = replica(tmp_path, "2", 4), None
    try:
        assert gpus_of(first) == "0,1"
        second = replica(tmp_path, "2", 4)
        assert gpus_of(second) == "2,3"
        third = replica(tmp_path, "2", 4)
        _, err = third.communicate(timeout=30)
        assert third.returncode == 1
        assert "no 2 free GPU(s) among the 4" in err and "at most 2 per host" in err
        stop(first)
        again = replica(tmp_path, "2", 4)
        assert gpus_of(again) == "0,1"
        stop(again)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                stop(process)


def test_all_claims_nothing_and_runs_the_command_with_every_gpu(tmp_path):
    process = replica(tmp_path, "all", 0)
    out, _ = process.communicate("", timeout=30)
    assert process.returncode == 0 and out.strip() == "unset"
    assert not list(tmp_path.iterdir())


def test_too_few_gpus_names_the_device_reservation(tmp_path):
    process = replica(tmp_path, "1", 0)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "sees 0 GPU(s)" in err and "deploy.resources.reservations.devices" in err


def test_bad_each_and_missing_command_are_usage_errors(tmp_path):
    for args, message in (
        (["--each", "0", "--", "true"], "give a positive number of GPUs or 'all', got 0"),
        (["--each", "1"], "give the command to run after --"),
    ):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
