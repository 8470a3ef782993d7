"""The sweep's side of best-config records: built from a pair's study when it ends, written
to ``NAME/records/DATASET__MODEL.json`` (the class is ``cryotune.documents.record.PairRecord``),
and shown as a table; checkpoints the spec does not keep are pruned as trials end.
"""

from __future__ import annotations

import datetime as dt
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cryotune.documents.record import (
    COMPLETE,
    NO_COMPLETE_TRIAL,
    BestResult,
    PairRecord,
    RecordData,
    RecordIds,
    RecordSeconds,
    RecordSeeds,
    RecordTrials,
    RecordWeights,
    UnreadableRecord,
    read_record,
)
from cryotune.documents.trial_result import TrialResult
from cryotune.masking import masked_url
from cryotune.observer import EndedTrial, PairEnd, SweepObserver
from cryotune.sweep.keys import ERROR, ORPHANED, RESULT, TUNE_TRIAL_ID
from cryotune.sweep.status import (
    OUTCOME_OF,
    ended_trials,
    live_trials,
    pair_counts,
    trial_points,
)
from cryotune.sweep.storage import study_storage
from cryotune.sweep.workspace import SweepWorkspace

# Deletes ended trials' checkpoints off Tune's event loop: unlinking a 180 MB ``last.pt`` (a small
# U-Net with its optimizer state) took 30 ms of every trial's turnaround here. Its thread is
# joined at exit, and ``PairRecorder.finish`` prunes the pair's trials again, synchronously.
_REMOVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryotune-prune")


def repeat_command(config: dict) -> tuple[str, list[str]]:
    """``cryotune train`` for a config, and the fields differing from defaults it cannot set."""
    from cryotune.cli_flags import train_arguments

    args, missing = train_arguments(config)
    return shlex.join(["cryotune", "train", *args]), missing


@dataclass(frozen=True)
class PairRecorder:
    """Writes a pair's record when it ends and prunes checkpoints the spec does not keep; tells
    the ``observer`` (MLflow tracking, if any) as trials and pairs end."""

    workspace: SweepWorkspace
    storage_url: str
    sampler_seed: int
    keep_checkpoints: str
    git_commit: str | None
    cryotune_version: str
    observer: SweepObserver | None = None
    tracking_uri: str | None = None

    def finish(self, pair, study: optuna.Study, seconds: float) -> PairRecord:
        _REMOVER.submit(lambda: None).result()  # deletions asked for so far are done
        record = build_record(self, pair, study, seconds)
        if self.observer is not None:
            record = self._with_observed_ids(record)
            self.observer.pair_ending(self._pair_end(pair, study, record))
        record.write(self.workspace.record_path(pair.dataset, pair.model))
        if self.keep_checkpoints != "all":
            kept = record.ids.tune_trial_id if self.keep_checkpoints == "best" else None
            self._prune(study, kept)
        if self.observer is not None:
            self.observer.pair_recorded(pair.key, self.sweep_records())
        return record

    def _pair_end(self, pair, study: optuna.Study, record: PairRecord) -> PairEnd:
        from cryotune.data.datasets import get_dataset

        trial_id = record.ids.tune_trial_id
        preview = self.workspace.trials_dir / str(trial_id) / "preview.npz"
        return PairEnd(
            record=record,
            counts=pair_counts(study),
            points=tuple(trial_points(study)),
            trial_ids=tuple(t.trial_id for t in ended_trials(study, pair.key)),
            classes=tuple(get_dataset(pair.dataset).classes),
            preview=str(preview) if trial_id and preview.is_file() else None,
        )

    def _with_observed_ids(self, record: PairRecord) -> PairRecord:
        """The record with the ids the observer knows (those it does not know are kept)."""
        known = self.observer.record_ids(record.key, record.ids.tune_trial_id)
        ids = record.ids.model_copy(
            update={k: v for k, v in known.model_dump().items() if v is not None}
        )
        return record.model_copy(update={"ids": ids, "tracking_uri": self.tracking_uri})

    def sweep_records(self) -> list[PairRecord]:
        """The sweep's readable records, every dataset."""
        found = [read_record(p) for p in sorted(self.workspace.records_dir.glob("*.json"))]
        return [r for r in found if isinstance(r, PairRecord)]

    def refresh_ids(self) -> bool:
        """Give records written while the tracking store was down the ids known now; True
        when one changed."""
        if self.observer is None:
            return False
        changed = False
        for path in sorted(self.workspace.records_dir.glob("*.json")):
            record = read_record(path)
            if not isinstance(record, PairRecord):
                continue
            updated = self._with_observed_ids(record)
            if updated == record:
                continue
            record = updated
            record.write(path)
            self.observer.record_changed(record, self.sweep_records())
            changed = True
        return changed

    def reconcile_observer(self, pairs) -> int:
        """Let the observer close what a killed driver left open: every ended trial of the
        ``pairs``' studies and every record written. Returns how many things it closed."""
        if self.observer is None:
            return 0
        storage = study_storage(self.storage_url)
        existing = set(optuna.get_all_study_names(storage))
        ended, recorded = [], []
        for pair in pairs:
            if pair.study_name in existing:
                study = optuna.load_study(study_name=pair.study_name, storage=storage)
                ended += ended_trials(study, pair.key)
            path = self.workspace.record_path(pair.dataset, pair.model)
            record = read_record(path) if path.exists() else None
            if isinstance(record, PairRecord):
                recorded.append(record)
        return self.observer.reconcile(ended, recorded)

    def trial_context(self, pair) -> dict | None:
        """What a trial of ``pair`` needs to report on its own (None: nothing observes)."""
        return None if self.observer is None else self.observer.trial_context(pair.key)

    def trial_observed(self, pair, trial_id: str, study_trial: int | None, state, study) -> None:
        if self.observer is not None:
            ended = EndedTrial(pair.key, trial_id, study_trial, OUTCOME_OF[state])
            self.observer.trial_ended(ended, pair_counts(study))

    def trial_ended(self, trial_id: str, state: TrialState) -> None:
        """A trial that ended never resumes: drop its ``last.pt``, and ``best.pt`` unless it may
        be the pair's best (only COMPLETE trials can be); in the background."""
        if self.keep_checkpoints != "all":
            _REMOVER.submit(_unlink, self._ended_checkpoints(trial_id, state))

    def _ended_checkpoints(self, trial_id: str, state: TrialState) -> list[Path]:
        best, last = _checkpoint_files()
        folder = self.workspace.trials_dir / trial_id
        return [folder / last] if state == TrialState.COMPLETE else [folder / last, folder / best]

    def _prune(self, study: optuna.Study, best_trial_id: str | None) -> None:
        """Keep only the best trial's ``best.pt`` (None: none) once the pair has ended."""
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


def build_record(recorder: PairRecorder, pair, study: optuna.Study, seconds: float) -> PairRecord:
    trials = live_trials(study)
    counts = pair_counts(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and RESULT in t.user_attrs]
    base = {
        "sweep": pair.sweep,
        "dataset": pair.dataset,
        "model": pair.model,
        "study_name": pair.study_name,
        "optuna_storage": masked_url(recorder.storage_url),
        "search_space": pair.space.to_dict(),
        "cryotune_version": recorder.cryotune_version,
        "git_commit": recorder.git_commit,
        "trials": RecordTrials(
            budget=pair.trials,
            complete=counts.complete,
            pruned=counts.pruned,
            failed=counts.failed,
            total=len(trials),
            orphaned=len(study.user_attrs.get(ORPHANED, [])),
        ),
        "seconds": RecordSeconds(
            pair_wall=round(seconds, 3),
            trials=round(sum(_trial_seconds(t) for t in trials), 3),
        ),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if not complete:
        errors = [t.user_attrs[ERROR] for t in trials if ERROR in t.user_attrs]
        return PairRecord(**base, status=NO_COMPLETE_TRIAL, errors=errors[-3:])
    best = max(complete, key=lambda t: t.value)
    result = TrialResult.parse(best.user_attrs[RESULT], f"{pair.study_name} trial {best.number}")
    config, info = result.config, result.info
    trial_id = best.user_attrs.get(TUNE_TRIAL_ID)
    command, not_settable = repeat_command(config.model_dump(mode="json"))
    kept = trial_id and recorder.keep_checkpoints != "none"
    checkpoint = recorder.workspace.trials_dir / trial_id / _checkpoint_files()[0] if kept else None
    return PairRecord(
        **base,
        status=COMPLETE,
        config=config,
        params=dict(best.params),
        best=BestResult(
            val_miou=result.best_val_miou,
            epoch=result.best_epoch,
            per_class_iou=result.best_val_metrics.get("iou"),
            val_metrics=result.best_val_metrics,
            test_metrics=result.test_metrics,
        ),
        seeds=RecordSeeds(trial=config.seed, sampler=recorder.sampler_seed),
        data=RecordData(
            root=info.get("data_root", config.data_root),
            fingerprints=info.get("data_fingerprints"),
        ),
        weights=RecordWeights(
            file=info.get("weights"), sha256=info.get("weights_sha256") or "random"
        ),
        model_info={
            k: v
            for k, v in info.items()
            if k not in ("data_fingerprints", "weights", "weights_sha256", "data_root")
        },
        ids=RecordIds(tune_trial_id=trial_id, study_trial=best.number),
        trial_seconds=result.seconds,
        checkpoint=str(checkpoint) if checkpoint is not None and checkpoint.exists() else None,
        repeat_command=command,
        repeat_command_lacks=not_settable,
    )


def record_rows(records: list[PairRecord | UnreadableRecord]) -> list[tuple]:
    rows = []
    for r in records:
        if isinstance(r, UnreadableRecord) or not r.complete:
            what = "record unreadable" if isinstance(r, UnreadableRecord) else "no complete trial"
            sweep = getattr(r, "sweep", "-")
            rows.append((r.dataset, r.model, sweep, "-", "-", "-", "-", what))
            continue
        test = r.test_miou
        rows.append(
            (
                r.dataset,
                r.model,
                r.sweep,
                f"{r.config.lr:.3g}",
                f"{r.config.depth}/{r.search_space['num_blocks']}",
                f"{r.val_miou:.2f}",
                "-" if test is None else f"{test:.2f}",
                f"{r.trials.complete}/{r.trials.pruned}/{r.trials.failed}",
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
