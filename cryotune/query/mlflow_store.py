"""Query source over an MLflow tracking store alone (a server URL or a sqlite file).

Reads the layout the tracking layer writes (``cryotune.tracking.names``): one experiment per
sweep, a sweep run, a run per pair carrying trial counts as metrics, its best trial so far as
tags and the best-config record as an artifact, and a run per trial with a status tag.

A sweep is read from its sweep and pair runs, the trial runs still running and its last ended
trial run, never from every trial run: a sweep of thousands of trials reads as fast as one of
ten. Only a pair run written before pair runs named their best trial has its trial runs read.
A sweep whose state says running reads as interrupted once its driver's heartbeat is stale
(``cryotune.tracking.heartbeat``): a killed driver cannot say so itself. While the driver beats,
its sweep is read from the live status the beats carry to the sweep run (every pair's row as
the driver last saw it, at most a few seconds old), not from its pair and trial runs.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryotune.documents.document import DocumentError
from cryotune.documents.plan import PlannedPair, SweepPlanDocument
from cryotune.documents.record import PairRecord, UnreadableRecord
from cryotune.errors import CryotuneError, NotFoundError, UsageError
from cryotune.query.models import BestSoFar, PairSummary, SweepDetail, SweepSummary, TrialCounts
from cryotune.tracking.heartbeat import is_stale
from cryotune.tracking.names import (
    LEGACY_STATUS,
    LEVEL_PAIR,
    LEVEL_SWEEP,
    LEVEL_TRIAL,
    LIVE_ARTIFACT,
    PLAN_ARTIFACT,
    RECORD_ARTIFACT,
    STATE_FINISHED,
    STATE_INTERRUPTED,
    STATE_RUNNING,
    STATUS_COMPLETE,
    STATUS_FAILED,
    STATUS_PRUNED,
    STATUS_RUNNING,
    TAG_BEST_DEPTH,
    TAG_BEST_EPOCH,
    TAG_BEST_LR,
    TAG_BEST_STUDY_TRIAL,
    TAG_DATASET,
    TAG_DATASETS,
    TAG_HEARTBEAT,
    TAG_LEVEL,
    TAG_MODEL,
    TAG_MODELS,
    TAG_PAIR,
    TAG_STATE,
    TAG_STATUS,
    TAG_STUDY_TRIAL,
    TAG_SWEEP,
)
from cryotune.tracking.outbox import run_filter
from cryotune.tracking.uri import CLIENT_ENVIRONMENT, normalize

QUIET_CLIENT = {
    **CLIENT_ENVIRONMENT,
    # A reader downloads one small JSON per pair; no progress bars on the console.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
"""MLflow client settings (read from the environment by MLflow itself): fail fast rather than
retry for minutes when a tracking server is away, so a reader answers at once."""

_PAGE = 1000
DOWNLOADS = 8
"""Record artifacts fetched at once (a server answers each in a round trip)."""
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
        self._plans: dict[str, SweepPlanDocument] = {}
        self._finished: dict[str, tuple[tuple, SweepDetail]] = {}
        self._trial_run_ids: dict[tuple[str, int], str | None] = {}
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
        return self._details(self._experiments(), best=True)

    def summaries(self, names: list[str]) -> list[SweepSummary]:
        experiments = self._experiments()
        wanted = {n: experiments[n] for n in names if n in experiments}
        return [d.summary() for d in self._details(wanted, best=False)]

    def sweep(self, name: str) -> SweepDetail:
        experiment = self._call(self._client.get_experiment_by_name, name)
        known = experiment is not None and experiment.lifecycle_stage == "active"
        if not known or experiment.tags.get(TAG_SWEEP) != name:
            raise NotFoundError("sweep", name, self._experiments(), self.where)
        (detail,) = self._details({name: experiment.experiment_id}, best=True)
        return detail

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]:
        """The record artifact of every finished pair run (of ``dataset``)."""
        experiments = list(self._experiments().values())
        match = {TAG_LEVEL: LEVEL_PAIR, TAG_STATE: STATE_FINISHED}
        if dataset is not None:
            match[TAG_DATASET] = dataset
        runs = list(_matching(self._runs(experiments, run_filter(match)), match))
        with ThreadPoolExecutor(max_workers=DOWNLOADS) as pool:  # each one a round trip
            found = list(pool.map(lambda r: self._artifact(r, RECORD_ARTIFACT), runs))
        records: list[PairRecord | UnreadableRecord] = []
        for run, data in zip(runs, found, strict=True):
            tags = run.data.tags
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
        key = (pair_run.info.run_id, int(study_trial))
        if self._trial_run_ids.get(key) is None:
            match = {
                TAG_LEVEL: LEVEL_TRIAL,
                TAG_PAIR: pair_run.data.tags.get(TAG_PAIR, ""),
                TAG_STUDY_TRIAL: str(int(study_trial)),
            }
            runs = self._runs([pair_run.info.experiment_id], run_filter(match))
            found = next(_matching(runs, match), None)
            self._trial_run_ids[key] = found.info.run_id if found is not None else None
        return self._trial_run_ids[key]

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

    def _runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        order_by: list[str] | None = None,
        limit: int | None = None,
    ) -> Iterator:
        """The runs matching ``filter_string``, page by page (at most ``limit``)."""
        if not experiment_ids:
            return
        token, seen = None, 0
        while True:
            page = self._call(
                self._client.search_runs,
                experiment_ids,
                filter_string=filter_string,
                max_results=min(_PAGE, limit - seen) if limit else _PAGE,
                order_by=order_by,
                page_token=token,
            )
            yield from page
            seen += len(page)
            token = page.token
            if not token or (limit and seen >= limit):
                return

    def _artifact(self, run, path: str, keep: bool = True) -> dict | str | None:
        """A JSON artifact of ``run`` (a string saying why when it is not JSON), None while it
        is not there; with ``keep``, kept once found. Fetched by the run's artifact URI: one
        round trip, where the client's download by run id makes three."""
        key = (run.info.run_id, path)
        with self._lock:
            if keep and self._artifacts.get(key) is not None:
                return self._artifacts[key]
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        uri = f"{run.info.artifact_uri.rstrip('/')}/{path}"
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                data = json.loads(Path(local).read_text())
            except (MlflowException, OSError):
                data = None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                data = f"invalid JSON: {exc}"
        if keep:
            with self._lock:
                self._artifacts[key] = data
        return data

    def _plan(self, sweep_run) -> SweepPlanDocument:
        """The sweep run's plan; an empty one (pairs known from their runs) when it is missing
        or unreadable (logged)."""
        empty = SweepPlanDocument(
            name="", datasets=[], pairs=[], spec={}, weights=None, data_roots={}, pair_plans=[]
        )
        run_id = sweep_run.info.run_id
        if run_id in self._plans:
            return self._plans[run_id]
        data = self._artifact(sweep_run, PLAN_ARTIFACT)
        if data is None:
            return empty
        where = f"MLflow run {run_id} {PLAN_ARTIFACT}"
        try:
            if isinstance(data, str):
                raise DocumentError(f"{where}: not a {SweepPlanDocument.KIND} ({data})")
            plan = SweepPlanDocument.parse(data, where)
        except DocumentError as exc:
            log.warning("%s", exc)
            return empty
        with self._lock:
            self._plans[run_id] = plan
        return plan

    def _call(self, method, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return method(*args, **kwargs)
        except MlflowException as exc:
            raise CryotuneError(f"MLflow store {self.tracking_uri}: {exc.message}") from None

    def _details(self, experiments: dict[str, str], best: bool) -> list[SweepDetail]:
        """The sweeps ``experiments`` names (name -> experiment id), from their sweep and pair
        runs, their running trial runs and their last ended one; ``best``: with each pair's best
        config (read from trial runs only for pair runs that do not name their best trial).

        A finished sweep's detail is kept (a server answers many reads): its runs no longer
        change until a ``--resume``, which makes its sweep run beat and end again, so the kept
        detail is used while the sweep run's id, end and last beat are the same.
        """
        ids = list(experiments.values())
        sweep_runs: dict[str, list] = {i: [] for i in ids}
        for run in self._runs(ids, _level(LEVEL_SWEEP)):
            sweep_runs[run.info.experiment_id].append(run)
        found: dict[str, SweepDetail] = {}
        for name, experiment_id in experiments.items():
            kept = self._finished.get(experiment_id)
            key = _finished_key(sweep_runs[experiment_id], best)
            if key is not None and kept is not None and kept[0] == key:
                found[name] = kept[1]
        unread = [i for n, i in experiments.items() if n not in found]
        live = self._live_statuses({i: sweep_runs[i] for i in unread})
        unread = [i for i in unread if i not in live]
        by_experiment = {i: {LEVEL_SWEEP: sweep_runs[i]} for i in unread}
        for run in self._runs(unread, _level(LEVEL_PAIR)):
            by_experiment[run.info.experiment_id].setdefault(LEVEL_PAIR, []).append(run)
        # A finished sweep's tracker ended every trial run: only the others can have some running.
        unfinished = [i for i in unread if _finished_key(sweep_runs[i], best) is None]
        running = f"{_level(LEVEL_TRIAL)} and tags.`{TAG_STATUS}` = '{STATUS_RUNNING}'"
        for run in self._runs(unfinished, running):
            by_experiment[run.info.experiment_id].setdefault(STATUS_RUNNING, []).append(run)
        for name, experiment_id in experiments.items():
            if name in found:
                continue
            if experiment_id in live:
                found[name] = _live_detail(name, experiment_id, *live[experiment_id])
                continue
            detail = self._detail(name, experiment_id, by_experiment[experiment_id], best)
            key = _finished_key(sweep_runs[experiment_id], best)
            if key is not None and detail.state == STATE_FINISHED:
                with self._lock:
                    self._finished[experiment_id] = (key, detail)
            found[name] = detail
        return [found[name] for name in experiments]

    def _live_statuses(self, sweep_runs: dict[str, list]) -> dict[str, tuple]:
        """Experiment id -> (sweep run, pair rows, pair run ids) of each running sweep whose
        driver beats and has sent its live status (``LIVE_ARTIFACT``): one small download
        instead of every pair run, so a running sweep of 100 pairs reads in a few round trips."""
        running = {
            i: runs[0]
            for i, runs in sweep_runs.items()
            if runs and _sweep_state(runs[0]) == STATE_RUNNING
        }
        if not running:
            return {}
        from cryotune.sweep.live_status import parse_live_status  # Optuna's import: when needed

        with ThreadPoolExecutor(max_workers=DOWNLOADS) as pool:
            fetched = pool.map(
                lambda r: self._artifact(r, LIVE_ARTIFACT, keep=False), running.values()
            )
            documents = dict(zip(running, fetched, strict=True))
        out = {}
        for experiment_id, document in documents.items():
            rows = parse_live_status(document)
            if rows:
                ids = document.get("pair_run_ids") or {}
                out[experiment_id] = (running[experiment_id], rows, ids)
        return out

    def _last_ended(self, experiment_id: str) -> int | None:
        """When the sweep's last trial run ended (ms), None before any did."""
        query = f"{_level(LEVEL_TRIAL)} and attributes.status != 'RUNNING'"
        runs = self._runs([experiment_id], query, order_by=["attributes.end_time DESC"], limit=1)
        found = next(runs, None)
        return found.info.end_time if found is not None else None

    def _pair_trials(self, pair_run) -> list:
        """Every trial run of a pair (for a pair run that does not name its best trial)."""
        match = {TAG_LEVEL: LEVEL_TRIAL, TAG_PAIR: pair_run.data.tags.get(TAG_PAIR, "")}
        runs = self._runs([pair_run.info.experiment_id], run_filter(match))
        return list(_matching(runs, match))

    def _detail(self, name: str, experiment_id: str, runs: dict[str, list], best: bool):
        sweep_runs = runs.get(LEVEL_SWEEP, [])
        sweep_run = sweep_runs[0] if sweep_runs else None
        state = _sweep_state(sweep_run)
        planned = {p.key: p for p in self._plan(sweep_run).pair_plans} if sweep_run else {}
        pair_runs = {
            r.data.tags.get(TAG_PAIR, r.info.run_name): r for r in runs.get(LEVEL_PAIR, [])
        }
        live: dict[str, list] = {}
        for run in runs.get(STATUS_RUNNING, []):
            live.setdefault(run.data.tags.get(TAG_PAIR, ""), []).append(run)
        keys = list(planned) + sorted(k for k in pair_runs if k not in planned)
        pairs = []
        for key in keys:
            run = pair_runs.get(key)
            trials = None
            if best and run is not None and TAG_BEST_STUDY_TRIAL not in run.data.tags:
                trials = self._pair_trials(run)
            pairs.append(_pair(name, key, run, live.get(key, []), trials, planned.get(key), state))
        tags = sweep_run.data.tags if sweep_run else {}
        known = [*sweep_runs, *pair_runs.values(), *runs.get(STATUS_RUNNING, [])]
        times = [t for run in known for t in (run.info.start_time, run.info.end_time) if t]
        if sweep_run is None or not sweep_run.info.end_time:  # ended: its end is the last
            times.append(self._last_ended(experiment_id) or 0)
        started = (
            sweep_run.info.start_time if sweep_run else min((t for t in times if t), default=0)
        )
        return _sweep_detail(
            name, experiment_id, state, tags, pairs, started, max(times, default=0)
        )


def _live_detail(name: str, experiment_id: str, sweep_run, rows: dict, run_ids: dict):
    """A running sweep as its driver's live status has it (``_live_statuses``)."""
    tags = sweep_run.data.tags
    pairs = [
        PairSummary.of_status(row, row.finished, True, mlflow_pair_run_id=run_ids.get(key))
        for key, row in rows.items()
    ]
    started = sweep_run.info.start_time
    stamps = [t for r in rows.values() for t in (r.first_start, r.last_change) if t]
    updated = max([started, *(t.timestamp() * 1000 for t in stamps)])
    return _sweep_detail(name, experiment_id, STATE_RUNNING, tags, pairs, started, updated)


def _sweep_detail(
    name: str, experiment_id: str, state: str, tags: dict, pairs: list, started_ms, updated_ms
) -> SweepDetail:
    """A sweep's detail from its sweep run's tags and its pairs (times in ms)."""
    return SweepDetail(
        name=name,
        state=state,
        datasets=_csv(tags.get(TAG_DATASETS)) or list(dict.fromkeys(p.dataset for p in pairs)),
        models=_csv(tags.get(TAG_MODELS)) or list(dict.fromkeys(p.model for p in pairs)),
        trials=TrialCounts.total(pairs),
        started_at=_time(started_ms),
        updated_at=_time(updated_ms),
        location=f"MLflow experiment {experiment_id}",
        pairs=pairs,
    )


def _finished_key(sweep_runs: list, best: bool) -> tuple | None:
    """What identifies a finished sweep's runs as read (None: not finished, nothing to keep)."""
    if len(sweep_runs) != 1:
        return None
    run = sweep_runs[0]
    if run.data.tags.get(TAG_STATE) != STATE_FINISHED or not run.info.end_time:
        return None
    return (run.info.run_id, run.info.end_time, run.data.tags.get(TAG_HEARTBEAT), best)


def _level(level: str) -> str:
    return f"tags.`{TAG_LEVEL}` = '{level}'"


def _matching(runs: Iterator, match: dict[str, str]) -> Iterator:
    """The runs carrying every tag of ``match`` (``run_filter`` leaves out values that need
    quoting, so the store may return more)."""
    return (r for r in runs if all(r.data.tags.get(k) == v for k, v in match.items()))


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
    if state not in (STATE_RUNNING, STATE_FINISHED, STATE_INTERRUPTED):
        state = _RUN_STATES.get(run.info.status, STATE_INTERRUPTED)
    if state == STATE_RUNNING and is_stale(run.data.tags):
        return STATE_INTERRUPTED  # its driver stopped beating: killed, or its machine died
    return state


def _pair(
    sweep: str,
    key: str,
    run,
    running: list,
    trial_runs: list | None,
    plan: PlannedPair | None,
    sweep_state: str,
) -> PairSummary:
    """A pair from its run's count metrics and best-trial tags, and its running trial runs;
    ``trial_runs`` (all of the pair's, when read) give counts and best config instead."""
    dataset, _, model = key.partition("/")
    tags = run.data.tags if run is not None else {}
    metrics = run.data.metrics if run is not None else {}
    names = ("complete", "pruned", "failed", "running")
    counts = {s: int(metrics.get(f"trials_{n}", 0)) for s, n in zip(_TRIAL_STATES, names)}
    best = _tagged_best(tags)
    best_val = metrics.get("best_val_miou")
    if trial_runs is not None:
        by_status = {s: [t for t in trial_runs if _status(t) == s] for s in _TRIAL_STATES}
        counts = {s: len(by_status[s]) or counts[s] for s in _TRIAL_STATES}
        complete = [
            t
            for t in by_status[STATUS_COMPLETE]
            if "best_val_miou" in t.data.metrics and "lr" in t.data.params
        ]
        top = max(complete, key=lambda t: t.data.metrics["best_val_miou"]) if complete else None
        if top is not None:
            best = _best_so_far(top)
            if best_val is None:
                best_val = top.data.metrics["best_val_miou"]
    counts[STATUS_RUNNING] = len(running)
    finished = tags.get(TAG_STATE) == STATE_FINISHED
    start = run.info.start_time if run is not None else None
    end = (run.info.end_time if run is not None else None) or time.time() * 1000
    live = sweep_state == STATE_RUNNING
    state = "finished" if finished else "running" if live and running else "waiting"
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
        best_config=best,
        elapsed_s=max(0.0, (end - start) / 1000) if start else 0.0,
        mlflow_pair_run_id=run.info.run_id if run is not None else None,
    )


def _tagged_best(tags: dict[str, str]) -> BestSoFar | None:
    """The best trial a pair run names in its tags (None: it names none, or not readably)."""
    try:
        depth, epoch = tags.get(TAG_BEST_DEPTH), tags.get(TAG_BEST_EPOCH)
        return BestSoFar(
            lr=float(tags[TAG_BEST_LR]),
            depth=int(depth) if depth not in (None, "", "None") else None,
            study_trial=int(tags[TAG_BEST_STUDY_TRIAL]),
            epoch=int(epoch) if epoch not in (None, "", "None") else None,
        )
    except (KeyError, ValueError):
        return None


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
