"""Best-config records: what a finished pair found, enough to repeat and audit it.

A record is JSON in the workspace (``NAME/records/DATASET__MODEL.json``), written once when the
pair ends: the resolved TrialConfig of the best COMPLETE trial, the search space, its validation
and test metrics, seeds, data fingerprints, weights hash, cryotune version and commit, the Tune
trial id and study trial number, the MLflow run ids (``cryotune.tracking``), counts and time.
``cryotune status`` and ``cryotune best`` read them back; the pair's MLflow run holds a copy.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from cryotune.files import write_json_atomic
from cryotune.sweep.keys import ERROR, ORPHANED, RESULT, TUNE_TRIAL_ID
from cryotune.sweep.status import live_trials
from cryotune.sweep.storage import masked_url
from cryotune.sweep.workspace import SweepWorkspace, list_sweeps

if TYPE_CHECKING:
    from cryotune.tracking.sweep import SweepTracker

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1

# Deletes ended trials' checkpoints off Tune's event loop: unlinking a 180 MB ``last.pt`` (a small
# U-Net with its optimizer state) took 30 ms of every trial's turnaround here. Its thread is
# joined at exit, and ``PairRecorder.finish`` prunes the pair's trials again, synchronously.
_REMOVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryotune-prune")

# `cryotune train` flags for TrialConfig fields; fields without a flag are listed in the record.
TRAIN_FLAGS = {
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "depth": "--depth",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "label_fraction": "--label-fraction",
    "seed": "--seed",
    "data_root": "--data-root",
    "weights": "--weights",
    "cache_dir": "--cache-dir",
    "crop_size": "--crop-size",
    "max_steps_per_epoch": "--max-steps-per-epoch",
    "device": "--device",
    "val_every": "--val-every",
    "view": "--view",
    "precision": "--precision",
    "neck_pool": "--neck-pool",
    "swin_taps": "--swin-taps",
}


def repeat_command(config: dict) -> tuple[str, list[str]]:
    """``cryotune train`` for a config, and the fields differing from defaults it cannot set."""
    from cryotune.config import TrialConfig

    defaults = TrialConfig(dataset=config["dataset"], model=config["model"]).model_dump(mode="json")
    args = ["cryotune", "train", config["dataset"], config["model"]]
    missing = []
    for key, value in config.items():
        if key in ("dataset", "model") or value is None:
            continue
        flag = TRAIN_FLAGS.get(key)
        if flag is not None:
            if key in ("lr", "depth", "epochs", "seed") or value != defaults.get(key):
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
        elif value != defaults.get(key):
            missing.append(key)
    return shlex.join(args), missing


@dataclass(frozen=True)
class PairRecorder:
    """Writes a pair's record when it ends and prunes checkpoints the spec does not keep; with a
    ``tracker``, keeps the pair's MLflow runs in step (trial outcomes, record, plots)."""

    workspace: SweepWorkspace
    storage_url: str
    sampler_seed: int
    keep_checkpoints: str
    git_commit: str | None
    cryotune_version: str
    tracker: SweepTracker | None = None

    def finish(self, pair, study: optuna.Study, seconds: float) -> dict:
        _REMOVER.submit(lambda: None).result()  # deletions asked for so far are done
        record = build_record(self, pair, study, seconds)
        if self.tracker is not None:
            self.tracker.deliver_pair_trials(study)
            record["ids"].update(self.tracker.record_ids(pair.key, record))
            record["tracking_uri"] = self.tracker.uri
            self.tracker.pair_ending(pair, study, record)
        write_json_atomic(self.workspace.record_path(pair.dataset, pair.model), record)
        if self.keep_checkpoints == "best":
            self._prune(study, record["ids"]["tune_trial_id"])
        if self.tracker is not None:
            self.tracker.pair_finished(pair)
        return record

    def trial_context(self, pair) -> dict | None:
        """What a trial of ``pair`` needs to log its own MLflow run (None: nothing tracked)."""
        return None if self.tracker is None else self.tracker.trial_context(pair)

    def trial_tracked(
        self, pair, trial_id: str, study_trial: int | None, state: TrialState, study
    ) -> None:
        if self.tracker is not None:
            self.tracker.trial_ended(pair, trial_id, study_trial, state, study)

    def trial_ended(self, trial_id: str, state: TrialState) -> None:
        """A trial that ended never resumes: drop its ``last.pt``, and ``best.pt`` unless it may
        be the pair's best (only COMPLETE trials can be); in the background."""
        if self.keep_checkpoints == "best":
            _REMOVER.submit(_unlink, self._ended_checkpoints(trial_id, state))

    def _ended_checkpoints(self, trial_id: str, state: TrialState) -> list[Path]:
        best, last = _checkpoint_files()
        folder = self.workspace.trials_dir / trial_id
        return [folder / last] if state == TrialState.COMPLETE else [folder / last, folder / best]

    def _prune(self, study: optuna.Study, best_trial_id: str | None) -> None:
        """Keep only the best trial's ``best.pt`` once the pair has ended."""
        best, _ = _checkpoint_files()
        for frozen in study.get_trials(deepcopy=False):
            trial_id = frozen.user_attrs.get(TUNE_TRIAL_ID)
            if trial_id is not None and frozen.state != TrialState.RUNNING:
                _unlink(self._ended_checkpoints(trial_id, frozen.state))
                if trial_id != best_trial_id:
                    (self.workspace.trials_dir / trial_id / best).unlink(missing_ok=True)


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _checkpoint_files() -> tuple[str, str]:
    """The trainer's (best, last) checkpoint names, imported late: reading records needs no torch."""
    from cryotune.train.trainer import BEST, LAST

    return BEST, LAST


def _trial_seconds(frozen) -> float:
    if frozen.datetime_start and frozen.datetime_complete:
        return (frozen.datetime_complete - frozen.datetime_start).total_seconds()
    return 0.0


def build_record(recorder: PairRecorder, pair, study: optuna.Study, seconds: float) -> dict:
    trials = live_trials(study)
    orphaned = study.user_attrs.get(ORPHANED, [])
    count = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE and RESULT in t.user_attrs]
    base = {
        "schema": RECORD_SCHEMA,
        "sweep": pair.sweep,
        "dataset": pair.dataset,
        "model": pair.model,
        "study_name": pair.study_name,
        "optuna_storage": masked_url(recorder.storage_url),
        "search_space": pair.space.to_dict(),
        "cryotune_version": recorder.cryotune_version,
        "git_commit": recorder.git_commit,
        "trials": {
            "budget": pair.trials,
            "complete": count["complete"],
            "pruned": count["pruned"],
            "failed": count["fail"],
            "total": len(trials),
            "orphaned": len(orphaned),
        },
        "seconds": {
            "pair_wall": round(seconds, 3),
            "trials": round(sum(_trial_seconds(t) for t in trials), 3),
        },
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tracking_uri": None,
    }
    no_run = {"mlflow_run_id": None, "mlflow_pair_run_id": None, "mlflow_experiment_id": None}
    if not complete:
        errors = [t.user_attrs[ERROR] for t in trials if ERROR in t.user_attrs]
        return {
            **base,
            "status": "no_complete_trial",
            "best": None,
            "errors": errors[-3:],
            "ids": {"tune_trial_id": None, "optuna_trial_number": None, **no_run},
        }
    best = max(complete, key=lambda t: t.value)
    result = best.user_attrs[RESULT]
    config, info = result["config"], result.get("info", {})
    trial_id = best.user_attrs.get(TUNE_TRIAL_ID)
    command, not_settable = repeat_command(config)
    checkpoint = (
        recorder.workspace.trials_dir / trial_id / _checkpoint_files()[0] if trial_id else None
    )
    return {
        **base,
        "status": "complete",
        "config": config,
        "params": dict(best.params),
        "best": {
            "val_miou": result["best_val_miou"],
            "epoch": result["best_epoch"],
            "per_class_iou": result["best_val_metrics"].get("iou"),
            "val_metrics": result["best_val_metrics"],
            "test_metrics": result.get("test_metrics"),
        },
        "seeds": {"trial": config["seed"], "sampler": recorder.sampler_seed},
        "data": {
            "root": info.get("data_root", config.get("data_root")),
            "fingerprints": info.get("data_fingerprints"),
        },
        "weights": {
            "file": info.get("weights"),
            "sha256": info.get("weights_sha256") or "random",
        },
        "model_info": {
            k: v
            for k, v in info.items()
            if k not in ("data_fingerprints", "weights", "weights_sha256", "data_root")
        },
        "ids": {
            "tune_trial_id": trial_id,
            "optuna_trial_number": best.number,
            **no_run,
        },
        "trial_seconds": result.get("seconds"),
        "checkpoint": str(checkpoint) if checkpoint is not None and checkpoint.exists() else None,
        "repeat_command": command,
        "repeat_command_lacks": not_settable,
    }


UNREADABLE = "unreadable"


def read_record(path: Path) -> dict:
    """A record file, or a stand-in of status ``unreadable`` naming the file and what is wrong
    (logged), so one damaged file is reported where its pair is shown instead of hiding it."""
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not {"dataset", "model", "status"} <= set(record):
            raise ValueError("not a best-config record (dataset, model or status missing)")
        return record
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        reason = f"{path}: unreadable record ({type(exc).__name__}: {exc})"
        log.warning("%s", reason)
        dataset, _, model = path.stem.partition("__")
        return {"status": UNREADABLE, "dataset": dataset, "model": model, "error": reason}


def read_records(
    root: str | Path | None, dataset: str | None = None, model: str | None = None
) -> list[dict]:
    """Every record in the workspace (all sweeps), optionally of one dataset and model;
    unreadable files come as ``read_record``'s stand-ins."""
    records = []
    for workspace in list_sweeps(root):
        for path in sorted(workspace.records_dir.glob("*.json")):
            record = read_record(path)
            if dataset is not None and record.get("dataset") != dataset:
                continue
            if model is not None and record.get("model") != model:
                continue
            records.append({"sweep": workspace.name, **record, "record_file": str(path)})
    return records


def record_rows(records: list[dict]) -> list[tuple]:
    rows = []
    for r in records:
        if r.get("status") != "complete":
            rows.append(
                (r["dataset"], r["model"], r["sweep"], "-", "-", "-", "-", "no complete trial")
            )
            continue
        test = (r["best"].get("test_metrics") or {}).get("miou")
        rows.append(
            (
                r["dataset"],
                r["model"],
                r["sweep"],
                f"{r['config']['lr']:.3g}",
                f"{r['config']['depth']}/{r['search_space']['num_blocks']}",
                f"{r['best']['val_miou']:.2f}",
                "-" if test is None else f"{test:.2f}",
                f"{r['trials']['complete']}/{r['trials']['pruned']}/{r['trials']['failed']}",
            )
        )
    return rows


RECORD_HEADERS = (
    "dataset",
    "model",
    "sweep",
    "lr",
    "depth",
    "val mIoU",
    "test mIoU",
    "complete/pruned/failed",
)
