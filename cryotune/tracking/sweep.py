"""The sweep's side of MLflow tracking, in the Tune driver: experiment, sweep run and pair runs.

The sweep's observer (``cryotune.observer.SweepObserver``): it sees plain data (counts, points,
records), never a study or a sweep module, and writes nothing of the sweep's own. At start the
sweep's experiment, its run and one child run per pair are found (by their tags, on ``--resume``)
or created, and trials get a small JSON context naming them, so each trial logs its own run
(``cryotune.tracking.trial``). As trials end, the driver marks them complete, pruned or
failed through the trial's outbox and updates the pair run's counts; when a pair ends it delivers
what its trials could not, draws the pair's plots, logs the record and refreshes the sweep's
leaderboard and results report (``cryotune.report``); at the end it sets the sweep's state and, while the store does not answer, waits a
bounded time before leaving the rest to ``cryotune sweep ... --resume``.

Outboxes of the sweep and pair runs live in ``NAME/mlflow/``; trials' in their trial folders.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryotune.documents.record import PairRecord, RecordIds, leaderboard
from cryotune.errors import CryotuneError
from cryotune.files import write_json_atomic
from cryotune.masking import masked_url, masked_urls
from cryotune.observer import COMPLETE, FAILED, PRUNED, BestTrial, EndedTrial, PairCounts, PairEnd
from cryotune.report.heatmap import heatmap_png
from cryotune.report.models import REPORT_TITLE
from cryotune.report.render import render
from cryotune.report.table import PendingPair, build_report
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
    REPORT_DIR,
    REPORT_FILES,
    REPORT_PNG,
    STATE_FINISHED,
    STATE_RUNNING,
    TAG_BEST_DEPTH,
    TAG_BEST_EPOCH,
    TAG_BEST_LR,
    TAG_BEST_STUDY_TRIAL,
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

RUN_STATUS = {COMPLETE: "FINISHED", PRUNED: "KILLED", FAILED: "FAILED"}
"""A trial's outcome -> the MLflow status of its run (its tag says the outcome itself)."""

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


def count_metrics(counts: PairCounts) -> dict:
    """The pair run's count metrics."""
    values = {
        "trials_complete": counts.complete,
        "trials_pruned": counts.pruned,
        "trials_failed": counts.failed,
        "trials_running": counts.running,
    }
    if counts.best_val_miou is not None:
        values["best_val_miou"] = counts.best_val_miou
    return values


def best_tags(best: BestTrial) -> dict:
    """The pair run's tags naming its best trial so far."""
    return {
        TAG_BEST_STUDY_TRIAL: str(best.number),
        TAG_BEST_LR: repr(best.lr),
        TAG_BEST_DEPTH: str(best.depth),
        TAG_BEST_EPOCH: str(best.epoch),
    }


def leaderboard_table(records: list[PairRecord]) -> dict:
    """One dataset's leaderboard in ``mlflow.log_table``'s JSON format, best val mIoU first."""
    rows = [
        [
            r.model,
            r.val_miou,
            r.test_miou,
            r.config.lr,
            r.config.depth,
            r.search_space.get("num_blocks"),
            r.trials.complete,
            r.trials.pruned,
            r.trials.failed,
            r.ids.mlflow_run_id,
        ]
        for r in leaderboard(records)
    ]
    return {"columns": list(LEADERBOARD_COLUMNS), "data": rows}


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` whole, so a delivery never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _deliver_now(outbox: Outbox, client, uri: str, what: str) -> str:
    if not outbox.deliver(client, force=True) or outbox.run_id() is None:
        raise unreachable(uri, f"could not log {what}: {outbox.last_error}")
    return outbox.run_id()


@dataclass
class SweepTracker:
    """The sweep's MLflow runs; picklable (Tune keeps it inside the searcher's recorder)."""

    uri: str
    sweep: str
    folder: Path
    trials_dir: Path
    experiment_id: str
    sweep_run_id: str
    pair_run_ids: dict[str, str]
    _client: object = field(default=None, repr=False)
    _boxes: dict = field(default_factory=dict, repr=False)
    _ends: ThreadPoolExecutor | None = field(default=None, repr=False)
    _plots: ThreadPoolExecutor | None = field(default=None, repr=False)
    _report_wanted: list[PairRecord] | None = field(default=None, repr=False)
    _report_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict:
        state = {**self.__dict__, "_client": None, "_boxes": {}, "_ends": None, "_plots": None}
        return {**state, "_report_wanted": None, "_report_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _report_lock=threading.Lock())

    @classmethod
    def open(
        cls,
        uri: str,
        sweep: str,
        datasets: list[str],
        pairs: list[str],
        workspace_dir: Path,
        trials_dir: Path,
        plan: dict,
        resume: bool,
    ) -> SweepTracker:
        """Find or create the experiment and runs of sweep ``sweep`` (its ``pairs`` as
        DATASET/MODEL keys; ``plan`` is logged as an artifact, passwords masked); CryotuneError
        when the store refuses them. On ``resume``, what earlier sessions could not deliver is
        delivered now."""
        from mlflow import MlflowClient

        quiet_mlflow_logs()
        client = MlflowClient(uri)
        try:
            experiment_id = open_experiment(client, sweep, uri)
        except Exception as exc:
            if transient(exc):
                raise unreachable(uri, f"cannot open experiment '{sweep}': {exc}") from None
            raise CryotuneError(
                f"MLflow tracking store {masked_url(uri)} refused experiment '{sweep}': "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        folder = workspace_dir / TRACKING_DIR
        sweep_tags = {
            TAG_LEVEL: LEVEL_SWEEP,
            TAG_SWEEP: sweep,
            TAG_WORKSPACE: str(workspace_dir),
            TAG_DATASETS: ",".join(datasets),
            TAG_MODELS: ",".join(dict.fromkeys(p.partition("/")[2] for p in pairs)),
        }
        sweep_box = Outbox(folder / SWEEP_FOLDER)
        if not sweep_box.has_operations():
            sweep_box.append(
                "create",
                experiment_id=experiment_id,
                run_name=sweep,
                tags={**sweep_tags, TAG_STATE: STATE_RUNNING},
                match={k: sweep_tags[k] for k in (TAG_LEVEL, TAG_SWEEP, TAG_WORKSPACE)},
            )
        sweep_box.append("tags", tags={TAG_STATE: STATE_RUNNING})
        sweep_box.append("status", status="RUNNING")
        shared_plan = sweep_box.folder / PLAN_ARTIFACT
        write_json_atomic(shared_plan, masked_urls(plan))
        sweep_box.append("artifact", file=str(shared_plan))
        sweep_run_id = _deliver_now(sweep_box, client, uri, f"the run of sweep '{sweep}'")
        pair_run_ids = {}
        for key in pairs:
            box = Outbox(folder / pair_folder(key))
            if not box.has_operations():
                dataset, _, model = key.partition("/")
                tags = {
                    TAG_LEVEL: LEVEL_PAIR,
                    TAG_SWEEP: sweep,
                    TAG_DATASET: dataset,
                    TAG_MODEL: model,
                    TAG_PAIR: key,
                    TAG_STATE: STATE_RUNNING,
                    PARENT_TAG: sweep_run_id,
                }
                box.append(
                    "create",
                    experiment_id=experiment_id,
                    run_name=key,
                    tags=tags,
                    match={k: tags[k] for k in (TAG_LEVEL, TAG_PAIR, PARENT_TAG)},
                )
            pair_run_ids[key] = _deliver_now(box, client, uri, f"the run of {key}")
        tracker = cls(
            uri, sweep, folder, trials_dir, experiment_id, sweep_run_id, pair_run_ids, client
        )
        if resume:
            tracker.deliver_all()
        return tracker

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def _outbox(self, folder: Path) -> Outbox:
        """One Outbox object per folder, so a failed delivery pauses that outbox's retries."""
        if folder not in self._boxes:
            self._boxes[folder] = Outbox(folder)
        return self._boxes[folder]

    def _pair_box(self, pair: str) -> Outbox:
        return self._outbox(self.folder / pair_folder(pair))

    def trial_context(self, pair: str) -> dict:
        """What a trial needs to log its run: small and JSON-able (it travels in Tune's config)."""
        dataset, _, model = pair.partition("/")
        return {
            "uri": self.uri,
            "experiment_id": self.experiment_id,
            "pair_run_id": self.pair_run_ids[pair],
            "sweep": self.sweep,
            "dataset": dataset,
            "model": model,
            "pair": pair,
        }

    def trial_ended(self, trial: EndedTrial, counts: PairCounts | None) -> None:
        """Mark the trial's run with its outcome and count it in the pair run, on a background
        thread (one, so trial ends keep their order): spooling may wait for the trial's worker
        delivering the same run, and delivery for the store. At 100 pairs on a tracking server
        this took 0.16 s per trial on Tune's event loop, while every slot waited."""
        if self._ends is None:
            self._ends = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryotune-ends")
        self._ends.submit(self._end_trial, trial, counts)

    def settle(self, plots: bool = False) -> None:
        """Wait until the trial ends (and with ``plots`` the pairs' plots) handed to the
        background threads are spooled and tried."""
        for pool in (self._ends, self._plots if plots else None):
            if pool is not None:
                pool.submit(lambda: None).result()

    def _end_trial(self, trial: EndedTrial, counts: PairCounts | None) -> None:
        try:
            self._spool_trial_end(trial, counts)
        except Exception:  # an observer must not fail the sweep; the next close reconciles
            log.warning(
                "MLflow: could not spool the end of trial %s", trial.trial_id, exc_info=True
            )

    def _spool_trial_end(self, trial: EndedTrial, counts: PairCounts | None) -> None:
        outbox = self._outbox(self.trials_dir / trial.trial_id)
        if not outbox.has_operations():  # the trial never started in a worker
            context = self.trial_context(trial.pair)
            outbox.append("create", **trial_run_fields(context, trial.trial_id, trial.study_trial))
        outbox.append("tags", tags={TAG_STATUS: trial.outcome})
        outbox.append("status", status=RUN_STATUS[trial.outcome])
        outbox.deliver(self.client, wait=False)
        if counts is not None:
            box = self._pair_box(trial.pair)
            box.append("metrics", metrics=count_metrics(counts), step=counts.done)
            if counts.best is not None and counts.best.number == trial.study_trial:
                box.append("tags", tags=best_tags(counts.best))  # this trial is the new best
            box.deliver(self.client, wait=False)

    def record_ids(self, pair: str, tune_trial_id: str | None) -> RecordIds:
        """The best trial's run (once created: delivered now if it can be), the pair run, the
        experiment."""
        run_id = None
        if tune_trial_id:
            box = self._outbox(self.trials_dir / tune_trial_id)
            if box.has_operations() and box.run_id() is None:
                box.deliver(self.client, force=True)
            run_id = box.run_id()
        return RecordIds(
            tune_trial_id=tune_trial_id,
            mlflow_run_id=run_id,
            mlflow_pair_run_id=self.pair_run_ids.get(pair),
            mlflow_experiment_id=self.experiment_id,
        )

    def pair_ending(self, end: PairEnd) -> None:
        """Deliver what the pair's trials spooled; spool the pair run's record, final metrics
        and FINISHED status (delivered by ``pair_recorded``); its plots follow from the
        background."""
        self.settle()
        for trial_id in end.trial_ids:
            box = self._outbox(self.trials_dir / trial_id)
            if box.has_operations() and not box.deliver(self.client, force=True):
                break  # the store is down: the sweep's end (or --resume) tries again
        record = end.record
        box = self._pair_box(record.key)
        self._plot_pool().submit(self._draw_and_deliver, end, box)
        self._spool_record(box, record)
        values = count_metrics(end.counts)
        if record.test_miou is not None:
            values["best_test_miou"] = record.test_miou
        box.append(
            "metrics",
            metrics=values,
            step=record.trials.complete + record.trials.pruned + record.trials.failed,
        )
        best = end.counts.best
        box.append("tags", tags={TAG_STATE: STATE_FINISHED, **(best_tags(best) if best else {})})
        box.append("status", status="FINISHED")

    def pair_recorded(self, pair: str, sweep_records: list[PairRecord]) -> None:
        """Deliver the pair run; update the leaderboard, and the report from the background
        (its heatmap is matplotlib, as slow as a pair's plots).

        The report covers every pair, so drawing it at each pair's end cost the driver
        O(pairs) a pair: 10% of its CPU at 40 pairs, growing with the sweep. Pairs that end
        while a report waits to be drawn join that one instead: the latest records win."""
        self._pair_box(pair).deliver(self.client, force=True)
        self.update_leaderboard(pair.partition("/")[0], sweep_records)
        with self._report_lock:
            waiting = self._report_wanted is not None
            self._report_wanted = [*sweep_records]
        if not waiting:
            self._plot_pool().submit(self._report_in_background)

    def _plot_pool(self) -> ThreadPoolExecutor:
        if self._plots is None:
            self._plots = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryotune-plots")
        return self._plots

    def _report_in_background(self) -> None:
        with self._report_lock:
            records, self._report_wanted = self._report_wanted, None
        if records is None:
            return
        try:
            self.update_report(records)
        except Exception:  # an observer must not fail the sweep
            log.warning("MLflow: could not log the report of sweep %s", self.sweep, exc_info=True)

    def record_changed(self, record: PairRecord, sweep_records: list[PairRecord]) -> None:
        self._spool_record(self._pair_box(record.key), record)
        self.update_leaderboard(record.dataset, sweep_records)

    def _spool_record(self, box: Outbox, record: PairRecord) -> None:
        copy = box.folder / RECORD_ARTIFACT
        record.write(copy)
        box.append("artifact", file=str(copy))

    def reconcile(self, ended: list[EndedTrial], recorded: list[PairRecord]) -> int:
        """Spool the end of every run whose trial ended, or whose pair has a record, but whose
        outbox does not end it: a driver killed between the two left it RUNNING. Returns how
        many runs were closed."""
        self.settle(plots=True)
        closed = 0
        for trial in ended:
            box = self._outbox(self.trials_dir / trial.trial_id)
            last = (box.last("status") or {}).get("status")
            if box.has_operations() and last != RUN_STATUS[trial.outcome]:
                self._spool_trial_end(trial, None)
                closed += 1
        for record in recorded:
            box = self._pair_box(record.key)
            if (box.last("status") or {}).get("status") != "FINISHED":
                self._spool_record(box, record)
                box.append("tags", tags={TAG_STATE: STATE_FINISHED})
                box.append("status", status="FINISHED")
                self.update_leaderboard(record.dataset, recorded)
                closed += 1
        if closed:
            self.update_report(recorded)
        return closed

    def _draw_and_deliver(self, end: PairEnd, box: Outbox) -> None:
        """The pair's plots, drawn off Tune's event loop (about a second a pair, which every
        slot waited for), spooled and delivered when ready; a driver killed first leaves the
        pair run without them."""
        try:
            for path in self._draw(end, box.folder):
                box.append("artifact", file=str(path))
            box.deliver(self.client, force=True)
        except Exception:  # an observer must not fail the sweep
            log.warning("MLflow: could not log the plots of %s", end.record.key, exc_info=True)

    def _draw(self, end: PairEnd, folder: Path) -> list[Path]:
        """The pair's PNGs; one that cannot be drawn is left out with a warning, not fatal."""
        record = end.record
        title = f"{self.sweep}: {record.key}"
        points = list(end.points)
        jobs = [
            (HISTORY_PNG, lambda p: plots.optimization_history_png(points, p, title)),
            (LR_PNG, lambda p: plots.val_miou_vs_lr_png(points, p, title)),
        ]
        confusion = ((record.best.val_metrics or {}) if record.best else {}).get("confusion")
        if confusion is not None:
            classes = list(end.classes)
            jobs.append(
                (
                    CONFUSION_PNG,
                    lambda p: plots.confusion_matrix_png(confusion, classes, p, f"{title} (val)"),
                )
            )
        if end.preview is not None:
            preview = Path(end.preview)
            jobs.append((PREVIEW_PNG, lambda p: plots.prediction_preview_png(preview, p, title)))
        drawn = []
        for name, draw in jobs:
            try:
                drawn.append(draw(folder / name))
            except Exception:
                log.warning("could not draw %s of %s", name, record.key, exc_info=True)
        return drawn

    def update_leaderboard(self, dataset: str, records: list[PairRecord]) -> None:
        """The sweep run's leaderboard of ``dataset`` (``records`` of other datasets are left
        out)."""
        box = self._outbox(self.folder / SWEEP_FOLDER)
        path = box.folder / LEADERBOARD_DIR / f"{dataset}.json"
        write_json_atomic(path, leaderboard_table([r for r in records if r.dataset == dataset]))
        box.append("table", file=str(path), dir=LEADERBOARD_DIR)
        box.deliver(self.client, force=True)

    def update_report(self, records: list[PairRecord]) -> None:
        """The sweep's results report as artifacts of its run, every format and the heatmap;
        the sweep's planned pairs without a record show as running."""
        recorded = {r.key for r in records}
        pending = [
            PendingPair(*key.split("/", 1), "running", f"sweep {self.sweep}: not finished yet")
            for key in self.pair_run_ids
            if key not in recorded
        ]
        report = build_report(
            records,
            pending,
            title=REPORT_TITLE,
            scope=f"sweep {self.sweep}, as logged when its last pair ended",
            sweeps=[self.sweep],
        )
        box = self._outbox(self.folder / SWEEP_FOLDER)
        folder = box.folder / REPORT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for fmt, name in REPORT_FILES.items():
            path = folder / name
            _write_text(path, render(report, fmt))
            files.append(path)
        try:
            files.append(heatmap_png(report, folder / REPORT_PNG))
        except Exception:
            log.warning("could not draw the report heatmap of sweep %s", self.sweep, exc_info=True)
        for path in files:
            box.append("artifact", file=str(path), dir=REPORT_DIR)
        box.deliver(self.client, force=True)

    def outboxes(self) -> list[Outbox]:
        """Every outbox of the sweep: its run, its pairs' runs, its trials' runs."""
        folders = [self.folder / SWEEP_FOLDER]
        folders += sorted(p for p in self.folder.iterdir() if p.is_dir() and p != folders[0])
        folders += sorted(p.parent for p in self.trials_dir.glob(f"*/{SPOOL_FILE}"))
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
        return f"MLflow: experiment '{self.sweep}' in {self.uri}; `cryotune mlflow {flag}` shows it"

    def close(self, state: str, wait_s: float, refresh=None) -> list[str]:
        """Set the sweep's state and deliver everything, waiting up to ``wait_s`` for the store;
        ``refresh()`` (the sweep's) gives records the run ids learned meanwhile and says
        whether one changed. Notes for the user when runs still wait."""
        self.settle(plots=True)
        box = self._outbox(self.folder / SWEEP_FOLDER)
        box.append("tags", tags={TAG_STATE: state})
        box.append("status", status="FINISHED" if state == STATE_FINISHED else "KILLED")
        deadline = time.monotonic() + wait_s
        refresh = refresh or (lambda: False)
        refresh()
        waiting = self.deliver_all()
        while waiting and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            waiting = self.deliver_all()
        if refresh():
            waiting = self.deliver_all()
        if not waiting:
            return []
        return [
            f"MLflow: {waiting} run(s) of this sweep wait for the tracking store {self.uri}; "
            "nothing is lost: repeat the sweep command with --resume once it answers to log them"
        ]
