"""StudySearch: how Tune's trial outcomes land in the Optuna study, through Optuna's public
ask/tell and storage API, the study being the only state that survives the driver."""

from __future__ import annotations

import json
import pickle

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from cryotune.config import TrialConfig
from cryotune.documents.trial_result import EpochReport, TrialResult
from cryotune.sweep.keys import FINAL, TRIAL_RESULT, TUNE_TRIAL_ID
from cryotune.sweep.study import SamplerRecipe, StudySearch

SPACE = {"lr": FloatDistribution(1e-5, 1e-2, log=True)}


@pytest.fixture
def search(tmp_path) -> StudySearch:
    return StudySearch(
        space=SPACE,
        study_name="s/glid/unet",
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
        sampler=SamplerRecipe(kind="tpe", seed=0, startup_trials=2),
        metric="val_miou",
    )


def _epoch(epoch: int, value: float) -> dict:
    return {"epoch": epoch, "val_miou": value, "best_val_miou": value, "training_iteration": 9}


def _trial(search: StudySearch, number: int) -> optuna.trial.FrozenTrial:
    return search.study.get_trials(deepcopy=False)[number]


def test_a_trial_stopped_by_the_scheduler_is_pruned_with_its_epochs(search):
    params = search.suggest("t1")
    assert set(params) == {"lr"}
    search.on_trial_result("t1", _epoch(1, 40.0))
    search.on_trial_result("t1", _epoch(2, 42.0))
    # Tune passes the stopping result only to on_trial_complete, never to on_trial_result.
    state = search.on_trial_complete("t1", result=_epoch(3, 41.0))
    trial = _trial(search, 0)
    assert state == trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 40.0, 2: 42.0, 3: 41.0}
    assert trial.value == 41.0  # Optuna keeps the last intermediate value of a pruned trial
    assert trial.user_attrs[TUNE_TRIAL_ID] == "t1"


def test_only_a_final_result_completes_a_trial_with_its_best_score(search):
    search.suggest("t1")
    search.on_trial_result("t1", _epoch(1, 50.0))
    search.on_trial_result("t1", _epoch(2, 48.0))
    payload = TrialResult(
        config=TrialConfig(dataset="glid", model="unet"),
        history=[],
        best_epoch=1,
        best_val_miou=50.0,
        best_val_metrics={"miou": 50.0},
        test_metrics={"miou": 47.0},
        info={},
        seconds=1.0,
    )
    final = {
        **_epoch(2, 48.0),
        "best_val_miou": 50.0,
        FINAL: True,
        TRIAL_RESULT: payload.to_json(),
    }
    search.on_trial_result("t1", final)
    assert search.on_trial_complete("t1", result=final) == TrialState.COMPLETE
    trial = _trial(search, 0)
    assert trial.value == 50.0
    assert trial.intermediate_values == {1: 50.0, 2: 48.0}
    assert TrialResult.parse(trial.user_attrs["result"], "the study") == payload
    # A replayed result after the study finished the trial is ignored, not an error.
    search.on_trial_result("t1", _epoch(3, 10.0))
    assert search.on_trial_complete("t1", result=final) is None


def _history(*values: float) -> list[EpochReport]:
    return [
        EpochReport(
            epoch=epoch,
            train_loss=1.0,
            val_miou=value,
            per_class_iou=[value, value],
            lr=1e-4,
            seconds=1.0,
            val_metrics={"miou": value},
            peak_memory_mb=None,
            checkpoint_dir=None,
        )
        for epoch, value in enumerate(values, start=1)
    ]


def test_a_completed_trial_fills_the_epochs_its_study_never_heard_of(search):
    """A trial resumed after its driver was killed continues after its checkpoint: the epoch
    checkpointed just before the kill reached no study, but its history holds it."""
    search.suggest("t1")
    search.on_trial_result("t1", _epoch(1, 40.0))
    search.on_trial_result("t1", _epoch(3, 45.0))  # epoch 2: checkpointed, never reported
    payload = TrialResult(
        config=TrialConfig(dataset="glid", model="unet"),
        history=_history(40.0, 46.0, 45.0),
        best_epoch=2,
        best_val_miou=46.0,
        best_val_metrics={"miou": 46.0},
        test_metrics=None,
        info={},
        seconds=1.0,
    )
    final = {**_epoch(3, 45.0), "best_val_miou": 46.0, FINAL: True, TRIAL_RESULT: payload.to_json()}
    assert search.on_trial_complete("t1", result=final) == TrialState.COMPLETE
    assert _trial(search, 0).intermediate_values == {1: 40.0, 2: 46.0, 3: 45.0}


def test_a_final_result_that_is_not_a_trial_result_fails_the_trial_naming_it(search):
    search.suggest("t1")
    final = {**_epoch(2, 48.0), FINAL: True, TRIAL_RESULT: json.dumps({"best_val_miou": 50.0})}
    assert search.on_trial_complete("t1", result=final) == TrialState.FAIL
    error = _trial(search, 0).user_attrs["error"]
    assert "the final result of Tune trial t1: not a trial result" in error and "config" in error


def test_an_error_fails_the_trial_and_keeps_the_text(search):
    search.suggest("t1")
    search.on_trial_result("t1", _epoch(1, 30.0))
    search.note_error("t1", "DataError: caffe/images/train/x.png is not a readable image")
    assert search.on_trial_complete("t1", error=True) == TrialState.FAIL
    trial = _trial(search, 0)
    assert trial.state == TrialState.FAIL and trial.value is None
    assert "not a readable image" in trial.user_attrs["error"]
    assert trial.intermediate_values == {1: 30.0}


def test_a_diverged_final_result_fails(search):
    search.suggest("t1")
    final = {**_epoch(1, float("nan")), "best_val_miou": float("nan"), FINAL: True}
    assert search.on_trial_complete("t1", result=final) == TrialState.FAIL
    assert "diverged" in _trial(search, 0).user_attrs["error"]


def test_a_resumed_driver_reopens_the_study_fails_orphans_and_skips_finished_trials(search):
    search.suggest("t1")
    known = {"t1"}  # the Tune trials of the experiment's last snapshot
    search.suggest("t2")  # asked after the snapshot, then the driver dies
    search.on_trial_complete("t1", result=_epoch(1, 5.0))  # told after the snapshot
    search = pickle.loads(pickle.dumps(search))  # a new driver: only the recipe travels
    assert search.trial_number("t1") == 0 and search.trial_number("t2") == 1
    assert search.reconcile(known) == [1]
    assert _trial(search, 1).state == TrialState.FAIL
    assert search.study.user_attrs["orphaned_trials"] == [1]
    # The resumed Tune trial t1 replays results: the study already holds it as PRUNED.
    search.on_trial_result("t1", _epoch(2, 9.0))
    assert search.on_trial_complete("t1", result=_epoch(2, 9.0)) is None
    assert _trial(search, 0).state == TrialState.PRUNED
    assert _trial(search, 0).intermediate_values == {1: 5.0}
