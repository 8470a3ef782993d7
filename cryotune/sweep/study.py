"""One pair's durable Optuna study, asked and told through Optuna's public API.

The study is the system of record: which Tune trial each study trial is (a user attribute),
which trials ended and how, their intermediate values. Nothing of it lives in Tune's snapshots,
so a resumed driver reopens the study and carries on. Intermediate values are keyed by epoch; the
outcome is COMPLETE only for a trial that reported its final result (``final`` in the result),
PRUNED for a trial a scheduler stopped early (Tune passes the stopping result only to
``on_trial_complete``: it is kept as the last intermediate value), FAIL for an error (with its
text as a user attribute). Results for a trial the study already holds as finished (told before
the driver was killed, then replayed by a resumed Tune trial) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from cryotune.documents.document import DocumentError
from cryotune.documents.trial_result import TrialResult
from cryotune.sweep.keys import ERROR, FINAL, ORPHANED, RESULT, TRIAL_RESULT, TUNE_TRIAL_ID
from cryotune.sweep.storage import study_storage


class GridPoints(optuna.samplers.GridSampler):
    """Optuna's GridSampler without its ``study.stop()`` once every point has run: outside
    ``study.optimize`` that call raises (and Tune then fails the sweep on its last trial); the
    pair's budget, the grid's size, already ends the search."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


@dataclass(frozen=True)
class SamplerRecipe:
    """How to build a study's sampler: seeded from the base seed and the number of trials the
    study already holds, so a reopened study does not propose its start-up points again."""

    kind: str
    seed: int
    multivariate: bool = True
    startup_trials: int = 10
    constant_liar: bool = True
    grid: tuple[tuple[str, tuple], ...] = ()

    def build(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        seed = (self.seed + 7919 * offset) % 2**32
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


@dataclass
class _Opened:
    """The study of one driver session, its storage, and its trials by Tune trial id."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    study_id: int
    numbers: dict[str, int]
    storage_ids: dict[str, int] = field(default_factory=dict)
    last_steps: dict[str, int] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)


class StudySearch:
    """One pair's study: ``suggest`` asks it, results report epochs, ``on_trial_complete`` tells.

    Pickles as its recipe (space, names, sampler recipe, storage URL); the study is reopened on
    first use, with a sampler seeded past the trials it holds.
    """

    def __init__(
        self,
        space: dict[str, BaseDistribution],
        study_name: str,
        storage_url: str,
        sampler: SamplerRecipe,
        metric: str,
        objective: str = "best_val_miou",
        step_key: str = "epoch",
    ):
        self.space = space
        self.study_name = study_name
        self.storage_url = storage_url
        self.recipe = sampler
        self.metric = metric
        self.objective = objective
        self.step_key = step_key
        self._opened: _Opened | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_opened": None}

    def _open(self) -> _Opened:
        if self._opened is None:
            storage = study_storage(self.storage_url)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                direction="maximize",
                load_if_exists=True,
            )
            trials = study.get_trials(deepcopy=False)
            study.sampler = self.recipe.build(offset=len(trials))
            numbers = {
                t.user_attrs[TUNE_TRIAL_ID]: t.number
                for t in trials
                if TUNE_TRIAL_ID in t.user_attrs
            }
            study_id = storage.get_study_id_from_name(self.study_name)
            self._opened = _Opened(study, storage, study_id, numbers)
        return self._opened

    @property
    def study(self) -> optuna.Study:
        return self._open().study

    def trial_number(self, trial_id: str) -> int | None:
        return self._open().numbers.get(trial_id)

    def _live(self, trial_id: str) -> int | None:
        """The storage id of ``trial_id``'s study trial while it runs; None if unknown or
        finished.

        Read from the storage once per driver session (a resumed driver finds trials told
        before it was killed); after that this session is the only writer of the trial, so its
        state and last reported epoch are kept here rather than read back for every result.
        """
        opened = self._open()
        number = opened.numbers.get(trial_id)
        if number is None or trial_id in opened.told:
            return None
        if trial_id not in opened.storage_ids:
            storage_id = opened.storage.get_trial_id_from_study_id_trial_number(
                opened.study_id, number
            )
            frozen = opened.storage.get_trial(storage_id)
            if frozen.state.is_finished():
                opened.told.add(trial_id)
                return None
            opened.storage_ids[trial_id] = storage_id
            opened.last_steps[trial_id] = max(frozen.intermediate_values, default=0)
        return opened.storage_ids[trial_id]

    def suggest(self, trial_id: str) -> dict:
        opened = self._open()
        trial = opened.study.ask(fixed_distributions=self.space)
        trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        opened.numbers[trial_id] = trial.number
        return dict(trial.params)

    def _report(self, trial_id: str, storage_id: int, result: dict) -> None:
        value, step = result.get(self.metric), result.get(self.step_key)
        if value is None or step is None or not math.isfinite(float(value)):
            return
        step, opened = int(step), self._open()
        if step > opened.last_steps[trial_id]:
            opened.storage.set_trial_intermediate_value(storage_id, step, float(value))
            opened.last_steps[trial_id] = step

    def _fill_history(self, storage_id: int, result: TrialResult) -> None:
        """Store the epochs of a completed trial's history its study never heard of: a resumed
        trial continues after its checkpoint, and an epoch checkpointed just before a driver
        (or the trial) was killed was never reported."""
        storage = self._open().storage
        known = storage.get_trial(storage_id).intermediate_values
        best = float("-inf")
        for epoch in result.history:
            if epoch.val_miou is None or not math.isfinite(epoch.val_miou):
                continue
            best = max(best, epoch.val_miou)
            if epoch.epoch not in known:
                value = best if self.metric == "best_val_miou" else epoch.val_miou
                storage.set_trial_intermediate_value(storage_id, epoch.epoch, float(value))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        storage_id = self._live(trial_id)
        if storage_id is not None:
            self._report(trial_id, storage_id, result)

    def note_error(self, trial_id: str, text: str) -> None:
        """Keep a failing trial's error in the study (call before ``on_trial_complete``)."""
        storage_id = self._live(trial_id)
        if storage_id is not None:
            self._open().storage.set_trial_user_attr(storage_id, ERROR, text[-4000:])

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> TrialState | None:
        """Tell the study how the trial ended; returns that state (None if already told)."""
        storage_id = self._live(trial_id)
        if storage_id is None:
            return None
        opened = self._open()
        result = result or {}
        self._report(trial_id, storage_id, result)
        value = result.get(self.objective)
        attrs: dict[str, object] = {}
        if error:
            state, value = TrialState.FAIL, None
        elif result.get(FINAL):
            if value is None or not math.isfinite(float(value)):
                attrs[ERROR] = f"{self.objective} is {value}: training diverged"
                state, value = TrialState.FAIL, None
            else:
                state, value = TrialState.COMPLETE, float(value)
                if result.get(TRIAL_RESULT):
                    try:
                        where = f"the final result of Tune trial {trial_id}"
                        parsed = TrialResult.parse_json(result[TRIAL_RESULT], where)
                        attrs[RESULT] = parsed.to_dict()
                        self._fill_history(storage_id, parsed)
                    except DocumentError as exc:
                        attrs[ERROR] = str(exc)
                        state, value = TrialState.FAIL, None
        else:
            state, value = TrialState.PRUNED, None
        for key, attr in attrs.items():
            opened.storage.set_trial_user_attr(storage_id, key, attr)
        opened.study.tell(opened.numbers[trial_id], value, state=state)
        opened.told.add(trial_id)
        return state

    def reconcile(self, known: set[str]) -> list[int]:
        """Fail the study's RUNNING trials that no Tune trial will continue: asked after Tune's
        last snapshot (``known`` holds the Tune trial ids of that snapshot), then lost when the
        driver died. The study keeps them, with the reason. Returns their numbers."""
        study = self.study
        orphans = [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(TUNE_TRIAL_ID) not in known
        ]
        for number in orphans:
            study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        if orphans:
            previous = study.user_attrs.get(ORPHANED, [])
            study.set_user_attr(ORPHANED, sorted({*previous, *orphans}))
            study.set_user_attr(
                "orphaned_trials_reason",
                "asked after Tune's last experiment snapshot, then lost when the driver stopped;"
                " they never trained",
            )
        return orphans
