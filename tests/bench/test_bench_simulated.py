"""The scale benchmark's simulated trial, through the sweep's runner seam: a real TrialResult and
an on_epoch per validated epoch as ``run_trial`` gives, so records, MLflow and status see normal
trials, while no data is read and no model is built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.simulated import run_trial
from cryotune.config import TrialConfig
from cryotune.documents.trial_result import EpochReport, TrialResult
from cryotune.sweep.trainable import RUNNER_ENV, trial_runner

REPO = Path(__file__).resolve().parents[2]


def _config(**fields) -> TrialConfig:
    return TrialConfig(
        **{
            "dataset": "glid",
            "model": "unet",
            "lr": 1e-4,
            "epochs": 6,
            "weights": "random",
            "val_every": 1,
        }
        | fields
    )


def test_it_reports_every_validated_epoch_and_returns_a_trial_result(tmp_path):
    reports: list[EpochReport] = []
    started: list[dict] = []
    result = run_trial(
        _config(val_every=2),
        on_epoch=reports.append,
        checkpoint_dir=tmp_path,
        on_start=started.append,
    )
    assert isinstance(result, TrialResult) and started
    assert [r.epoch for r in reports] == [2, 4, 6] == [e.epoch for e in result.history]
    assert result.best_val_miou == max(r.val_miou for r in reports)
    assert len(reports[0].per_class_iou) == 2  # GLID's classes
    assert TrialResult.parse(json.loads(result.to_json()), "a copy") == result


def test_a_good_learning_rate_learns_more_than_a_poor_one():
    good = run_trial(_config(lr=1e-4, epochs=20)).best_val_miou
    poor = run_trial(_config(lr=1e-6, epochs=20)).best_val_miou
    assert good > poor + 10


def test_a_resumed_trial_continues_after_its_last_epoch(tmp_path):
    config = _config(epochs=3)
    first = run_trial(config.model_copy(update={"epochs": 2}), checkpoint_dir=tmp_path)
    reports: list[EpochReport] = []
    resumed = run_trial(config, on_epoch=reports.append, checkpoint_dir=tmp_path)
    assert [r.epoch for r in reports] == [3]
    assert [e.epoch for e in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history


def test_the_seam_resolves_the_named_runner_and_names_a_bad_one():
    assert trial_runner({RUNNER_ENV: "bench.simulated:run_trial"}) is run_trial
    with pytest.raises(RuntimeError, match=RUNNER_ENV):
        trial_runner({RUNNER_ENV: "bench.simulated:no_such_runner"})


def test_a_sweep_of_simulated_trials_reads_like_any_other(cli_env, tmp_path):
    from cryotune.data.synth import write_synthetic
    from cryotune.query.service import open_query

    write_synthetic("glid", tmp_path / "data" / "glid", tiles=2, size=32, seed=0)
    env = {**cli_env, RUNNER_ENV: "bench.simulated:run_trial", "PYTHONPATH": str(REPO)}
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--models", "unet,vit"]
    args += ["--trials", "3", "--name", "simulated", "--data-root", str(tmp_path / "data")]
    args += ["--workspace", str(tmp_path / "runs")]
    done = subprocess.run(
        [sys.executable, "-m", "cryotune.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    workspace = open_query(tmp_path / "runs").sweep("simulated")
    store = open_query(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    from_mlflow = store.sweep("simulated")
    assert workspace.state == from_mlflow.state == "finished"
    assert workspace.trials.done == from_mlflow.trials.done == 6
    board = store.leaderboard("glid")
    assert {e.model for e in board.entries} == {"unet", "vit"}
    assert all(e.config.lr == pytest.approx(e.lr) for e in board.entries)
    # The driver decodes the tile caches before any trial, whatever the runner; the trials
    # drew curves and saved no model.
    trials = [p for p in (tmp_path / "runs" / "simulated" / "trials").iterdir() if p.is_dir()]
    assert len(trials) == 6 and all((t / "simulated.json").is_file() for t in trials)
    assert not [p for t in trials for p in t.glob("*.pt")]
