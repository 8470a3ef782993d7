"""One ASHA per pair inside the sweep's single Tune experiment.

Trials of different pairs are not comparable (datasets differ in difficulty), so each pair has its
own ``AsyncHyperBandScheduler`` on the validation mIoU with the epoch as time attribute; this
scheduler routes every trial to its pair's ASHA by ``config["pair"]``. Three changes to plain
ASHA:

- A trial that reaches its last epoch is let finish instead of stopped at ``max_t``, so the
  trainer tests its best checkpoint and the study gets a COMPLETE trial.
- Ray does not save scheduler state with the experiment, so a restored sweep would start ASHA with
  empty rungs. On first use the rungs are rebuilt by replaying every trial's intermediate values
  from the pair's study (epochs reported by trials, keyed by their Tune trial ids), and trials the
  study already finished are stopped at once if Tune resumes them.
- Plain ASHA lets the first trials at a rung through unjudged, so with few slots its first trials
  train to the end whatever their learning rate. With ``bootstrap_trials`` k, the first k trials
  of a pair to reach the grace period stop there (as Optuna's ``bootstrap_count``): cheap probes
  that fill the first rung and the sampler's history before any trial is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from cryotune.sweep.keys import FINAL, TUNE_TRIAL_ID
from cryotune.sweep.storage import study_storage


@dataclass(frozen=True)
class ReplayedTrial:
    """A finished or interrupted trial as ASHA knows it: by its Tune trial id."""

    trial_id: str


@dataclass(frozen=True)
class PairStopping:
    """The ASHA settings of one pair (None in ``PairScheduler`` means: never stop early)."""

    study_name: str
    max_epochs: int
    grace_period: int
    reduction_factor: float
    bootstrap_trials: int = 0


class PairScheduler(FIFOScheduler):
    """Routes each trial to its pair's ASHA; FIFO order among pending trials."""

    def __init__(self, pairs: dict[str, PairStopping | None], metric: str, storage_url: str):
        super().__init__()
        self._metric = metric
        self._mode = "max"
        self._storage_url = storage_url
        self._stopping = pairs
        self._asha = {
            key: AsyncHyperBandScheduler(
                time_attr="epoch",
                metric=metric,
                mode="max",
                max_t=s.max_epochs,
                grace_period=s.grace_period,
                reduction_factor=s.reduction_factor,
            )
            for key, s in pairs.items()
            if s is not None
        }
        self._added: set[str] = set()
        self._at_grace: dict[str, set[str]] = {key: set() for key in self._asha}
        self._finished_in_study: set[str] = set()
        self._primed = False

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def _prime(self) -> None:
        """Rebuild every ASHA's rungs from the studies (a no-op on a fresh sweep)."""
        if self._primed:
            return
        self._primed = True
        storage = study_storage(self._storage_url)
        existing = set(optuna.get_all_study_names(storage))
        for key, stopping in self._stopping.items():
            if stopping is None or stopping.study_name not in existing:
                continue
            asha = self._asha[key]
            study = optuna.load_study(study_name=stopping.study_name, storage=storage)
            for frozen in study.get_trials(deepcopy=False):
                trial_id = frozen.user_attrs.get(TUNE_TRIAL_ID)
                if trial_id is None:
                    continue
                if frozen.state.is_finished():
                    self._finished_in_study.add(trial_id)
                if not frozen.intermediate_values:
                    continue
                if max(frozen.intermediate_values) >= stopping.grace_period:
                    self._at_grace[key].add(trial_id)
                replayed = ReplayedTrial(trial_id)
                asha.on_trial_add(None, replayed)
                for epoch, value in sorted(frozen.intermediate_values.items()):
                    asha.on_trial_result(None, replayed, {"epoch": epoch, self._metric: value})
                if frozen.state.is_finished():
                    asha.on_trial_remove(None, replayed)

    def _asha_of(self, trial) -> AsyncHyperBandScheduler | None:
        return self._asha.get(trial.config.get("pair"))

    def on_trial_add(self, tune_controller, trial) -> None:
        self._prime()
        asha = self._asha_of(trial)
        if asha is not None:
            asha.on_trial_add(tune_controller, trial)
            self._added.add(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._prime()
        if trial.trial_id in self._finished_in_study:
            return TrialScheduler.STOP
        asha = self._asha_of(trial)
        if asha is None or result.get(FINAL) or trial.trial_id not in self._added:
            return TrialScheduler.CONTINUE
        decision = asha.on_trial_result(tune_controller, trial, result)
        if self._probes(trial, result.get("epoch", 0)):
            decision = TrialScheduler.STOP
        if (
            decision == TrialScheduler.STOP
            and result.get("epoch", 0) >= trial.config["trial"]["epochs"]
        ):
            return TrialScheduler.CONTINUE
        return decision

    def _probes(self, trial, epoch: int) -> bool:
        """Whether ``trial``, reaching the grace period now, is one of its pair's bootstrap
        probes."""
        key = trial.config.get("pair")
        stopping, reached = self._stopping[key], self._at_grace[key]
        if epoch < stopping.grace_period or trial.trial_id in reached:
            return False
        reached.add(trial.trial_id)
        return len(reached) <= stopping.bootstrap_trials

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        asha = self._asha_of(trial)
        if asha is not None and trial.trial_id in self._added:
            self._added.discard(trial.trial_id)
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        asha = self._asha_of(trial)
        if asha is not None and trial.trial_id in self._added:
            self._added.discard(trial.trial_id)
            asha.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{key}: {asha.debug_string()}" for key, asha in self._asha.items())
