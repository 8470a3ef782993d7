"""Query source over a workspace folder: sweep plans, Optuna studies and best-config records.

Reads only what a sweep writes as it goes (the studies are updated by every trial), so it answers
while a sweep is running, from any process, without the driver. A finished pair is read from its
record, which the sweep wrote from the study once nothing of the pair could change, so only the
studies of pairs still running are read: a study costs ~10 ms to read through Optuna, and a
finished sweep of 100 pairs read its studies in over a second. While a driver runs the sweep, the
unfinished pairs come from its live status file instead (``cryotune.sweep.live_status``), at most
a few seconds old; a crashed driver's sweep is read from the studies.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from cryotune.documents.plan import PlannedPair
from cryotune.documents.record import PairRecord, UnreadableRecord, read_record
from cryotune.errors import NotFoundError
from cryotune.locations import workspace_root
from cryotune.query.models import (
    BestSoFar,
    PairSummary,
    SweepDetail,
    SweepSummary,
    TrialCounts,
)
from cryotune.report.repeats import REPEATS_DIR
from cryotune.sweep.keys import ORPHANED
from cryotune.sweep.live_status import read_live_status
from cryotune.sweep.status import PairStatus, summarize_trials, without_orphans
from cryotune.sweep.workspace import SweepWorkspace, list_sweeps


class WorkspaceSource:
    """Every sweep under one workspace root (``--workspace``, default ./cryotune-runs)."""

    kind = "workspace"

    def __init__(self, root: str | Path | None = None):
        self.root = workspace_root(root)
        self._storages: dict[str, optuna.storages.RDBStorage] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"workspace {self.root}"

    @property
    def repeats_dir(self) -> Path:
        return self.root / REPEATS_DIR

    def sweep_names(self) -> list[str]:
        return [w.name for w in list_sweeps(self.root)]

    def sweeps(self) -> list[SweepDetail]:
        return [self._detail(w) for w in list_sweeps(self.root)]

    def summaries(self, names: list[str]) -> list[SweepSummary]:
        workspaces = {w.name: w for w in list_sweeps(self.root)}
        return [self._detail(workspaces[n]).summary() for n in names if n in workspaces]

    def sweep(self, name: str) -> SweepDetail:
        workspaces = {w.name: w for w in list_sweeps(self.root)}
        if name not in workspaces:
            raise NotFoundError("sweep", name, workspaces, self.where)
        return self._detail(workspaces[name])

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]:
        """Every record of every sweep (of ``dataset``), unreadable files as stand-ins."""
        pattern = "*.json" if dataset is None else f"{dataset}__*.json"  # DATASET__MODEL.json
        found = [
            read_record(path)
            for workspace in list_sweeps(self.root)
            for path in sorted(workspace.records_dir.glob(pattern))
        ]
        return [r for r in found if dataset is None or r.dataset == dataset]

    def _storage(self, url: str) -> optuna.storages.RDBStorage:
        with self._lock:
            if url not in self._storages:
                self._storages[url] = optuna.storages.RDBStorage(url)
            return self._storages[url]

    def _pair_trials(
        self, workspace: SweepWorkspace, url: str, names: set[str]
    ) -> dict[str, tuple[list[FrozenTrial], int]]:
        """Each of the studies ``names`` that exists yet (none before the database is made):
        its live trials and how many were orphaned; one study list, one trial read a study."""
        if not names or url == workspace.optuna_url and not workspace.optuna_file.exists():
            return {}
        storage = self._storage(url)
        found = {}
        for study in storage.get_all_studies():
            if study.study_name not in names:
                continue
            study_id = storage.get_study_id_from_name(study.study_name)
            trials = storage.get_all_trials(study_id, deepcopy=False)
            orphaned = len(study.user_attrs.get(ORPHANED, []))
            found[study.study_name] = (without_orphans(trials, study.user_attrs), orphaned)
        return found

    def _detail(self, workspace: SweepWorkspace) -> SweepDetail:
        plan = workspace.read_plan()
        url = workspace.storage_url(plan.optuna_storage)
        driver = workspace.driver_owner()
        times = [_mtime(workspace.plan_file)]
        records = {}
        for pair in plan.pair_plans:
            path = workspace.record_path(pair.dataset, pair.model)
            if path.exists():
                records[pair.key] = read_record(path)
                times.append(_mtime(path))
        unrecorded = [p for p in plan.pair_plans if not isinstance(records.get(p.key), PairRecord)]
        statuses = read_live_status(workspace.live_file) if driver is not None else None
        if statuses is None:
            statuses = self._statuses(workspace, url, unrecorded, records)
        pairs = []
        for pair in plan.pair_plans:
            record = records.get(pair.key)
            if isinstance(record, PairRecord):
                pairs.append(_recorded_pair(pair, record))
                continue
            status = statuses.get(pair.key)
            if status is not None:
                times += [t for t in (status.first_start, status.last_change) if t is not None]
            pairs.append(_pair(pair, status, record, driver is not None))
        finished = all(p.finished for p in pairs)
        state = "finished" if finished else "running" if driver is not None else "interrupted"
        return SweepDetail(
            name=workspace.name,
            state=state,
            datasets=list(plan.datasets),
            models=list(dict.fromkeys(p.model for p in plan.pair_plans)),
            trials=TrialCounts.total(pairs),
            started_at=min(times),
            updated_at=max(times),
            location=str(workspace.dir),
            pairs=pairs,
        )

    def _statuses(
        self, workspace: SweepWorkspace, url: str, pairs: list[PlannedPair], records: dict
    ) -> dict[str, PairStatus]:
        """The unrecorded pairs' status, each read from its study."""
        studies = self._pair_trials(workspace, url, {p.study_name for p in pairs})
        out = {}
        for pair in pairs:
            trials, orphaned = studies.get(pair.study_name, ([], 0))
            finished = records.get(pair.key) is not None
            out[pair.key] = summarize_trials(
                trials, orphaned, pair.key, pair.study_name, pair.trials, finished
            )
        return out


def _pair(pair: PlannedPair, status: PairStatus | None, record, live: bool) -> PairSummary:
    """An unrecorded pair (or one whose record is unreadable) from its status; a pair with none
    yet has no trials."""
    finished = record is not None
    if status is None:
        status = summarize_trials([], 0, pair.key, pair.study_name, pair.trials, finished)
    return PairSummary.of_status(
        status,
        finished,
        live,
        mlflow_pair_run_id=record.ids.mlflow_pair_run_id
        if isinstance(record, PairRecord)
        else None,
        record_error=record.error if isinstance(record, UnreadableRecord) else None,
    )


def _recorded_pair(pair: PlannedPair, record: PairRecord) -> PairSummary:
    """A finished pair as its record has it (counts, best result and config, wall time)."""
    trials = record.trials
    best = None
    if record.complete:
        best = BestSoFar(
            lr=record.config.lr,
            depth=record.config.depth,
            study_trial=record.ids.study_trial,
            epoch=record.best.epoch if record.best is not None else None,
        )
    return PairSummary(
        key=pair.key,
        dataset=pair.dataset,
        model=pair.model,
        study_name=pair.study_name,
        state="finished",
        finished=True,
        budget=pair.trials,
        complete=trials.complete,
        pruned=trials.pruned,
        failed=trials.failed,
        running=0,
        done=trials.complete + trials.pruned + trials.failed,
        orphaned=trials.orphaned,
        best_val_miou=record.val_miou,
        best_config=best,
        elapsed_s=record.seconds.pair_wall,
        mlflow_pair_run_id=record.ids.mlflow_pair_run_id,
    )


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
