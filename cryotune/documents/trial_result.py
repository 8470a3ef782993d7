"""The result of one training run (``trials/TRIAL_ID/result.json``, ``cryotune train --json``).

The same class travels as JSON in the trial's final Tune result, is kept by the pair's study (a
user attribute of the trial) and is read back from each of them, so every copy has one shape.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from cryotune.config import TrialConfig
from cryotune.documents.document import Document


def json_safe(value):
    """Non-finite floats become None and paths strings, so results are strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class EpochReport(BaseModel):
    """What a trial knows after an evaluation; ``on_epoch`` receives it. Scores that were not
    finite read back as None."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    train_loss: float | None
    val_miou: float | None
    per_class_iou: list[float | None]
    lr: float
    seconds: float
    val_metrics: dict[str, Any]
    peak_memory_mb: float | None
    checkpoint_dir: str | None

    def to_dict(self) -> dict:
        return json_safe(self.model_dump())


class TrialResult(Document):
    """The outcome of one run: its history, best validation score and test score of that epoch."""

    KIND = "trial result"

    config: TrialConfig
    history: list[EpochReport]
    best_epoch: int
    best_val_miou: float
    best_val_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    info: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict:
        return json_safe(self.model_dump())

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: str = "a trial result") -> TrialResult:
        return cls.parse(data, where)
