"""Query source over an MLflow tracking store alone (a server URL or a sqlite file).

Reads the layout the tracking layer writes (``cryotune.tracking.names``): one experiment per
sweep, a sweep run, a run per pair carrying trial counts as metrics and the best-config record as
an artifact, and a run per trial with a status tag.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryotune.documents.document import DocumentError
from cryotune.documents.plan import PlannedPair, SweepPlanDocument
from cryotune.documents.record import PairRecord, UnreadableRecord
from cryotune.errors import CryotuneError, NotFoundError, UsageError
from cryotune.query.models import BestSoFar, PairSummary, SweepDetail, TrialCounts
from cryotune.tracking.names import (
    LEGACY_STATUS,
    LEVEL_PAIR,
    LEVEL_SWEEP,
    LEVEL_TRIAL,
    PLAN_ARTIFACT,
    RECORD_ARTIFACT,
    STATE_FINISHED,
    STATE_INTERRUPTED,
    STATE_RUNNING,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_PRUNED,
    STATUS_RUNNING,
    TAG_DATASET,
    TAG_DATASETS,
    TAG_LEVEL,
    TAG_MODEL,
    TAG_MODELS,
    TAG_PAIR,
    TAG_STATE,
    TAG_STATUS,
    TAG_STUDY_TRIAL,
    TAG_SWEEP,
)
from cryotune.tracking.uri import CLIENT_ENVIRONMENT, normalize

QUIET_CLIENT = {
    **CLIENT_ENVIRONMENT,
    # A reader downloads one small JSON per pair; no progress bars on the console.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
"""MLflow client settings (read from the environment by MLflow itself): fail fast rather than
retry for minutes when a tracking server is away, so a reader answers at once."""

_PAGE = 1000
_RUN_STATES = {"RUNNING": STATE_RUNNING, "FINISHED": STATE_FINISHED}
_TRIAL_STATES = (STATUS_COMPLETE, STATUS_PRUNED, STATUS_FAILED, STATUS_RUNNING)


log = logging.getLogger(__name__)


class MlflowSource:
    """Every cryotune sweep logged to one tracking store."""

    kind = "mlflow"

    def __init__(self, tracking_uri: str):
        from mlflow import MlflowClient

        for key, value in QUIET_CLIENT.items():
            os.environ.setdefault(key, value)
        tracking_uri = normalize(tracking_uri)
        _check_store_exists(tracking_uri)
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._artifacts: dict[tuple[str, str], dict | None] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return "the MLflow store"

    @property
    def repeats_dir(self) -> None:
        """A store holds no `cryotune train --seeds` folders; give them with --repeats."""
        return None

    def sweep_names(self) -> list[str]:
        return list(self._experiments())

    def sweeps(self) -> list[SweepDetail]:
        return [self._detail(name, exp_id) for name, exp_id in self._experiments().items()]

    def sweep(self, name: str) -> SweepDetail:
        experiments = self._experiments()
        if name not in experiments:
            raise NotFoundError("sweep", name, experiments, self.where)
        return self._detail(name, experiments[name])

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]:
        """The record artifact of every finished pair run (of ``dataset``)."""
        experiments = self._experiments()
        records: list[PairRecord | UnreadableRecord] = []
        for run in self._runs(list(experiments.values()), f"tags.`{TAG_LEVEL}` = '{LEVEL_PAIR}'"):
            tags = run.data.tags
            if dataset is not None and tags.get(TAG_DATASET) != dataset:
                continue
            if tags.get(TAG_STATE) != STATE_FINISHED:
                continue
            data = self._artifact(run.info.run_id, RECORD_ARTIFACT)
            if data is None:
                continue
            where = f"MLflow run {run.info.run_id} {RECORD_ARTIFACT}"
            try:
                if isinstance(data, str):
                    raise DocumentError(f"{where}: not a {PairRecord.KIND} ({data})")
                record = PairRecord.parse(data, where)
            except DocumentError as exc:
                log.warning("%s", exc)
                records.append(
                    UnreadableRecord(
                        dataset=tags.get(TAG_DATASET, ""),
                        model=tags.get(TAG_MODEL, ""),
                        error=str(exc),
                    )
                )
                continue
            ids = record.ids
            if ids.mlflow_pair_run_id is None:
                ids = ids.model_copy(update={"mlflow_pair_run_id": run.info.run_id})
            if ids.mlflow_run_id is None:
                run_id = self._trial_run_id(run, ids.study_trial)
                ids = ids.model_copy(update={"mlflow_run_id": run_id})
            records.append(record.model_copy(update={"ids": ids}))
        return records

    def _trial_run_id(self, pair_run, study_trial: int | None) -> str | None:
        """The run of a pair's trial, for records written before their run ids were known."""
        if study_trial is None:
            return None
        tags = pair_run.data.tags
        query = (
            f"tags.`{TAG_LEVEL}` = '{LEVEL_TRIAL}' and tags.`{TAG_PAIR}` = '{tags.get(TAG_PAIR)}' "
            f"and tags.`{TAG_STUDY_TRIAL}` = '{int(study_trial)}'"
        )
        found = next(self._runs([pair_run.info.experiment_id], query), None)
        return found.info.run_id if found is not None else None

    def _experiments(self) -> dict[str, str]:
        """Sweep name -> experiment id of every cryotune experiment."""
        found: dict[str, str] = {}
        token = None
        while True:
            page = self._call(self._client.search_experiments, max_results=_PAGE, page_token=token)
            for experiment in page:
                name = experiment.tags.get(TAG_SWEEP)
                if name:
                    found[name] = experiment.experiment_id
            token = page.token
            if not token:
                return dict(sorted(found.items()))

    def _runs(self, experiment_ids: list[str], filter_string: str = "") -> Iterator:
        if not experiment_ids:
            return
        token = None
        while True:
            page = self._call(
                self._client.search_runs,
                experiment_ids,
                filter_string=filter_string,
                max_results=_PAGE,
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    def _artifact(self, run_id: str, path: str) -> dict | str | None:
        """A JSON artifact of a run (a string saying why when it is not JSON), None while it is
        not there; kept once found."""
        with self._lock:
            if self._artifacts.get((run_id, path)) is not None:
                return self._artifacts[(run_id, path)]
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self._client.download_artifacts(run_id, path, tmp)
                data = json.loads(Path(local).read_text())
            except (MlflowException, OSError):
                data = None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                data = f"invalid JSON: {exc}"
        with self._lock:
            self._artifacts[(run_id, path)] = data
        return data

    def _plan(self, sweep_run) -> SweepPlanDocument:
        """The sweep run's plan; an empty one (pairs known from their runs) when it is missing
        or unreadable (logged)."""
        empty = SweepPlanDocument(
            name="", datasets=[], pairs=[], spec={}, weights=None, data_roots={}, pair_plans=[]
        )
        data = self._artifact(sweep_run.info.run_id, PLAN_ARTIFACT)
        if data is None:
            return empty
        where = f"MLflow run {sweep_run.info.run_id} {PLAN_ARTIFACT}"
        try:
            if isinstance(data, str):
                raise DocumentError(f"{where}: not a {SweepPlanDocument.KIND} ({data})")
            return SweepPlanDocument.parse(data, where)
        except DocumentError as exc:
            log.warning("%s", exc)
            return empty

    def _call(self, method, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return method(*args, **kwargs)
        except MlflowException as exc:
            raise CryotuneError(f"MLflow store {self.tracking_uri}: {exc.message}") from None

    def _detail(self, name: str, experiment_id: str) -> SweepDetail:
        runs = list(self._runs([experiment_id]))
        by_level: dict[str, list] = {LEVEL_SWEEP: [], LEVEL_PAIR: [], LEVEL_TRIAL: []}
        for run in runs:
            by_level.setdefault(run.data.tags.get(TAG_LEVEL, ""), []).append(run)
        sweep_run = by_level[LEVEL_SWEEP][0] if by_level[LEVEL_SWEEP] else None
        planned = {p.key: p for p in self._plan(sweep_run).pair_plans} if sweep_run else {}
        pair_runs = {r.data.tags.get(TAG_PAIR, r.info.run_name): r for r in by_level[LEVEL_PAIR]}
        trials: dict[str, list] = {}
        for run in by_level[LEVEL_TRIAL]:
            trials.setdefault(run.data.tags.get(TAG_PAIR, ""), []).append(run)
        keys = list(planned) + sorted(k for k in pair_runs if k not in planned)
        pairs = [
            _pair(name, key, pair_runs.get(key), trials.get(key, []), planned.get(key))
            for key in keys
        ]
        tags = sweep_run.data.tags if sweep_run else {}
        times = [t for run in runs for t in (run.info.start_time, run.info.end_time) if t]
        return SweepDetail(
            name=name,
            state=_sweep_state(sweep_run),
            datasets=_csv(tags.get(TAG_DATASETS)) or list(dict.fromkeys(p.dataset for p in pairs)),
            models=_csv(tags.get(TAG_MODELS)) or list(dict.fromkeys(p.model for p in pairs)),
            trials=TrialCounts.total(pairs),
            started_at=_time(sweep_run.info.start_time)
            if sweep_run
            else _time(min(times, default=0)),
            updated_at=_time(max(times, default=0)),
            location=f"MLflow experiment {experiment_id}",
            pairs=pairs,
        )


def _check_store_exists(tracking_uri: str) -> None:
    """A sqlite URI naming no file would create an empty store; say so instead."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not Path(tracking_uri[len(prefix) :]).exists():
        raise UsageError(f"--tracking-uri {tracking_uri}: no such MLflow store (file not found)")


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _time(ms: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc) if ms else None


def _sweep_state(run) -> str:
    if run is None:
        return STATE_INTERRUPTED
    state = run.data.tags.get(TAG_STATE)
    if state in (STATE_RUNNING, STATE_FINISHED, STATE_INTERRUPTED):
        return state
    return _RUN_STATES.get(run.info.status, STATE_INTERRUPTED)


def _pair(sweep: str, key: str, run, trial_runs: list, plan: PlannedPair | None) -> PairSummary:
    dataset, _, model = key.partition("/")
    tags = run.data.tags if run is not None else {}
    metrics = run.data.metrics if run is not None else {}
    by_status = {s: [t for t in trial_runs if _status(t) == s] for s in _TRIAL_STATES}
    counts = {
        s: int(metrics.get(f"trials_{name}", len(by_status[s])))
        for s, name in zip(_TRIAL_STATES, ("complete", "pruned", "failed", "running"))
    }
    if trial_runs:
        counts[STATUS_RUNNING] = len(by_status[STATUS_RUNNING])
    finished = tags.get(TAG_STATE) == STATE_FINISHED
    complete = [
        t
        for t in by_status[STATUS_COMPLETE]
        if "best_val_miou" in t.data.metrics and "lr" in t.data.params
    ]
    best = max(complete, key=lambda t: t.data.metrics["best_val_miou"]) if complete else None
    best_val = metrics.get("best_val_miou")
    if best_val is None and best is not None:
        best_val = best.data.metrics["best_val_miou"]
    start = run.info.start_time if run is not None else None
    end = (run.info.end_time if run is not None else None) or time.time() * 1000
    state = "finished" if finished else "running" if counts[STATUS_RUNNING] else "waiting"
    return PairSummary(
        key=key,
        dataset=tags.get(TAG_DATASET, dataset),
        model=tags.get(TAG_MODEL, model),
        study_name=plan.study_name if plan is not None else f"{sweep}/{key}",
        state=state,
        finished=finished,
        budget=plan.trials if plan is not None else None,
        complete=counts[STATUS_COMPLETE],
        pruned=counts[STATUS_PRUNED],
        failed=counts[STATUS_FAILED],
        running=counts[STATUS_RUNNING],
        done=counts[STATUS_COMPLETE] + counts[STATUS_PRUNED] + counts[STATUS_FAILED],
        best_val_miou=best_val,
        best_config=_best_so_far(best) if best is not None else None,
        elapsed_s=max(0.0, (end - start) / 1000) if start else 0.0,
        mlflow_pair_run_id=run.info.run_id if run is not None else None,
    )


def _status(trial_run) -> str | None:
    status = trial_run.data.tags.get(TAG_STATUS)
    return LEGACY_STATUS.get(status, status)


def _best_so_far(run) -> BestSoFar:
    params, tags = run.data.params, run.data.tags
    depth = params.get("depth")
    number = tags.get(TAG_STUDY_TRIAL)
    epoch = run.data.metrics.get("best_epoch")
    return BestSoFar(
        lr=float(params["lr"]),
        depth=int(depth) if depth not in (None, "None") else None,
        study_trial=int(number) if number is not None else None,
        epoch=int(epoch) if epoch else None,
    )
