"""Best-config records for the export tests, made by the sweep's own classes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cryotune.config import TrialConfig
from cryotune.documents.record import BestResult, PairRecord, RecordTrials


def make_record(dataset: str, model: str, **config: object) -> PairRecord:
    trial = TrialConfig(dataset=dataset, model=model, **{"lr": 3e-4, **config})
    return PairRecord(
        sweep="s",
        dataset=dataset,
        model=model,
        status="complete",
        study_name=f"s/{dataset}/{model}",
        optuna_storage="sqlite:///optuna.db",
        search_space={},
        cryotune_version="0.1.0",
        trials=RecordTrials(budget=1, complete=1, pruned=0, failed=0, total=1),
        seconds={"pair_wall": 1.0, "trials": 1.0},
        finished_at="2026-11-30T10:00:00+00:00",
        config=trial,
        best=BestResult(val_miou=50.0, test_metrics={"miou": 49.0}),
        repeat_command="cryotune train ...",
    )


@pytest.fixture
def best_record() -> Callable[..., PairRecord]:
    """``best_record(dataset, model, **trial_config)``: a complete record of that config."""
    return make_record
