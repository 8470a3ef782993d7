"""Records for the report tests, made by the sweep's own classes (``PairRecord``, ``TrialConfig``)
at chosen scores, and seed-repeat summaries written by ``cryotune train``'s own summary code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cryotune.config import TrialConfig
from cryotune.documents.record import BestResult, PairRecord, RecordTrials
from cryotune.documents.trial_result import TrialResult, json_safe


def make_record(
    sweep: str,
    dataset: str,
    model: str,
    val: float | None = None,
    test: float | None = None,
    lr: float = 1e-3,
    depth: int | None = 2,
    errors: tuple[str, ...] = (),
    **config: object,
) -> PairRecord:
    """A complete record scoring ``val``/``test``, or (``val`` None) one where no trial
    completed, failing with ``errors``."""
    complete = val is not None
    trial = TrialConfig(dataset=dataset, model=model, lr=lr, depth=depth, **config)
    return PairRecord(
        sweep=sweep,
        dataset=dataset,
        model=model,
        status="complete" if complete else "no_complete_trial",
        study_name=f"{sweep}/{dataset}/{model}",
        optuna_storage="sqlite:///optuna.db",
        search_space={"num_blocks": 12, "searched": {}, "fixed": {}},
        cryotune_version="0.1.0",
        trials=RecordTrials(
            budget=4, complete=3 if complete else 0, pruned=1, failed=0 if complete else 3, total=4
        ),
        seconds={"pair_wall": 10.0, "trials": 9.0},
        finished_at="2026-11-30T10:00:00+00:00",
        config=trial if complete else None,
        best=BestResult(val_miou=val, test_metrics=None if test is None else {"miou": test})
        if complete
        else None,
        errors=list(errors),
        repeat_command="cryotune train ..." if complete else None,
    )


@pytest.fixture
def record() -> Callable[..., PairRecord]:
    return make_record


def write_repeats(folder: Path, config: TrialConfig, tests: list[float]) -> Path:
    """``folder/summary.json`` as ``cryotune train --seeds N --out folder`` writes it, for
    seeds ``config.seed ...`` scoring ``tests`` (validation one point above)."""
    from cryotune.train.repeats import RepeatsResult, seed_list

    seeds = seed_list(config.seed, len(tests))
    trials = [
        TrialResult(
            config=config.model_copy(update={"seed": seed}),
            history=[],
            best_epoch=1,
            best_val_miou=test + 1,
            best_val_metrics={"miou": test + 1},
            test_metrics={"miou": test},
            info={},
            seconds=1.0,
        )
        for seed, test in zip(seeds, tests)
    ]
    summary = RepeatsResult(config=config, seeds=seeds, trials=trials, out=folder).summary()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
    return folder


@pytest.fixture
def repeats_of() -> Callable[..., Path]:
    return write_repeats
