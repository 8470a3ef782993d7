"""The sweep's one Tune searcher: a ``StudySearch`` (OptunaSearch, one durable study) per pair.

Whenever Tune has a free slot it asks for a trial; the pair furthest behind its budget (fraction
of trials started) gets it, so pairs progress together and a pair's slow tail never leaves slots
idle while another pair still has trials to run. A pair stops starting trials when its budget,
its time budget or its failure limit is spent; once its last trial ends, its best-config record
is written. State (each study searcher with its sampler, counts, time spent) is saved with Tune's
experiment snapshots and restored by ``Tuner.restore``; the studies are then reconciled with the
searcher (see ``StudySearch.reconcile``).
"""

from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

from ray.tune import Callback
from ray.tune.search import Searcher

from cryotune.sweep.records import PairRecorder
from cryotune.sweep.study import SamplerRecipe, StudySearch
from cryotune.sweep.trainable import ERROR_FILE
from cryotune.tracking.trial import TRACKING_KEY


@dataclass(frozen=True)
class PairBudget:
    trials: int
    time_s: float | None
    max_failed: int


def pair_seed(seed: int, pair_key: str) -> int:
    """A 32-bit sampler seed per (sweep seed, pair): distinct pairs draw distinct streams (a sum
    of the key's bytes gave glid/vit and gld/unet the same one)."""
    digest = hashlib.sha256(f"{seed}:{pair_key}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def sampler_recipe(spec, pair) -> SamplerRecipe:
    """The sampler of one pair's study, seeded per pair so pairs do not mirror each other."""
    sampler = spec.sampler
    return SamplerRecipe(
        kind=sampler.kind,
        seed=pair_seed(sampler.seed, pair.key),
        multivariate=sampler.multivariate,
        startup_trials=sampler.startup_trials,
        constant_liar=sampler.constant_liar,
        grid=tuple((k, tuple(v)) for k, v in pair.space.grid().items())
        if sampler.kind == "grid"
        else (),
    )


class PairSearch(Searcher):
    """Multiplexes one StudySearch per pair behind Tune's single-searcher interface."""

    def __init__(
        self,
        plan,
        storage_url: str,
        trials_dir: str,
        recorder: PairRecorder,
    ):
        spec = plan.spec
        super().__init__(metric=spec.scheduler.metric, mode="max")
        self._pairs = {p.key: p for p in plan.pairs}
        self._searches = {
            p.key: StudySearch(
                space=p.space.searched,
                study_name=p.study_name,
                storage_url=storage_url,
                sampler=sampler_recipe(spec, p),
                metric=spec.scheduler.metric,
            )
            for p in plan.pairs
        }
        self._budgets = {
            p.key: PairBudget(p.trials, spec.budget.time_s, spec.budget.max_failed_trials)
            for p in plan.pairs
        }
        self._trials_dir = trials_dir
        self._recorder = recorder
        self._started = dict.fromkeys(self._pairs, 0)
        self._failed = dict.fromkeys(self._pairs, 0)
        self._pair_of: dict[str, str] = {}
        self._running: set[str] = set()
        self._recorded: set[str] = set()
        self._spent = dict.fromkeys(self._pairs, 0.0)
        self._clock: dict[str, float] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def elapsed(self, key: str) -> float:
        """Seconds this pair has been running, over every driver session."""
        since = self._clock.get(key)
        return self._spent[key] + (time.monotonic() - since if since is not None else 0.0)

    def _can_start(self, key: str) -> bool:
        budget = self._budgets[key]
        return (
            self._started[key] < budget.trials
            and self._failed[key] < budget.max_failed
            and (budget.time_s is None or self.elapsed(key) < budget.time_s)
        )

    def _maybe_finish(self, key: str) -> None:
        """Write the pair's record once it can start nothing more and nothing of it runs."""
        if key in self._recorded or self._can_start(key):
            return
        if any(self._pair_of.get(t) == key for t in self._running):
            return
        self._spent[key] = self.elapsed(key)
        self._clock.pop(key, None)
        self._recorder.finish(self._pairs[key], self._searches[key].study, self._spent[key])
        self._recorded.add(key)

    def suggest(self, trial_id: str) -> dict | str | None:
        for key in self._pairs:
            self._maybe_finish(key)
        open_pairs = [k for k in self._pairs if self._can_start(k)]
        if not open_pairs:
            return Searcher.FINISHED
        key = min(open_pairs, key=lambda k: self._started[k] / self._budgets[k].trials)
        pair, search = self._pairs[key], self._searches[key]
        suggested = search.suggest(trial_id)
        self._started[key] += 1
        self._pair_of[trial_id] = key
        self._running.add(trial_id)
        self._clock.setdefault(key, time.monotonic())
        config = {
            "pair": key,
            "study_trial": search.trial_number(trial_id),
            "params": suggested,
            "trial": pair.trial_config(suggested).model_dump(mode="json"),
            "trials_dir": self._trials_dir,
        }
        tracking = self._recorder.trial_context(pair)
        if tracking is not None:
            config[TRACKING_KEY] = tracking
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        key = self._pair_of.get(trial_id)
        if key is not None:
            self._searches[key].on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        key = self._pair_of.get(trial_id)
        if key is None:
            return
        search = self._searches[key]
        if error:
            search.note_error(trial_id, self._error_text(trial_id))
            if trial_id in self._running:
                self._failed[key] += 1
        state = search.on_trial_complete(trial_id, result=result, error=error)
        if state is not None:
            self._recorder.trial_ended(trial_id, state)
            self._recorder.trial_observed(
                self._pairs[key], trial_id, search.trial_number(trial_id), state, search.study
            )
        self._running.discard(trial_id)
        self._maybe_finish(key)

    def _error_text(self, trial_id: str) -> str:
        path = Path(self._trials_dir) / trial_id / ERROR_FILE
        try:
            return path.read_text()[-4000:]
        except OSError:
            return f"no {ERROR_FILE} on the driver; see Tune's error.txt of trial {trial_id}"

    def finish_all(self) -> None:
        """At the experiment's end, record every pair that is done but not recorded yet (an
        interrupted sweep leaves pairs with trials to run unrecorded, for ``--resume``)."""
        for key in self._pairs:
            self._maybe_finish(key)

    def is_recorded(self, key: str) -> bool:
        return key in self._recorded

    def save(self, checkpoint_path: str) -> None:
        """This searcher's own counters; the studies hold the rest."""
        state = {
            "started": self._started,
            "failed": self._failed,
            "pair_of": self._pair_of,
            "running": self._running,
            "recorded": self._recorded,
            "spent": {k: self.elapsed(k) for k in self._pairs},
            "clocked": set(self._clock),
        }
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self._started = state["started"]
        self._failed = state["failed"]
        self._pair_of = state["pair_of"]
        self._running = state["running"]
        self._recorded = state["recorded"]
        self._spent = state["spent"]
        now = time.monotonic()
        self._clock = {k: now for k in state["clocked"]}
        self.reconcile()

    def reconcile(self) -> None:
        """Fail the study trials Tune will not continue (see ``StudySearch.reconcile``)."""
        for search in self._searches.values():
            search.reconcile(set(self._pair_of))


class FinishPairs(Callback):
    """When the experiment ends, records every pair that is done but not recorded yet (kept apart
    from the progress display, which only shows)."""

    def __init__(self, searcher: PairSearch):
        self.searcher = searcher

    def on_experiment_end(self, trials, **info) -> None:
        self.searcher.finish_all()
