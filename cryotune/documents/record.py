"""The best-config record of a pair (``NAME/records/DATASET__MODEL.json``) and the leaderboard.

Written once when a pair ends, from its study: the resolved TrialConfig of the best COMPLETE
trial, the search space, its validation and test metrics, seeds, data fingerprints, weights hash,
cryotune version and commit, the Tune trial id and study trial number, the MLflow run ids, counts
and time. ``cryotune status`` / ``best``, the HTTP API (over a workspace or over MLflow, where the
pair run holds a copy) and the MLflow leaderboard table all read it through this class.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cryotune.config import TrialConfig
from cryotune.documents.document import Document, DocumentError

log = logging.getLogger(__name__)

COMPLETE = "complete"
NO_COMPLETE_TRIAL = "no_complete_trial"
UNREADABLE = "unreadable"


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordTrials(Part):
    """The pair's trials by outcome when it ended."""

    budget: int = Field(description="trials planned")
    complete: int
    pruned: int
    failed: int
    total: int
    orphaned: int = Field(0, description="trials failed on resume because they never trained")


class RecordSeconds(Part):
    pair_wall: float = Field(description="wall time from the pair's first trial to its record")
    trials: float = Field(description="the trials' own times, summed")


class BestResult(Part):
    """The best trial's scores: validation at its best epoch, test of that checkpoint."""

    val_miou: float
    epoch: int | None = None
    per_class_iou: list[float | None] | None = None
    val_metrics: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None


class RecordSeeds(Part):
    trial: int
    sampler: int


class RecordData(Part):
    root: str | None = Field(None, description="the dataset folder the trials read")
    fingerprints: dict[str, Any] | None = Field(None, description="per split: files and sizes")


class RecordWeights(Part):
    file: str | None = None
    sha256: str = Field("random", description="the checkpoint's hash, or 'random'")


class RecordIds(Part):
    """Where the pair's best trial lives in each store."""

    tune_trial_id: str | None = Field(None, description="also the trial's folder name")
    study_trial: int | None = Field(None, description="the trial's number in the pair's study")
    mlflow_run_id: str | None = Field(None, description="the best trial's MLflow run")
    mlflow_pair_run_id: str | None = Field(None, description="the pair's MLflow run")
    mlflow_experiment_id: str | None = None


class PairRecord(Document):
    """What a finished pair found, enough to repeat and audit it."""

    KIND = "best-config record"
    SCHEMA = 2
    MIGRATIONS = {1: lambda d: _renamed_ids(d, optuna_trial_number="study_trial")}

    sweep: str
    dataset: str
    model: str
    status: Literal["complete", "no_complete_trial"]
    study_name: str
    optuna_storage: str = Field(description="the study store, password masked")
    search_space: dict[str, Any]
    cryotune_version: str
    git_commit: str | None = None
    trials: RecordTrials
    seconds: RecordSeconds
    finished_at: str
    tracking_uri: str | None = Field(None, description="the MLflow store the sweep logged to")
    ids: RecordIds = RecordIds()
    best: BestResult | None = None
    errors: list[str] = Field([], description="the last errors, when no trial completed")
    config: TrialConfig | None = Field(None, description="the best trial's whole config")
    params: dict[str, Any] = Field({}, description="what the sampler chose for it")
    seeds: RecordSeeds | None = None
    data: RecordData | None = None
    weights: RecordWeights | None = None
    model_info: dict[str, Any] = {}
    trial_seconds: float | None = None
    checkpoint: str | None = Field(None, description="the best trial's best.pt, while kept")
    repeat_command: str | None = Field(None, description="`cryotune train` repeating it")
    repeat_command_lacks: list[str] = Field(
        [], description="config fields differing from defaults that `train` has no flag for"
    )
    record_file: str | None = Field(
        None, exclude=True, description="where this record was read from (not stored)"
    )

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.model}"

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE and self.best is not None and self.config is not None

    @property
    def val_miou(self) -> float | None:
        return self.best.val_miou if self.best is not None else None

    @property
    def test_miou(self) -> float | None:
        return (self.best.test_metrics or {}).get("miou") if self.best is not None else None

    @classmethod
    def read(cls, path: Path) -> PairRecord:
        record = super().read(path)
        return record.model_copy(update={"record_file": str(path)})


def _renamed_ids(data: dict, **renames: str) -> dict:
    ids = {renames.get(k, k): v for k, v in (data.get("ids") or {}).items()}
    return {**data, "ids": ids}


class UnreadableRecord(BaseModel):
    """Stands in for a record file that cannot be read, so its pair shows it is damaged."""

    status: Literal["unreadable"] = UNREADABLE
    dataset: str
    model: str
    error: str = Field(description="the file and what is wrong with it")


def read_record(path: Path) -> PairRecord | UnreadableRecord:
    """A record file, or a stand-in naming the file and what is wrong (logged at WARNING)."""
    try:
        return PairRecord.read(path)
    except DocumentError as exc:
        log.warning("%s", exc)
        dataset, _, model = path.stem.partition("__")
        return UnreadableRecord(dataset=dataset, model=model, error=str(exc))


def leaderboard(records: Iterable[PairRecord]) -> list[PairRecord]:
    """Each model's best complete record (over sweeps, if several), best validation mIoU first;
    ties keep the order given."""
    best: dict[tuple[str, str], PairRecord] = {}
    for record in records:
        if not record.complete:
            continue
        current = best.get((record.dataset, record.model))
        if current is None or record.val_miou > current.val_miou:
            best[(record.dataset, record.model)] = record
    return sorted(best.values(), key=lambda r: -r.val_miou)
