"""A whole smoke sweep through `cryotune sweep`: 2 datasets x 2 models on a real Ray runtime."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

PAIRS = ["glid/unet", "glid/ssl4eo_mae", "caffe/unet", "caffe/ssl4eo_mae"]
NAME = "smoke-glid-caffe"


@pytest.fixture(scope="module")
def smoke(smoke_sweep):
    """sweeps/smoke.yaml on synthetic GLID and CaFFe: the session's smoke sweep."""
    assert smoke_sweep.folder.name == NAME
    return smoke_sweep


def _studies(sweep_dir: Path) -> dict[str, optuna.Study]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    return {pair: optuna.load_study(study_name=f"{NAME}/{pair}", storage=storage) for pair in PAIRS}


def test_the_sweep_completes_every_pair_and_prints_the_best_configs(smoke):
    done, sweep_dir, _ = smoke
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("dataset"))) :]
    for pair in PAIRS:
        dataset, model = pair.split("/")
        assert any(ln.split()[:2] == [dataset, model] for ln in table), done.stdout
        assert f"cryotune train {dataset} {model} --lr " in done.stdout
    # Quiet when not on a terminal: one line per trial, no Tune tables.
    assert sum(" trial " in ln for ln in lines) == 16
    assert "Trial status" not in done.stdout and "Configuration for experiment" not in done.stdout


def test_each_study_searched_its_space_and_pruned_trials_are_pruned(smoke):
    _, sweep_dir, _ = smoke
    pruned = 0
    for pair, study in _studies(sweep_dir).items():
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == 4 and all(t.state.is_finished() for t in trials), pair
        for trial in trials:
            steps = sorted(trial.intermediate_values)
            if trial.state == TrialState.PRUNED:
                pruned += 1
                assert steps and steps[-1] < 3, (pair, trial.number, steps)
                assert trial.value == trial.intermediate_values[steps[-1]]
            elif trial.state == TrialState.COMPLETE:
                assert steps == [1, 2, 3], (pair, trial.number, steps)
                assert trial.value == max(trial.intermediate_values.values())
                assert trial.user_attrs["result"]["test_metrics"]["miou"] >= 0
        depths = {t.params.get("depth") for t in trials}
        if pair.endswith("unet"):
            assert depths == {None}  # a from-scratch baseline trains every block
        else:
            assert depths <= {0, 6, 12}
    assert pruned >= 1


def test_records_hold_what_repeats_and_audits_the_best_trial(smoke):
    _, sweep_dir, _ = smoke
    studies = _studies(sweep_dir)
    for pair in PAIRS:
        dataset, model = pair.split("/")
        record = json.loads((sweep_dir / "records" / f"{dataset}__{model}.json").read_text())
        best = studies[pair].best_trial
        assert record["status"] == "complete"
        assert record["ids"]["study_trial"] == best.number
        assert record["best"]["val_miou"] == pytest.approx(best.value)
        assert len(record["best"]["per_class_iou"]) == (2 if dataset == "glid" else 4)
        assert record["best"]["test_metrics"]["miou"] >= 0
        config = record["config"]
        assert (config["dataset"], config["model"], config["epochs"]) == (dataset, model, 3)
        assert config["lr"] == pytest.approx(best.params["lr"])
        assert record["weights"]["sha256"] == "random"
        assert set(record["data"]["fingerprints"]) >= {"train", "val"}
        assert record["seeds"]["trial"] == 234 and "git_commit" in record
        assert record["search_space"]["searched"]["lr"]["log"] is True
        assert record["trials"]["complete"] + record["trials"]["pruned"] == 4
        assert record["seconds"]["pair_wall"] > 0
        trial_dir = sweep_dir / "trials" / record["ids"]["tune_trial_id"]
        assert Path(record["checkpoint"]) == trial_dir / "best.pt"
        assert not (trial_dir / "last.pt").exists()
    kept = sorted(p.parent.name for p in (sweep_dir / "trials").glob("*/best.pt"))
    assert len(kept) == len(PAIRS)


def test_status_and_best_read_the_workspace(smoke, cryotune):
    _, sweep_dir, _ = smoke
    status = cryotune("status", NAME, "--workspace", str(sweep_dir.parent), "--json")
    assert status.returncode == 0, status.stderr
    (sweep,) = json.loads(status.stdout)
    assert sweep["name"] == NAME and sweep["state"] == "finished"
    assert [p["key"] for p in sweep["pairs"]] == PAIRS
    assert all(p["done"] == 4 and p["running"] == 0 and p["finished"] for p in sweep["pairs"])

    best = cryotune("best", "glid", "--workspace", str(sweep_dir.parent), "--json")
    assert best.returncode == 0, best.stderr
    records = json.loads(best.stdout)
    assert {r["model"] for r in records} == {"unet", "ssl4eo_mae"}
    assert records[0]["best"]["val_miou"] >= records[1]["best"]["val_miou"]
    one = cryotune("best", "caffe", "--model", "unet", "--workspace", str(sweep_dir.parent))
    assert one.returncode == 0 and "best: cryotune train caffe unet" in one.stdout


def test_an_existing_sweep_name_needs_resume(smoke, cryotune):
    done, sweep_dir, args = smoke
    again = cryotune(*args)
    assert again.returncode == 2
    assert f"sweep '{NAME}' already exists" in again.stderr and "--resume" in again.stderr
    resumed = cryotune(*args, "--resume")  # a finished sweep resumes to its table at once
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "cryotune train glid unet" in resumed.stdout
    changed = cryotune(*args, "--resume", "--trials", "9")
    assert changed.returncode == 2 and "budget.trials" in changed.stderr


def test_the_repeat_command_reproduces_the_best_trial(smoke, cryotune, tmp_path):
    _, sweep_dir, _ = smoke
    record = json.loads((sweep_dir / "records" / "glid__unet.json").read_text())
    args = shlex.split(record["repeat_command"])
    assert args[:2] == ["cryotune", "train"] and record["repeat_command_lacks"] == []
    done = cryotune(*args[1:], "--out", str(tmp_path / "again"))
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["runs"][0]["best_val_miou"] == pytest.approx(record["best"]["val_miou"])


def test_pairs_run_together_rather_than_one_after_another(smoke):
    _, sweep_dir, _ = smoke
    studies = _studies(sweep_dir)
    first_starts = [min(t.datetime_start for t in s.trials) for s in studies.values()]
    last_ends = [max(t.datetime_complete for t in s.trials) for s in studies.values()]
    assert max(first_starts) < min(last_ends)


def test_tunes_snapshot_period_grows_with_the_sweep_past_2_s():
    from cryotune.sweep.driver import snapshot_period_s

    assert snapshot_period_s(8) == snapshot_period_s(200) == 2.0
    assert snapshot_period_s(2000) == 20.0


def test_the_driver_environment_lasts_the_sweep_and_keeps_the_users_values(monkeypatch):
    import os

    from cryotune.sweep.driver import driver_environment

    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "7")
    with driver_environment(5000):
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "7"
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ  # a later Tuner keeps its logs
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "7"


def test_the_driver_leaves_every_pairs_last_status_in_the_live_file(smoke):
    """What readers of a running sweep see in place of its studies (cryotune.query)."""
    from cryotune.sweep.live_status import read_live_status
    from cryotune.sweep.status import summarize_study

    _, sweep_dir, _ = smoke
    live = read_live_status(sweep_dir / "live.json")
    assert sorted(live) == sorted(PAIRS)
    for pair, study in _studies(sweep_dir).items():
        expected = summarize_study(study, pair, f"{NAME}/{pair}", 4, finished=True)
        assert live[pair].done == expected.done == 4 and live[pair].running == 0
        assert (live[pair].best_trial, live[pair].best_lr) == (
            expected.best_trial,
            expected.best_lr,
        )
