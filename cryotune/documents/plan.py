"""The resolved plan of a sweep (``NAME/sweep.json``; the sweep run's ``sweep.json`` artifact):
what ``--resume`` continues and what readers list before any pair has a record."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cryotune.documents.document import Document


class PlannedPair(BaseModel):
    """One (dataset, model) pair as planned: its study, budget, space and base config."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="DATASET/MODEL")
    dataset: str
    model: str
    study_name: str
    trials: int
    space: dict[str, Any]
    base_config: dict[str, Any]


class SweepPlanDocument(Document):
    KIND = "sweep plan"

    name: str
    datasets: list[str]
    pairs: list[str]
    spec: dict[str, Any] = Field(description="the resolved sweep spec")
    weights: str | None
    data_roots: dict[str, str]
    skipped: list[str] = []
    pair_plans: list[PlannedPair]
    tracking_uri: str | None = None
    cryotune_version: str | None = None
    git_commit: str | None = None
    storage: str | None = Field(None, description="where the Tune experiment is, if not here")

    @property
    def optuna_storage(self) -> str | None:
        return self.spec.get("optuna_storage")

    def identity(self) -> dict:
        """What must match for ``--resume`` (``SweepPlan.identity`` of the plan as started)."""
        return {
            "datasets": self.datasets,
            "pairs": self.pairs,
            "spec": self.spec,
            "weights": self.weights,
            "data_roots": self.data_roots,
        }
