"""Where a pair of a sweep stands, summarised from its study: the counts the live progress
display and the query layer (``cryotune.query``) show."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from cryotune.sweep.keys import ORPHANED


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

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    def to_dict(self) -> dict:
        return {**asdict(self), "done": self.done}


def live_trials(study: optuna.Study | None) -> list[FrozenTrial]:
    """The study's trials less the orphaned ones (never trained, see StudySearch.reconcile)."""
    if study is None:
        return []
    orphaned = set(study.user_attrs.get(ORPHANED, []))
    return [t for t in study.get_trials(deepcopy=False) if t.number not in orphaned]


def summarize_study(
    study: optuna.Study | None, key: str, study_name: str, budget: int, finished: bool
) -> PairStatus:
    trials = live_trials(study)
    orphaned = study.user_attrs.get(ORPHANED, []) if study is not None else []
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = 0.0
    if starts:
        live = count[TrialState.RUNNING] and not finished
        end = dt.datetime.now() if live or not ends else max(ends)
        elapsed = max(0.0, (end - min(starts)).total_seconds())
    return PairStatus(
        key=key,
        study_name=study_name,
        budget=budget,
        complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED],
        failed=count[TrialState.FAIL],
        running=count[TrialState.RUNNING],
        orphaned=len(orphaned),
        best_val_miou=max(t.value for t in complete) if complete else None,
        elapsed_s=elapsed,
        finished=finished,
    )


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def status_rows(pairs: list[dict]) -> list[tuple]:
    return [
        (
            p["key"],
            f"{p['done']}/{'?' if p['budget'] is None else p['budget']}",
            p["complete"],
            p["pruned"],
            p["failed"],
            p["running"],
            "-" if p["best_val_miou"] is None else f"{p['best_val_miou']:.2f}",
            format_elapsed(p["elapsed_s"]),
            ("finished, record unreadable" if p.get("record_error") else "finished")
            if p["finished"]
            else ("running" if p["running"] else "waiting"),
        )
        for p in pairs
    ]


STATUS_HEADERS = (
    "pair",
    "trials",
    "complete",
    "pruned",
    "failed",
    "running",
    "best val mIoU",
    "elapsed",
    "state",
)
