"""`cryotune sweep --resume` after SIGKILL of the driver: nothing finished is lost or re-run."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

NAME = "killed"
BUDGET = 4  # per pair: two finish before the kill, and trials are still left to run
SPEC = {
    "name": "resume-test",
    "models": ["unet"],
    "space": {"lr": {"low": 1e-4, "high": 3e-3}},
    "sampler": {"startup_trials": 2},
    "scheduler": {"grace_period": 1, "reduction_factor": 2, "max_epochs": 4},
    "budget": {"trials": BUDGET},
    "trial": {
        "weights": "random",
        "batch_size": 4,
        "crop_size": 32,
        "max_steps_per_epoch": 2,
        "val_every": 1,
    },
}


def _finished(sweep_dir: Path) -> dict[tuple[str, int], dict]:
    """Every finished study trial, keyed by (study, number), with what must never change."""
    path = sweep_dir / "optuna.db"
    if not path.exists():
        return {}
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    out = {}
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        orphaned = set(study.user_attrs.get("orphaned_trials", []))
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in orphaned:
                out[(name, t.number)] = {
                    "state": t.state,
                    "value": t.value,
                    "intermediate": dict(t.intermediate_values),
                    "completed": t.datetime_complete,
                    "tune_trial_id": t.user_attrs.get("tune_trial_id"),
                }
    return out


def _running(sweep_dir: Path) -> list[optuna.trial.FrozenTrial]:
    path = sweep_dir / "optuna.db"
    if not path.exists():
        return []
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    return [
        t
        for name in optuna.get_all_study_names(storage)
        for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        if t.state == TrialState.RUNNING
    ]


def _mid_trial(sweep_dir: Path) -> optuna.trial.FrozenTrial | None:
    """A trial that has reported an epoch and is old enough to be in Tune's snapshot."""
    for trial in _running(sweep_dir):
        age = (datetime.now() - trial.datetime_start).total_seconds()
        if trial.intermediate_values and age > 3 and "tune_trial_id" in trial.user_attrs:
            return trial
    return None


def interrupted_study(trial: optuna.trial.FrozenTrial, finished: dict) -> str:
    tune_id = trial.user_attrs["tune_trial_id"]
    return next(name for (name, _), t in finished.items() if t["tune_trial_id"] == tune_id)


def _epochs_run(trial_dir: Path) -> list[int]:
    log = trial_dir / "epochs.jsonl"
    return [json.loads(ln)["epoch"] for ln in log.read_text().splitlines()] if log.exists() else []


def test_resume_after_sigkill_keeps_finished_trials_and_completes_the_sweep(
    cryotune, cryotune_background, data_root, tmp_path
):
    spec = tmp_path / "resume.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    workspace = tmp_path / "runs"
    sweep_dir = workspace / NAME
    args = ["sweep", "glid", "caffe", "--config", str(spec), "--name", NAME]
    args += ["--data-root", str(data_root), "--workspace", str(workspace)]

    driver = cryotune_background(*args, log=tmp_path / "first.log")
    deadline = time.monotonic() + 240
    interrupted = None
    while time.monotonic() < deadline and driver.poll() is None:
        interrupted = _mid_trial(sweep_dir) if len(_finished(sweep_dir)) >= 2 else None
        if interrupted is not None:
            break
        time.sleep(0.2)
    assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = _finished(sweep_dir)
    epochs_before = {
        key: _epochs_run(sweep_dir / "trials" / t["tune_trial_id"]) for key, t in before.items()
    }
    interrupted_dir = sweep_dir / "trials" / interrupted.user_attrs["tune_trial_id"]
    interrupted_epochs = _epochs_run(interrupted_dir)
    assert interrupted_epochs and len(before) < 2 * BUDGET

    resumed = cryotune(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = _finished(sweep_dir)
    for key, trial in before.items():
        assert after[key] == trial, key  # kept as it was: same state, values, completion time
        ran = _epochs_run(sweep_dir / "trials" / trial["tune_trial_id"])
        assert ran == epochs_before[key], key  # and not trained again
    for pair in ("glid", "caffe"):
        study = [t for (name, _), t in after.items() if name == f"{NAME}/{pair}/unet"]
        assert len(study) == BUDGET, pair
        record = json.loads((sweep_dir / "records" / f"{pair}__unet.json").read_text())
        assert record["status"] == "complete" and record["trials"]["total"] == BUDGET
    assert _running(sweep_dir) == []

    # The trial interrupted mid-way continued from its last epoch instead of starting over.
    continued = _epochs_run(interrupted_dir)
    assert continued[: len(interrupted_epochs)] == interrupted_epochs
    assert continued == sorted(set(continued)), continued
    ended = after[(interrupted_study(interrupted, after), interrupted.number)]
    assert ended["state"] in (TrialState.COMPLETE, TrialState.PRUNED)
    # Its study holds every epoch it trained, those around the kill included, with no gap.
    stored = sorted(ended["intermediate"])
    assert stored == (
        continued if ended["state"] == TrialState.COMPLETE else continued[: len(stored)]
    )
    for trial_dir in (sweep_dir / "trials").iterdir():
        ran = _epochs_run(trial_dir)
        assert ran == sorted(set(ran)), trial_dir.name

    # Tune's state agrees with the studies: every trial ended, none unknown to a study.
    state_file = sorted((sweep_dir / "tune").glob("experiment_state-*.json"))[-1]
    trials = [json.loads(t[0]) for t in json.loads(state_file.read_text())["trial_data"]]
    assert {t["status"] for t in trials} <= {"TERMINATED", "ERROR"}
    assert {t["trial_id"] for t in trials} == {t["tune_trial_id"] for t in after.values()}

    status = cryotune("status", NAME, "--workspace", str(workspace), "--json")
    assert json.loads(status.stdout)[0]["state"] == "finished"
