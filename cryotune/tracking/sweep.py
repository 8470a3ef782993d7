"""The sweep's side of MLflow tracking, in the Tune driver: experiment, sweep run and pair runs.

At start the sweep's experiment, its run and one child run per pair are found (by their tags, on
``--resume``) or created, and trials get a small JSON context naming them, so each trial logs its
own run (``cryotune.tracking.trial``). As trials end, the driver marks them completed, pruned or
failed through the trial's outbox and updates the pair run's counts; when a pair ends it delivers
what its trials could not, draws the pair's plots, logs the record and refreshes the sweep's
leaderboard; at the end it sets the sweep's state and, while the store does not answer, waits a
bounded time before leaving the rest to ``cryotune sweep ... --resume``.

Outboxes of the sweep and pair runs live in ``NAME/mlflow/``; trials' in their trial folders.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryotune.errors import CryotuneError
from cryotune.files import write_json_atomic
from cryotune.sweep.keys import TUNE_TRIAL_ID
from cryotune.sweep.status import live_trials
from cryotune.sweep.storage import masked_url, masked_urls
from cryotune.sweep.workspace import SweepWorkspace
from cryotune.tracking import plots
from cryotune.tracking.names import (
    CONFUSION_PNG,
    HISTORY_PNG,
    LEADERBOARD_COLUMNS,
    LEADERBOARD_DIR,
    LEVEL_PAIR,
    LEVEL_SWEEP,
    LR_PNG,
    PARENT_TAG,
    PLAN_ARTIFACT,
    PREVIEW_PNG,
    RECORD_ARTIFACT,
    STATE_FINISHED,
    STATE_RUNNING,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_PRUNED,
    TAG_DATASET,
    TAG_DATASETS,
    TAG_LEVEL,
    TAG_MODEL,
    TAG_MODELS,
    TAG_PAIR,
    TAG_STATE,
    TAG_STATUS,
    TAG_SWEEP,
    TAG_WORKSPACE,
)
from cryotune.tracking.outbox import SPOOL_FILE, Outbox, transient
from cryotune.tracking.trial import trial_run_fields
from cryotune.tracking.uri import STORE_FILE, artifact_location, sqlite_path, unreachable

TRACKING_DIR = "mlflow"
SWEEP_FOLDER = "sweep"
DEFAULT_WAIT_S = 60.0
POLL_S = 2.0

# Optuna trial state name -> (status tag, MLflow run status)
TRIAL_OUTCOMES = {
    "COMPLETE": (STATUS_COMPLETED, "FINISHED"),
    "PRUNED": (STATUS_PRUNED, "KILLED"),
    "FAIL": (STATUS_FAILED, "FAILED"),
}

log = logging.getLogger(__name__)


def pair_folder(key: str) -> str:
    return key.replace("/", "__")


def quiet_mlflow_logs() -> None:
    """MLflow announces creating and migrating its tables at INFO; the sweep prints its own."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def open_experiment(client, name: str, uri: str) -> str:
    """The sweep's experiment (restored if it was deleted in the UI), created when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(
            name, artifact_location=artifact_location(uri, name), tags={TAG_SWEEP: name}
        )
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def study_counts(study) -> dict:
    """The pair run's count metrics, from its study."""
    trials = live_trials(study)
    count = {s: sum(t.state.name == s for t in trials) for s in TRIAL_OUTCOMES}
    complete = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    values = {
        "trials_complete": count["COMPLETE"],
        "trials_pruned": count["PRUNED"],
        "trials_failed": count["FAIL"],
        "trials_running": sum(t.state.name == "RUNNING" for t in trials),
    }
    if complete:
        values["best_val_miou"] = max(complete)
    return values


def study_points(study) -> list[plots.TrialPoint]:
    """Complete trials at their score, pruned ones at the last epoch they reported."""
    points = []
    for trial in live_trials(study):
        if trial.state.name == "COMPLETE" and trial.value is not None:
            state, value = "complete", trial.value
        elif trial.state.name == "PRUNED" and trial.intermediate_values:
            state, value = "pruned", trial.intermediate_values[max(trial.intermediate_values)]
        else:
            continue
        points.append(
            plots.TrialPoint(
                trial.number, state, value, trial.params.get("lr"), trial.params.get("depth")
            )
        )
    return points


def leaderboard(records: list[dict]) -> dict:
    """One dataset's table in ``mlflow.log_table``'s JSON format, best val mIoU first."""
    rows = []
    for r in records:
        best, config = r.get("best") or {}, r.get("config") or {}
        rows.append(
            [
                r["model"],
                best.get("val_miou"),
                (best.get("test_metrics") or {}).get("miou"),
                config.get("lr"),
                config.get("depth"),
                r["search_space"].get("num_blocks"),
                r["trials"]["complete"],
                r["trials"]["pruned"],
                r["trials"]["failed"],
                r["ids"].get("mlflow_run_id"),
            ]
        )
    rows.sort(key=lambda row: -1.0 if row[1] is None else -row[1])
    return {"columns": list(LEADERBOARD_COLUMNS), "data": rows}


def _deliver_now(outbox: Outbox, client, uri: str, what: str) -> str:
    if not outbox.deliver(client, force=True) or outbox.run_id() is None:
        raise unreachable(uri, f"could not log {what}: {outbox.last_error}")
    return outbox.run_id()


@dataclass
class SweepTracker:
    """The sweep's MLflow runs; picklable (Tune keeps it inside the searcher's recorder)."""

    uri: str
    workspace: SweepWorkspace
    experiment_id: str
    sweep_run_id: str
    pair_run_ids: dict[str, str]
    _client: object = field(default=None, repr=False)
    _boxes: dict = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None, "_boxes": {}}

    @classmethod
    def open(cls, plan, workspace: SweepWorkspace, uri: str, resume: bool) -> SweepTracker:
        """Find or create the experiment and runs; CryotuneError when the store refuses them.

        On ``resume``, what earlier sessions could not deliver is delivered now.
        """
        from mlflow import MlflowClient

        quiet_mlflow_logs()
        client = MlflowClient(uri)
        try:
            experiment_id = open_experiment(client, plan.name, uri)
        except Exception as exc:
            if transient(exc):
                raise unreachable(uri, f"cannot open experiment '{plan.name}': {exc}") from None
            raise CryotuneError(
                f"MLflow tracking store {masked_url(uri)} refused experiment '{plan.name}': "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        folder = workspace.dir / TRACKING_DIR
        sweep_tags = {
            TAG_LEVEL: LEVEL_SWEEP,
            TAG_SWEEP: plan.name,
            TAG_WORKSPACE: str(workspace.dir),
            TAG_DATASETS: ",".join(plan.datasets),
            TAG_MODELS: ",".join(dict.fromkeys(p.model for p in plan.pairs)),
        }
        sweep_box = Outbox(folder / SWEEP_FOLDER)
        if not sweep_box.has_operations():
            sweep_box.append(
                "create",
                experiment_id=experiment_id,
                run_name=plan.name,
                tags={**sweep_tags, TAG_STATE: STATE_RUNNING},
                match={k: sweep_tags[k] for k in (TAG_LEVEL, TAG_SWEEP, TAG_WORKSPACE)},
            )
        sweep_box.append("tags", tags={TAG_STATE: STATE_RUNNING})
        sweep_box.append("status", status="RUNNING")
        shared_plan = sweep_box.folder / PLAN_ARTIFACT
        write_json_atomic(shared_plan, masked_urls(workspace.read_plan()))
        sweep_box.append("artifact", file=str(shared_plan))
        sweep_run_id = _deliver_now(sweep_box, client, uri, f"the run of sweep '{plan.name}'")
        pair_run_ids = {}
        for pair in plan.pairs:
            box = Outbox(folder / pair_folder(pair.key))
            if not box.has_operations():
                tags = {
                    TAG_LEVEL: LEVEL_PAIR,
                    TAG_SWEEP: plan.name,
                    TAG_DATASET: pair.dataset,
                    TAG_MODEL: pair.model,
                    TAG_PAIR: pair.key,
                    TAG_STATE: STATE_RUNNING,
                    PARENT_TAG: sweep_run_id,
                }
                box.append(
                    "create",
                    experiment_id=experiment_id,
                    run_name=pair.key,
                    tags=tags,
                    match={k: tags[k] for k in (TAG_LEVEL, TAG_PAIR, PARENT_TAG)},
                )
            pair_run_ids[pair.key] = _deliver_now(box, client, uri, f"the run of {pair.key}")
        tracker = cls(uri, workspace, experiment_id, sweep_run_id, pair_run_ids, client)
        if resume:
            tracker.deliver_all()
        return tracker

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    @property
    def folder(self) -> Path:
        return self.workspace.dir / TRACKING_DIR

    def _outbox(self, folder: Path) -> Outbox:
        """One Outbox object per folder, so a failed delivery pauses that outbox's retries."""
        if folder not in self._boxes:
            self._boxes[folder] = Outbox(folder)
        return self._boxes[folder]

    def trial_context(self, pair) -> dict:
        """What a trial needs to log its run: small and JSON-able (it travels in Tune's config)."""
        return {
            "uri": self.uri,
            "experiment_id": self.experiment_id,
            "pair_run_id": self.pair_run_ids[pair.key],
            "sweep": pair.sweep,
            "dataset": pair.dataset,
            "model": pair.model,
            "pair": pair.key,
        }

    def trial_ended(self, pair, trial_id: str, study_trial: int | None, state, study) -> None:
        """Mark the trial's run as its study sees it, and count it in the pair run."""
        status, run_status = TRIAL_OUTCOMES[state.name]
        outbox = self._outbox(self.workspace.trials_dir / trial_id)
        if not outbox.has_operations():  # the trial never started in a worker
            outbox.append(
                "create", **trial_run_fields(self.trial_context(pair), trial_id, study_trial)
            )
        outbox.append("tags", tags={TAG_STATUS: status})
        outbox.append("status", status=run_status)
        outbox.deliver(self.client, wait=False)
        self.pair_progress(pair, study)

    def pair_progress(self, pair, study) -> None:
        values = study_counts(study)
        done = values["trials_complete"] + values["trials_pruned"] + values["trials_failed"]
        box = self._outbox(self.folder / pair_folder(pair.key))
        box.append("metrics", metrics=values, step=done)
        box.deliver(self.client, wait=False)

    def deliver_pair_trials(self, study) -> None:
        """Deliver what the pair's trials spooled, so the record can name their runs."""
        for trial in study.get_trials(deepcopy=False):
            trial_id = trial.user_attrs.get(TUNE_TRIAL_ID)
            if trial_id is not None:
                box = self._outbox(self.workspace.trials_dir / trial_id)
                if box.has_operations() and not box.deliver(self.client, force=True):
                    return  # the store is down: the sweep's end (or --resume) tries again

    def record_ids(self, pair_key: str, record: dict) -> dict:
        """The record's MLflow ids: the best trial's run (once created), the pair run, the
        experiment."""
        trial_id = record["ids"].get("tune_trial_id")
        run_id = Outbox(self.workspace.trials_dir / trial_id).run_id() if trial_id else None
        return {
            "mlflow_run_id": run_id,
            "mlflow_pair_run_id": self.pair_run_ids.get(pair_key),
            "mlflow_experiment_id": self.experiment_id,
        }

    def pair_ending(self, pair, study, record: dict) -> None:
        """Spool the pair run's plots, record, final metrics and FINISHED status, before the
        record file is written: a driver killed after writing it leaves the end spooled, and
        one killed before writes the record again on ``--resume``."""
        box = self._outbox(self.folder / pair_folder(pair.key))
        for path in self._draw(pair, study, record, box.folder):
            box.append("artifact", file=str(path))
        copy = box.folder / RECORD_ARTIFACT
        write_json_atomic(copy, record)
        box.append("artifact", file=str(copy))
        values = study_counts(study)
        test = ((record.get("best") or {}).get("test_metrics") or {}).get("miou")
        if test is not None:
            values["best_test_miou"] = test
        trials = record["trials"]
        done = trials["complete"] + trials["pruned"] + trials["failed"]
        box.append("metrics", metrics=values, step=done)
        box.append("tags", tags={TAG_STATE: STATE_FINISHED})
        box.append("status", status="FINISHED")

    def pair_finished(self, pair) -> None:
        """Deliver the pair run's end (spooled by ``pair_ending``); the sweep's leaderboard."""
        self._outbox(self.folder / pair_folder(pair.key)).deliver(self.client, force=True)
        self.update_leaderboard(pair.dataset)

    def close_ended_runs(self, plan, storage_url: str) -> int:
        """Spool the end of every run whose trial ended in its study, or whose pair has a record,
        but whose outbox does not end it: a driver killed between the two left it RUNNING.
        Returns how many runs were closed."""
        import optuna

        storage = optuna.storages.RDBStorage(storage_url)
        existing = set(optuna.get_all_study_names(storage))
        closed = 0
        for pair in plan.pairs:
            if pair.study_name in existing:
                study = optuna.load_study(study_name=pair.study_name, storage=storage)
                for trial in live_trials(study):
                    trial_id = trial.user_attrs.get(TUNE_TRIAL_ID)
                    outcome = TRIAL_OUTCOMES.get(trial.state.name)
                    if trial_id is None or outcome is None:
                        continue
                    box = self._outbox(self.workspace.trials_dir / trial_id)
                    last = (box.last("status") or {}).get("status")
                    if box.has_operations() and last != outcome[1]:
                        self.trial_ended(pair, trial_id, trial.number, trial.state, study)
                        closed += 1
            path = self.workspace.record_path(pair.dataset, pair.model)
            box = self._outbox(self.folder / pair_folder(pair.key))
            if path.exists() and (box.last("status") or {}).get("status") != "FINISHED":
                record = json.loads(path.read_text())
                write_json_atomic(box.folder / RECORD_ARTIFACT, record)
                box.append("artifact", file=str(box.folder / RECORD_ARTIFACT))
                box.append("tags", tags={TAG_STATE: STATE_FINISHED})
                box.append("status", status="FINISHED")
                self.update_leaderboard(pair.dataset)
                closed += 1
        return closed

    def _draw(self, pair, study, record: dict, folder: Path) -> list[Path]:
        """The pair's PNGs; one that cannot be drawn is left out with a warning, not fatal."""
        from cryotune.data.datasets import get_dataset

        title = f"{pair.sweep}: {pair.key}"
        points = study_points(study)
        jobs = [
            (HISTORY_PNG, lambda p: plots.optimization_history_png(points, p, title)),
            (LR_PNG, lambda p: plots.val_miou_vs_lr_png(points, p, title)),
        ]
        best = record.get("best") or {}
        confusion = (best.get("val_metrics") or {}).get("confusion")
        if confusion is not None:
            classes = list(get_dataset(pair.dataset).classes)
            jobs.append(
                (
                    CONFUSION_PNG,
                    lambda p: plots.confusion_matrix_png(confusion, classes, p, f"{title} (val)"),
                )
            )
        trial_id = record["ids"].get("tune_trial_id")
        preview = self.workspace.trials_dir / str(trial_id) / "preview.npz"
        if trial_id and preview.is_file():
            jobs.append((PREVIEW_PNG, lambda p: plots.prediction_preview_png(preview, p, title)))
        drawn = []
        for name, draw in jobs:
            try:
                drawn.append(draw(folder / name))
            except Exception:
                log.warning("could not draw %s of %s", name, pair.key, exc_info=True)
        return drawn

    def update_leaderboard(self, dataset: str) -> None:
        records = [
            json.loads(p.read_text())
            for p in sorted(self.workspace.records_dir.glob(f"{dataset}__*.json"))
        ]
        records = [r for r in records if r.get("dataset") == dataset]
        box = self._outbox(self.folder / SWEEP_FOLDER)
        path = box.folder / LEADERBOARD_DIR / f"{dataset}.json"
        write_json_atomic(path, leaderboard(records))
        box.append("table", file=str(path), dir=LEADERBOARD_DIR)
        box.deliver(self.client, force=True)

    def fill_record_ids(self) -> bool:
        """Complete records written while the store was down with the ids known now."""
        changed: set[str] = set()
        for path in sorted(self.workspace.records_dir.glob("*.json")):
            record = json.loads(path.read_text())
            key = f"{record['dataset']}/{record['model']}"
            ids = {**record.get("ids", {})}
            known = {k: v for k, v in self.record_ids(key, record).items() if v is not None}
            missing = {k: v for k, v in known.items() if ids.get(k) != v}
            if not missing and record.get("tracking_uri") == self.uri:
                continue
            record = {**record, "ids": {**ids, **missing}, "tracking_uri": self.uri}
            write_json_atomic(path, record)
            box = self._outbox(self.folder / pair_folder(key))
            write_json_atomic(box.folder / RECORD_ARTIFACT, record)
            box.append("artifact", file=str(box.folder / RECORD_ARTIFACT))
            changed.add(record["dataset"])
        for dataset in sorted(changed):
            self.update_leaderboard(dataset)
        return bool(changed)

    def outboxes(self) -> list[Outbox]:
        """Every outbox of the sweep: its run, its pairs' runs, its trials' runs."""
        folders = [self.folder / SWEEP_FOLDER]
        folders += sorted(p for p in self.folder.iterdir() if p.is_dir() and p != folders[0])
        folders += sorted(p.parent for p in self.workspace.trials_dir.glob(f"*/{SPOOL_FILE}"))
        return [self._outbox(f) for f in folders]

    def deliver_all(self) -> int:
        """Try every outbox once (a round stops at the first failure); runs left waiting."""
        waiting = 0
        reachable = True
        for box in self.outboxes():
            if reachable and not box.deliver(self.client, force=True):
                reachable = False
            if not reachable and box.pending():
                waiting += 1
        return waiting

    def where(self) -> str:
        """Where to look at the sweep in MLflow, for the user."""
        path = sqlite_path(self.uri)
        if path is None:
            return f"MLflow: {masked_url(self.uri)}/#/experiments/{self.experiment_id}"
        flag = (
            f"--workspace {path.parent}"
            if path.name == STORE_FILE
            else f"--tracking-uri {self.uri}"
        )
        return (
            f"MLflow: experiment '{self.workspace.name}' in {self.uri}; "
            f"`cryotune mlflow {flag}` shows it"
        )

    def close(self, state: str, wait_s: float) -> list[str]:
        """Set the sweep's state and deliver everything, waiting up to ``wait_s`` for the store;
        notes for the user when runs still wait."""
        box = self._outbox(self.folder / SWEEP_FOLDER)
        box.append("tags", tags={TAG_STATE: state})
        box.append("status", status="FINISHED" if state == STATE_FINISHED else "KILLED")
        deadline = time.monotonic() + wait_s
        self.fill_record_ids()
        waiting = self.deliver_all()
        while waiting and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            waiting = self.deliver_all()
        if self.fill_record_ids():
            waiting = self.deliver_all()
        if not waiting:
            return []
        return [
            f"MLflow: {waiting} run(s) of this sweep wait for the tracking store {self.uri}; "
            "nothing is lost: repeat the sweep command with --resume once it answers to log them"
        ]
