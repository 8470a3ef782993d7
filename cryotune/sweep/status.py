"""Where a pair of a sweep stands, summarised from its study: the counts the live progress
display and the query layer (``cryotune.query``) show."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from cryotune.observer import (
    COMPLETE,
    FAILED,
    PRUNED,
    BestTrial,
    EndedTrial,
    Outcome,
    PairCounts,
    TrialPoint,
)
from cryotune.sweep.keys import ORPHANED, RESULT, TUNE_TRIAL_ID

OUTCOME_OF: dict[TrialState, Outcome] = {
    TrialState.COMPLETE: COMPLETE,
    TrialState.PRUNED: PRUNED,
    TrialState.FAIL: FAILED,
}
"""Optuna's trial states in cryotune's words."""


@dataclass(frozen=True)
class PairStatus:
    """Trial counts of a pair; ``orphaned`` trials (never trained, see StudySearch.reconcile)
    are left out of the others."""

    key: str
    study_name: str
    budget: int
    complete: int
    pruned: int
    failed: int
    running: int
    orphaned: int
    best_val_miou: float | None
    elapsed_s: float
    finished: bool
    best_trial: int | None = None
    best_epoch: int | None = None
    best_lr: float | None = None
    best_depth: int | None = None
    first_start: dt.datetime | None = None  # aware, UTC
    last_change: dt.datetime | None = None

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    def to_dict(self) -> dict:
        return {**asdict(self), "done": self.done}


def live_trials(study: optuna.Study | None) -> list[FrozenTrial]:
    """The study's trials less the orphaned ones (never trained, see StudySearch.reconcile)."""
    if study is None:
        return []
    return without_orphans(study.get_trials(deepcopy=False), study.user_attrs)


def without_orphans(trials: list[FrozenTrial], study_attrs: dict) -> list[FrozenTrial]:
    """``trials`` less those the study's user attributes name orphaned."""
    orphaned = set(study_attrs.get(ORPHANED, []))
    return [t for t in trials if t.number not in orphaned]


def best_epoch(trial: FrozenTrial) -> int | None:
    """The validated epoch that gave ``trial`` its score: the trainer's own ``best_epoch`` when
    the study holds its result, else the first epoch whose intermediate value is the highest."""
    epoch = (trial.user_attrs.get(RESULT) or {}).get("best_epoch")
    if isinstance(epoch, int) and epoch > 0:
        return epoch
    return _top(trial.intermediate_values)[1]


def trial_best(trial: FrozenTrial) -> tuple[float | None, int | None]:
    """A trial's best validation mIoU and its epoch: its score when complete, else the highest
    value it reported (a pruned or failed trial)."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return trial.value, best_epoch(trial)
    return _top(trial.intermediate_values)


def _top(values: dict[int, float]) -> tuple[float | None, int | None]:
    """The highest intermediate value and the first epoch that reported it."""
    if not values:
        return None, None
    top = max(values.values())
    return top, min(step for step, value in values.items() if value == top)


def summarize_study(
    study: optuna.Study | None, key: str, study_name: str, budget: int, finished: bool
) -> PairStatus:
    attrs = study.user_attrs if study is not None else {}
    trials = without_orphans(study.get_trials(deepcopy=False), attrs) if study is not None else []
    orphaned = len(attrs.get(ORPHANED, []))
    return summarize_trials(trials, orphaned, key, study_name, budget, finished)


def summarize_trials(
    trials: list[FrozenTrial],
    orphaned: int,
    key: str,
    study_name: str,
    budget: int,
    finished: bool,
) -> PairStatus:
    """A pair's status from its live trials (``orphaned``: how many were left out)."""
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = best_complete(trials)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = 0.0
    if starts:
        live = count[TrialState.RUNNING] and not finished
        end = dt.datetime.now() if live or not ends else max(ends)
        elapsed = max(0.0, (end - min(starts)).total_seconds())
    config = best_trial(best) if best is not None else None
    stamps = [_utc(t) for t in (*starts, *ends)]
    return PairStatus(
        key=key,
        study_name=study_name,
        budget=budget,
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        orphaned=orphaned,
        best_val_miou=best.value if best is not None else None,
        elapsed_s=elapsed,
        finished=finished,
        best_trial=best.number if best is not None else None,
        best_epoch=best_epoch(best) if best is not None else None,
        best_lr=config.lr if config is not None else None,
        best_depth=config.depth if config is not None else None,
        first_start=min(stamps) if stamps else None,
        last_change=max(stamps) if stamps else None,
    )


def _utc(stamp: dt.datetime) -> dt.datetime:
    """Optuna stores naive local times; aware ones compare alike across sources."""
    return stamp.astimezone(dt.timezone.utc)


def best_complete(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial with the highest score (the first of equals), None before one ends."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: t.value) if complete else None


def best_trial(trial: FrozenTrial) -> BestTrial:
    """A complete trial's number, lr and depth (as it trained: from its result's config)."""
    config = (trial.user_attrs.get(RESULT) or {}).get("config") or {}
    return BestTrial(
        number=trial.number,
        lr=config.get("lr", trial.params.get("lr")),
        depth=config.get("depth", trial.params.get("depth")),
        epoch=best_epoch(trial),
    )


def pair_counts(study: optuna.Study | None) -> PairCounts:
    trials = live_trials(study)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = best_complete(trials)
    return PairCounts(
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        best_val_miou=best.value if best is not None else None,
        best=best_trial(best) if best is not None else None,
    )


def trial_points(study: optuna.Study | None) -> list[TrialPoint]:
    """Complete trials at their score, pruned ones at the last epoch they reported."""
    points = []
    for trial in live_trials(study):
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            value = trial.value
        elif trial.state == TrialState.PRUNED and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            continue
        points.append(
            TrialPoint(
                trial.number,
                OUTCOME_OF[trial.state],
                value,
                trial.params.get("lr"),
                trial.params.get("depth"),
            )
        )
    return points


def ended_trials(study: optuna.Study | None, pair: str) -> list[EndedTrial]:
    """The study's ended trials that ran in Tune (they have a trial folder)."""
    return [
        EndedTrial(pair, t.user_attrs[TUNE_TRIAL_ID], t.number, OUTCOME_OF[t.state])
        for t in live_trials(study)
        if t.state in OUTCOME_OF and TUNE_TRIAL_ID in t.user_attrs
    ]


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def best_where(trial: int | None, epoch: int | None) -> str:
    """Where a best score was reached, for people: ``trial 3, epoch 40``."""
    if trial is None:
        return "-"
    return f"trial {trial}" + ("" if epoch is None else f", epoch {epoch}")


def status_rows(pairs: list[dict]) -> list[tuple]:
    """Table rows of pairs given as ``PairStatus.to_dict()`` or ``PairSummary.model_dump()``."""
    return [
        (
            p["key"],
            f"{p['done']}/{'?' if p['budget'] is None else p['budget']}",
            p["complete"],
            p["pruned"],
            p["failed"],
            p["running"],
            "-" if p["best_val_miou"] is None else f"{p['best_val_miou']:.2f}",
            best_where(*_best_place(p)),
            format_elapsed(p["elapsed_s"]),
            ("finished, record unreadable" if p.get("record_error") else "finished")
            if p["finished"]
            else ("running" if p["running"] else "waiting"),
        )
        for p in pairs
    ]


def _best_place(pair: dict) -> tuple[int | None, int | None]:
    if "best_trial" in pair:
        return pair["best_trial"], pair.get("best_epoch")
    best = pair.get("best_config") or {}
    return best.get("study_trial"), best.get("epoch")


STATUS_HEADERS = (
    "pair",
    "trials",
    "complete",
    "pruned",
    "failed",
    "running",
    "best val mIoU",
    "reached at",
    "elapsed",
    "state",
)
