"""`cryotune train` through the real CLI in a subprocess: outputs, exit codes, error lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryotune.data.synth import write_synthetic

pytestmark = pytest.mark.integration  # runs the real `cryotune` command


def _cryotune(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CRYOTUNE_DATA", "CRYOTUNE_WEIGHTS")}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
    )
    return subprocess.run(
        [sys.executable, "-m", "cryotune.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def glid(tmp_path_factory) -> Path:
    return write_synthetic(
        "glid", tmp_path_factory.mktemp("cli") / "glid", tiles=4, size=32, seed=0
    )


def test_train_writes_history_metrics_and_summary(glid, tmp_path):
    out = tmp_path / "run"
    proc = _cryotune(
        "train", "glid", "unet", "--data-root", str(glid), "--cache-dir", str(tmp_path / "cache"),
        "--epochs", "2", "--batch-size", "2", "--crop-size", "16", "--max-steps-per-epoch", "2",
        "--lr", "1e-3", "--device", "cpu", "--seeds", "2", "--out", str(out), "--val-every", "1",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "seeds 234, 235" in proc.stderr
    assert "validated every 1 epochs" in proc.stdout
    assert "departures from Cryo-Bench: val_every=1 (Cryo-Bench: 5" in proc.stdout
    assert "mean ± std" in proc.stdout and "weights: random" in proc.stdout
    assert "filled bands: none" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [234, 235] and summary["weights"] == "random"
    assert [r["seed"] for r in summary["runs"]] == [234, 235]
    for run in summary["runs"]:
        trial = json.loads((out / run["file"]).read_text())
        assert trial["config"]["seed"] == run["seed"]
        assert [h["epoch"] for h in trial["history"]] == [1, 2]
        assert trial["best_val_miou"] == run["best_val_miou"]
        assert trial["test_metrics"]["miou"] == run["test_miou"]
        assert len(trial["test_metrics"]["iou"]) == 2
    mean = sum(r["best_val_miou"] for r in summary["runs"]) / 2
    assert summary["val_miou_mean"] == pytest.approx(mean)


def test_unknown_model_is_a_one_line_usage_error(tmp_path):
    proc = _cryotune("train", "glid", "no_such_model", tmp_path=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_model" in lines[0] and "unet" in lines[0]


@pytest.mark.parametrize("lr", ["-1", "abc", "0"])
def test_bad_lr_is_a_usage_error(lr, tmp_path):
    proc = _cryotune("train", "glid", "unet", f"--lr={lr}", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "--lr" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_weight_decay_is_a_flag_and_repeat_commands_carry_it(tmp_path):
    from cryotune.sweep.records import repeat_command

    proc = _cryotune("train", "glid", "unet", "--weight-decay=-0.1", tmp_path=tmp_path)
    assert proc.returncode == 2 and "--weight-decay" in proc.stderr
    config = {"dataset": "glid", "model": "unet", "lr": 1e-3, "weight_decay": 0.01}
    command, lacks = repeat_command(config)
    assert "--weight-decay 0.01" in command and "weight_decay" not in lacks


def test_missing_data_root_names_the_paths_tried(tmp_path):
    missing = tmp_path / "nowhere"
    proc = _cryotune("train", "glid", "unet", "--data-root", str(missing), tmp_path=tmp_path)
    assert proc.returncode == 1
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr

    proc = _cryotune("train", "glid", "unet", tmp_path=tmp_path)
    assert proc.returncode == 1
    assert str(tmp_path / "xdg" / "cryotune" / "data" / "glid") in proc.stderr


def test_missing_weights_name_the_file_source_and_fetch_command(glid, tmp_path):
    proc = _cryotune(
        "train", "glid", "ssl4eo_mae", "--data-root", str(glid), "--device", "cpu",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "B13_vits16_mae_0099_ckpt.pth" in proc.stderr
    assert "fetch it with `cryotune weights fetch ssl4eo_mae:optical`" in proc.stderr
    assert "drive.google.com" in proc.stderr and "--weights random" in proc.stderr
