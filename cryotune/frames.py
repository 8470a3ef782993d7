"""Any answer of the Python API as a pandas DataFrame, one row per thing it lists.

The answers are nested pydantic models (a record holds its config, scores, seeds, data
fingerprints...); a notebook wants a flat table to sort, filter and plot, with the columns a
reader compares: one row per pair for a sweep's status, per record for best configs and sweep
results, per sweep for a list of sweeps, per model for a leaderboard. Each answer's full detail
stays on the models themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryotune.documents.record import PairRecord, UnreadableRecord
from cryotune.query.models import Leaderboard, PairSummary, SweepDetail, SweepSummary

if TYPE_CHECKING:
    import pandas as pd


def _pair_row(pair: PairSummary, sweep: str | None = None) -> dict[str, Any]:
    best = pair.best_config
    return {
        "sweep": sweep,
        "pair": pair.key,
        "dataset": pair.dataset,
        "model": pair.model,
        "state": pair.state,
        "budget": pair.budget,
        "done": pair.done,
        "complete": pair.complete,
        "pruned": pair.pruned,
        "failed": pair.failed,
        "running": pair.running,
        "best_val_miou": pair.best_val_miou,
        "best_trial": best.study_trial if best else None,
        "best_epoch": best.epoch if best else None,
        "best_lr": best.lr if best else None,
        "best_depth": best.depth if best else None,
        "elapsed_s": pair.elapsed_s,
        "record_error": pair.record_error,
    }


def _sweep_row(sweep: SweepSummary) -> dict[str, Any]:
    return {
        "sweep": sweep.name,
        "state": sweep.state,
        "datasets": ",".join(sweep.datasets),
        "models": ",".join(sweep.models),
        **{k: getattr(sweep.trials, k) for k in ("budget", "done", "complete", "pruned")},
        "failed": sweep.trials.failed,
        "running": sweep.trials.running,
        "started_at": sweep.started_at,
        "updated_at": sweep.updated_at,
        "location": sweep.location,
    }


def _record_row(record: PairRecord | UnreadableRecord) -> dict[str, Any]:
    if isinstance(record, UnreadableRecord):
        return {"dataset": record.dataset, "model": record.model, "status": record.status}
    config, best, trials = record.config, record.best, record.trials
    row = {
        "sweep": record.sweep,
        "dataset": record.dataset,
        "model": record.model,
        "status": record.status,
        "val_miou": record.val_miou,
        "test_miou": record.test_miou,
        "best_epoch": best.epoch if best else None,
        "lr": config.lr if config else None,
        "depth": config.depth if config else None,
        "num_blocks": record.search_space.get("num_blocks"),
        "complete": trials.complete,
        "pruned": trials.pruned,
        "failed": trials.failed,
        "budget": trials.budget,
        "study_trial": record.ids.study_trial,
        "tune_trial_id": record.ids.tune_trial_id,
        "checkpoint": record.checkpoint,
        "repeat_command": record.repeat_command,
    }
    for reference in ("paper_frozen_miou", "later_frozen_miou"):
        if hasattr(record, reference):
            row[reference] = getattr(record, reference)
    return row


def _leaderboard_rows(board: Leaderboard) -> list[dict[str, Any]]:
    return [
        {
            "dataset": board.dataset,
            "model": e.model,
            "sweep": e.sweep,
            "val_miou": e.val_miou,
            "test_miou": e.test_miou,
            "lr": e.lr,
            "depth": e.depth,
            "num_blocks": e.num_blocks,
            "complete": e.trials.complete,
            "pruned": e.trials.pruned,
            "failed": e.trials.failed,
            "paper_frozen_miou": e.paper_frozen_miou,
            "later_frozen_miou": e.later_frozen_miou,
            "mlflow_run_id": e.mlflow_run_id,
            "repeat_command": e.repeat_command,
        }
        for e in board.entries
    ]


def _rows(answer: object) -> list[dict[str, Any]]:
    from cryotune.client import SweepResult

    if isinstance(answer, SweepDetail):
        return [_pair_row(p, answer.name) for p in answer.pairs]
    if isinstance(answer, SweepSummary):
        return [_sweep_row(answer)]
    if isinstance(answer, PairSummary):
        return [_pair_row(answer)]
    if isinstance(answer, PairRecord | UnreadableRecord):
        return [_record_row(answer)]
    if isinstance(answer, SweepResult):
        return [_record_row(r) for r in answer.records]
    if isinstance(answer, Leaderboard):
        return _leaderboard_rows(answer)
    if isinstance(answer, Sequence) and not isinstance(answer, str):
        return [row for item in answer for row in _rows(item)]
    raise TypeError(
        f"to_frame: cannot tabulate a {type(answer).__name__}; give an answer of cryotune's "
        "Python API (status, sweeps, best, leaderboard, a sweep's result) or a list of them"
    )


def to_frame(answer: object) -> pd.DataFrame:
    """``answer`` as a DataFrame: a sweep's status one row per pair, best records and sweep
    results one row per record, sweeps one row per sweep, a leaderboard one row per model."""
    import pandas as pd

    return pd.DataFrame(_rows(answer))
