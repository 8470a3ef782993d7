"""PairScheduler: one ASHA per pair, rebuilt from the studies when a sweep is restored."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from cryotune.sweep.keys import FINAL, TUNE_TRIAL_ID
from cryotune.sweep.scheduler import PairScheduler, PairStopping


def _trial(trial_id: str, pair: str) -> Trial:
    return Trial(
        "cryotune_trial",
        config={"pair": pair, "trial": {"epochs": 4}},
        trial_id=trial_id,
        stub=True,
    )


def _study_with_history(url: str, name: str) -> None:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    dist = {"lr": FloatDistribution(1e-5, 1e-2, log=True)}
    for i, (state, values) in enumerate(
        [
            (TrialState.COMPLETE, [60.0, 70.0, 75.0, 80.0]),
            (TrialState.PRUNED, [50.0]),
            (TrialState.COMPLETE, [58.0, 66.0, 72.0, 79.0]),
            (TrialState.RUNNING, [55.0]),
        ]
    ):
        study.add_trial(
            create_trial(
                state=state,
                value=values[-1] if state == TrialState.COMPLETE else None,
                params={"lr": 1e-3},
                distributions=dist,
                intermediate_values=dict(enumerate(values, start=1)),
                user_attrs={TUNE_TRIAL_ID: f"old{i}"},
            )
        )


def _scheduler(url: str) -> PairScheduler:
    stopping = {
        "glid/unet": PairStopping("s/glid/unet", 4, grace_period=1, reduction_factor=2),
        "caffe/unet": PairStopping("s/caffe/unet", 4, grace_period=1, reduction_factor=2),
        "glid/vit": None,
    }
    return PairScheduler(stopping, "val_miou", url)


def test_rungs_are_rebuilt_from_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_history(url, "s/glid/unet")
    scheduler = _scheduler(url)
    weak, strong = _trial("new1", "glid/unet"), _trial("new2", "glid/unet")
    scheduler.on_trial_add(None, weak)
    scheduler.on_trial_add(None, strong)
    # Rung at epoch 1 holds 60, 50, 58 and 55 from the study: a new 40 falls below its median.
    assert scheduler.on_trial_result(None, weak, {"epoch": 1, "val_miou": 40.0}) == "STOP"
    assert scheduler.on_trial_result(None, strong, {"epoch": 1, "val_miou": 65.0}) == "CONTINUE"


def test_pairs_do_not_share_rungs_and_unscheduled_pairs_never_stop(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_history(url, "s/glid/unet")
    scheduler = _scheduler(url)
    other = _trial("c1", "caffe/unet")
    scheduler.on_trial_add(None, other)
    assert scheduler.on_trial_result(None, other, {"epoch": 1, "val_miou": 1.0}) == "CONTINUE"
    free = _trial("v1", "glid/vit")
    scheduler.on_trial_add(None, free)
    assert scheduler.on_trial_result(None, free, {"epoch": 1, "val_miou": 0.0}) == "CONTINUE"


def test_finished_trials_stop_and_last_epochs_run_to_their_test(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_history(url, "s/glid/unet")
    scheduler = _scheduler(url)
    resumed = _trial("old0", "glid/unet")  # finished in the study before the driver died
    scheduler.on_trial_add(None, resumed)
    assert scheduler.on_trial_result(None, resumed, {"epoch": 1, "val_miou": 60.0}) == "STOP"
    last = _trial("new3", "glid/unet")
    scheduler.on_trial_add(None, last)
    for epoch, value in [(1, 70.0), (2, 75.0), (3, 79.0)]:
        assert scheduler.on_trial_result(None, last, {"epoch": epoch, "val_miou": value}) == (
            TrialScheduler.CONTINUE
        )
    # Plain ASHA stops at max_t; the last epoch continues so the trainer tests the checkpoint.
    assert scheduler.on_trial_result(None, last, {"epoch": 4, "val_miou": 81.0}) == "CONTINUE"
    final = {"epoch": 4, "val_miou": 81.0, FINAL: True}
    assert scheduler.on_trial_result(None, last, final) == "CONTINUE"


def _bootstrapped(url: str, probes: int) -> PairScheduler:
    stopping = PairStopping(
        "s/glid/unet", 4, grace_period=1, reduction_factor=2, bootstrap_trials=probes
    )
    return PairScheduler({"glid/unet": stopping}, "val_miou", url)


def test_bootstrap_probes_stop_at_the_grace_period_then_asha_judges(tmp_path):
    scheduler = _bootstrapped(f"sqlite:///{tmp_path / 'optuna.db'}", probes=2)
    trials = [_trial(f"t{i}", "glid/unet") for i in range(4)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    # The first two to reach epoch 1 stop there however good they are.
    assert scheduler.on_trial_result(None, trials[0], {"epoch": 1, "val_miou": 90.0}) == "STOP"
    assert scheduler.on_trial_result(None, trials[1], {"epoch": 1, "val_miou": 50.0}) == "STOP"
    # Later trials are judged against the probes' values at that rung.
    assert scheduler.on_trial_result(None, trials[2], {"epoch": 1, "val_miou": 40.0}) == "STOP"
    assert scheduler.on_trial_result(None, trials[3], {"epoch": 1, "val_miou": 95.0}) == "CONTINUE"
    assert scheduler.on_trial_result(None, trials[3], {"epoch": 2, "val_miou": 96.0}) == "CONTINUE"


def test_a_restored_sweep_counts_its_earlier_trials_as_probes(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _study_with_history(url, "s/glid/unet")  # four trials reached epoch 1 before the restart
    scheduler = _bootstrapped(url, probes=2)
    strong = _trial("new1", "glid/unet")
    scheduler.on_trial_add(None, strong)
    assert scheduler.on_trial_result(None, strong, {"epoch": 1, "val_miou": 65.0}) == "CONTINUE"
