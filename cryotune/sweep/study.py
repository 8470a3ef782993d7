"""One pair's Optuna study behind Ray Tune's OptunaSearch, with the trial outcomes Optuna expects.

Ray 2.60's ``OptunaSearch`` reports intermediate values at Tune's ``training_iteration`` and, when
a scheduler stops a trial, never reports that last result and then tells the study COMPLETE with
the low-budget score of the stopped epoch (``on_trial_complete`` marks PRUNED only when no result
exists). TPE then models a 3-epoch score as if it were a finished run. ``StudySearch`` fixes this:
intermediate values are keyed by epoch, the stopping result is kept as an intermediate value, and
the outcome is COMPLETE only for a trial that reported its final result (``final`` in the result),
PRUNED for a trial stopped early, FAIL for an error (with the error text kept as a user attribute).
Results for a trial the study already holds as finished (told before the driver was killed, then
replayed by a resumed Tune trial) are ignored instead of raising.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from cryotune.sweep.keys import ERROR, FINAL, ORPHANED, RESULT, TRIAL_RESULT, TUNE_TRIAL_ID


class GridPoints(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its ``study.stop()`` once every point has run: outside
    ``study.optimize`` that call raises (and Tune then fails the sweep on its last trial); the
    pair's budget, the grid's size, already ends the search."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


@dataclass(frozen=True)
class SamplerRecipe:
    """How to build a study's sampler, so a restored study can get a freshly seeded one.

    Tune's snapshot of the sampler can be older than the study (trials asked after it); its
    restored random state would then propose the same start-up points again. ``build(offset)``
    seeds from the base seed and the number of trials the study already holds instead.
    """

    kind: str
    seed: int
    multivariate: bool = True
    startup_trials: int = 10
    constant_liar: bool = True
    grid: tuple[tuple[str, tuple], ...] = ()

    def build(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        seed = self.seed + 7919 * offset
        if self.kind == "grid":
            return GridPoints({k: list(v) for k, v in self.grid}, seed=seed)
        if self.kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=self.multivariate,
            n_startup_trials=self.startup_trials,
            constant_liar=self.constant_liar,
        )


class StudySearch(OptunaSearch):
    """OptunaSearch on a durable study, with epochs as steps and scheduler stops as PRUNED."""

    def __init__(
        self,
        space: dict,
        study_name: str,
        storage: optuna.storages.BaseStorage,
        sampler: SamplerRecipe,
        metric: str,
        objective: str = "best_val_miou",
        step_key: str = "epoch",
    ):
        self._objective = objective
        self._step_key = step_key
        self._last_step: dict[str, int] = {}
        self._recipe = sampler
        super().__init__(
            space=space,
            metric=metric,
            mode="max",
            sampler=sampler.build(),
            study_name=study_name,
            storage=storage,
        )

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ID, trial_id)
        return params

    def trial_number(self, trial_id: str) -> int | None:
        trial = self._ot_trials.get(trial_id)
        return None if trial is None else trial.number

    def _finished_in_study(self, trial_id: str) -> bool:
        return trial_id in self._completed_trials

    def _report(self, trial_id: str, result: dict) -> None:
        value, step = result.get(self.metric), result.get(self._step_key)
        if value is None or step is None or not math.isfinite(float(value)):
            return
        step = int(step)
        if step > self._last_step.get(trial_id, 0):
            self._ot_trials[trial_id].report(float(value), step)
            self._last_step[trial_id] = step

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._ot_trials or self._finished_in_study(trial_id):
            return
        self._report(trial_id, result)

    def note_error(self, trial_id: str, text: str) -> None:
        """Keep a failing trial's error in the study (call before ``on_trial_complete``)."""
        if trial_id in self._ot_trials and not self._finished_in_study(trial_id):
            self._ot_trials[trial_id].set_user_attr(ERROR, text[-4000:])

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> TrialState | None:
        """Tell the study how the trial ended; returns that state (None if already told)."""
        if trial_id not in self._ot_trials or self._finished_in_study(trial_id):
            return None
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        self._report(trial_id, result)
        value = result.get(self._objective)
        if error:
            state, value = TrialState.FAIL, None
        elif result.get(FINAL):
            if value is None or not math.isfinite(float(value)):
                ot_trial.set_user_attr(ERROR, f"{self._objective} is {value}: training diverged")
                state, value = TrialState.FAIL, None
            else:
                state, value = TrialState.COMPLETE, float(value)
                if result.get(TRIAL_RESULT):
                    ot_trial.set_user_attr(RESULT, json.loads(result[TRIAL_RESULT]))
        else:
            state, value = TrialState.PRUNED, None
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)
        self._last_step.pop(trial_id, None)
        return state

    def reconcile(self) -> list[int]:
        """Align this searcher, restored from Tune's last snapshot, with the newer study.

        Trials the study already finished are not told again, and the sampler is seeded anew. Trials left RUNNING that no Tune
        trial will continue (asked after the snapshot, lost when the driver died) become FAIL;
        the study keeps them, with the reason in its user attributes. Returns their numbers.
        """
        by_number = {t.number: tid for tid, t in self._ot_trials.items()}
        orphans = []
        trials = self._ot_study.get_trials(deepcopy=False)
        self._sampler = self._ot_study.sampler = self._recipe.build(offset=len(trials))
        for frozen in trials:
            if frozen.state.is_finished() and frozen.number in by_number:
                self._completed_trials.add(by_number[frozen.number])
            elif frozen.state == TrialState.RUNNING and frozen.number not in by_number:
                orphans.append(frozen.number)
        for number in orphans:
            self._ot_study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        if orphans:
            previous = self._ot_study.user_attrs.get(ORPHANED, [])
            self._ot_study.set_user_attr(ORPHANED, sorted({*previous, *orphans}))
            self._ot_study.set_user_attr(
                "orphaned_trials_reason",
                "asked after Tune's last experiment snapshot, then lost when the driver stopped;"
                " they never trained",
            )
        return orphans
