"""What the query layer answers: typed summaries of sweeps, pairs, leaderboards and records.

The same models are the HTTP API's response schemas and the JSON of ``cryotune status`` /
``cryotune best``, so every reader sees one shape whichever source (workspace or MLflow) backs it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from cryotune.config import TrialConfig
from cryotune.documents.record import BestResult, PairRecord, RecordTrials
from cryotune.reference import (
    PROTOCOL_DOC,
    PROTOCOL_NOTES,
    later_frozen_miou,
    paper_frozen_miou,
)

if TYPE_CHECKING:
    from cryotune.sweep.status import PairStatus

SweepState = Literal["running", "finished", "interrupted"]
PairState = Literal["waiting", "running", "finished"]


class TrialCounts(BaseModel):
    """Trials of a pair or sweep by state; ``done`` = complete + pruned + failed."""

    budget: int | None = Field(None, description="trials planned; None where the source lacks it")
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    done: int = 0

    @classmethod
    def total(cls, counts: list[TrialCounts]) -> TrialCounts:
        budgets = [c.budget for c in counts]
        return cls(
            budget=None if None in budgets else sum(budgets),
            **{
                k: sum(getattr(c, k) for c in counts)
                for k in ("complete", "pruned", "failed", "running", "done")
            },
        )


class BestSoFar(BaseModel):
    """The hyper-parameters of a pair's best complete trial so far."""

    lr: float
    depth: int | None
    study_trial: int | None = Field(None, description="Optuna trial number")
    epoch: int | None = Field(None, description="the validated epoch that scored best_val_miou")


class PairSummary(TrialCounts):
    """One (dataset, model) pair of a sweep: its trial counts and best result so far."""

    key: str = Field(description="DATASET/MODEL")
    dataset: str
    model: str
    study_name: str
    state: PairState
    finished: bool
    orphaned: int = Field(0, description="trials failed on resume because they never trained")
    best_val_miou: float | None
    best_config: BestSoFar | None
    elapsed_s: float
    mlflow_pair_run_id: str | None = Field(None, description="the pair's MLflow run")
    record_error: str | None = Field(
        None, description="the pair's record exists but cannot be read: the file and why"
    )

    @classmethod
    def of_status(
        cls, status: PairStatus, finished: bool, live: bool, **fields: object
    ) -> PairSummary:
        """A pair from its status row (read from its study, or a live driver's status);
        ``live``: a driver runs the sweep, so its running trials run and its time goes on."""
        elapsed = status.elapsed_s
        if live and status.running and not finished and status.first_start is not None:
            elapsed = (dt.datetime.now(dt.timezone.utc) - status.first_start).total_seconds()
        best = None
        if status.best_trial is not None and status.best_lr is not None:
            best = BestSoFar(
                lr=status.best_lr,
                depth=status.best_depth,
                study_trial=status.best_trial,
                epoch=status.best_epoch,
            )
        dataset, _, model = status.key.partition("/")
        return cls(
            key=status.key,
            dataset=dataset,
            model=model,
            study_name=status.study_name,
            state="finished" if finished else "running" if live and status.running else "waiting",
            finished=finished,
            budget=status.budget,
            complete=status.complete,
            pruned=status.pruned,
            failed=status.failed,
            running=status.running,
            done=status.done,
            orphaned=status.orphaned,
            best_val_miou=status.best_val_miou,
            best_config=best,
            elapsed_s=max(0.0, elapsed),
            **fields,
        )


class SweepSummary(BaseModel):
    name: str
    state: SweepState
    datasets: list[str]
    models: list[str]
    trials: TrialCounts
    started_at: dt.datetime | None
    updated_at: dt.datetime | None
    location: str = Field(description="the sweep folder, or the MLflow experiment")


class SweepDetail(SweepSummary):
    pairs: list[PairSummary]

    def summary(self) -> SweepSummary:
        return SweepSummary(**self.model_dump(exclude={"pairs"}))


class SweepPage(BaseModel):
    """One page of the sweep list, by name; ``next_page_token`` asks for the next (None: last)."""

    sweeps: list[SweepSummary]
    next_page_token: str | None = None


PAPER_FIELD = (
    "the Cryo-Bench paper's frozen-encoder mIoU of this model on this dataset (100% labels, "
    "fixed lr); how its protocol differs from cryotune's: " + PROTOCOL_DOC
)
LATER_FIELD = (
    "the later Cryo-Bench README's frozen-encoder mIoU (SICD re-run on whole scenes); "
    "see " + PROTOCOL_DOC
)
NOTE_FIELD = "how the reference numbers were measured where that differs from cryotune"


class BestRecord(PairRecord):
    """The best-config record of a finished pair (``records/DATASET__MODEL.json``), with the
    ``cryotune train`` command that repeats it and the paper's frozen mIoU for reference."""

    status: Literal["complete"]
    config: TrialConfig
    best: BestResult
    repeat_command: str
    paper_frozen_miou: float | None = Field(None, description=PAPER_FIELD)
    later_frozen_miou: float | None = Field(None, description=LATER_FIELD)
    reference_note: str | None = Field(None, description=NOTE_FIELD)

    @classmethod
    def of(cls, record: PairRecord) -> BestRecord:
        """``record`` with the Cryo-Bench reference numbers of its dataset and model."""
        return cls.model_validate(
            {
                **record.model_dump(by_alias=True),
                "paper_frozen_miou": paper_frozen_miou(record.dataset, record.model),
                "later_frozen_miou": later_frozen_miou(record.dataset, record.model),
                "reference_note": PROTOCOL_NOTES.get(record.dataset),
                "record_file": record.record_file,
            }
        )


class LeaderboardEntry(BaseModel):
    model: str
    sweep: str
    val_miou: float
    test_miou: float | None
    lr: float
    depth: int | None
    num_blocks: int | None
    config: TrialConfig
    trials: RecordTrials
    mlflow_run_id: str | None = Field(None, description="the best trial's MLflow run")
    paper_frozen_miou: float | None = Field(description=PAPER_FIELD)
    later_frozen_miou: float | None = Field(None, description=LATER_FIELD)
    reference_note: str | None = Field(None, description=NOTE_FIELD)
    repeat_command: str


class Leaderboard(BaseModel):
    """Each model's best record on a dataset over every sweep, best validation mIoU first."""

    dataset: str
    entries: list[LeaderboardEntry]
    paper_reference: str = Field(description="where paper_frozen_miou comes from")
    later_reference: str = Field("", description="where later_frozen_miou comes from")
    protocol: str = Field(
        PROTOCOL_DOC, description="cryotune's protocol beside Cryo-Bench's, point by point"
    )
    unreadable_records: list[str] = Field(
        [], description="record files of this dataset that cannot be read, and what is wrong"
    )
