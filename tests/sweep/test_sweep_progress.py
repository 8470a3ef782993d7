"""What the sweep's display says as trials end: each trial's best validation mIoU with the epoch
that reached it (not the last epoch's score), and the pair's best with its trial and epoch, read
from a real Optuna study the way the display reads it."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from cryotune.sweep.progress import trial_line
from cryotune.sweep.status import STATUS_HEADERS, status_rows, summarize_study

SPACE = {"lr": FloatDistribution(1e-5, 1e-2, log=True)}


def _ended(study: optuna.Study, epochs: list[float], state: TrialState) -> None:
    trial = study.ask(fixed_distributions=SPACE)
    for epoch, value in enumerate(epochs, start=1):
        trial.report(value, epoch)
    value = max(epochs) if state == TrialState.COMPLETE else None
    study.tell(trial, value, state=state)


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    """Trial 0 peaked at epoch 2 and ended lower; trial 1 was pruned after one epoch; trial 2
    runs."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s/glid/unet", storage=storage, direction="maximize")
    _ended(study, [29.09, 40.65, 38.72], TrialState.COMPLETE)
    _ended(study, [19.21], TrialState.PRUNED)
    study.ask(fixed_distributions=SPACE)
    return study


def test_a_trial_line_gives_the_best_epoch_not_only_the_last(study):
    pair = summarize_study(study, "glid/unet", "s/glid/unet", 4, finished=False)
    first, pruned = study.get_trials(deepcopy=False)[:2]
    line = trial_line("glid/unet", 0, "complete", first, pair)
    assert line.startswith("glid/unet trial 0 complete: best val mIoU 40.65 at epoch 2 of 3 |")
    assert "2/4 done: 1 complete, 1 pruned, 0 failed, 1 running" in line
    assert line.endswith("pair best 40.65 (trial 0, epoch 2)")
    line = trial_line("glid/unet", 1, "pruned", pruned, pair)
    assert line.startswith("glid/unet trial 1 pruned: best val mIoU 19.21 at epoch 1 |")


def test_the_live_table_says_where_the_pair_best_was_reached(study):
    pair = summarize_study(study, "glid/unet", "s/glid/unet", 4, finished=False)
    (row,) = status_rows([pair.to_dict()])
    shown = dict(zip(STATUS_HEADERS, row))
    assert shown["best val mIoU"] == "40.65"
    assert shown["reached at"] == "trial 0, epoch 2"


def test_before_any_trial_completes_the_pair_has_no_best(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s/glid/unet", storage=storage, direction="maximize")
    _ended(study, [12.5], TrialState.PRUNED)
    pair = summarize_study(study, "glid/unet", "s/glid/unet", 2, finished=False)
    assert trial_line("glid/unet", 0, "pruned", None, pair).endswith("pair best -")
    (row,) = status_rows([pair.to_dict()])
    assert dict(zip(STATUS_HEADERS, row))["reached at"] == "-"


def test_the_live_file_counts_each_running_trial_once(study, tmp_path):
    """The study already holds a trial as running when Tune starts it (the searcher asked for
    it first): the file says what Tune runs, once, not the study's count plus the start."""
    from types import SimpleNamespace

    from cryotune.sweep.live_status import read_live_status
    from cryotune.sweep.progress import SweepProgress

    pair = {"key": "glid/unet", "study_name": "s/glid/unet", "trials": 4}
    recorded = SimpleNamespace(is_recorded=lambda key: False)
    live = tmp_path / "live.json"
    progress = SweepProgress([pair], f"sqlite:///{tmp_path / 'optuna.db'}", recorded, live)
    trial = SimpleNamespace(config={"pair": "glid/unet", "study_trial": 2}, status="PENDING")
    ended = SimpleNamespace(config={"pair": "glid/unet", "study_trial": 0}, status="TERMINATED")
    progress.on_step_end(0, [ended, trial])  # the study has trial 2 running, Tune not yet
    trial.status = "RUNNING"
    progress.on_trial_start(1, [ended, trial], trial)
    progress.on_experiment_end([ended, trial])  # written whatever the time since the last
    row = read_live_status(live)["glid/unet"]
    assert (row.running, row.done, row.best_val_miou) == (1, 2, 40.65)
