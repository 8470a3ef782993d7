"""The one query layer behind ``cryotune status``, ``cryotune best`` and the HTTP API.

A ``Query`` asks a source (a workspace folder, or an MLflow tracking store alone) for sweeps and
best-config records and shapes them into the typed answers of ``cryotune.query.models``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

from cryotune.documents.record import PairRecord, UnreadableRecord, leaderboard
from cryotune.errors import DataError, NotFoundError, UsageError
from cryotune.query.models import (
    BestRecord,
    Leaderboard,
    LeaderboardEntry,
    SweepDetail,
    SweepState,
    SweepSummary,
)
from cryotune.reference import LATER_SOURCE, PAPER_SOURCE
from cryotune.report.models import REPORT_TITLE, ReferenceTable, Report
from cryotune.report.repeats import read_repeats
from cryotune.report.table import build_report, pending_pairs


class Source(Protocol):
    kind: Literal["workspace", "mlflow"]

    @property
    def where(self) -> str: ...

    def sweep_names(self) -> list[str]: ...

    def sweeps(self) -> list[SweepDetail]: ...

    def sweep(self, name: str) -> SweepDetail: ...

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]: ...

    @property
    def repeats_dir(self) -> Path | None:
        """Where seed repeats of best configs are looked for by default (None: nowhere)."""


class Query:
    def __init__(self, source: Source):
        self.source = source

    def sweeps(self, state: SweepState | None = None) -> list[SweepSummary]:
        return [
            SweepSummary(**d.model_dump(exclude={"pairs"}))
            for d in self.source.sweeps()
            if state is None or d.state == state
        ]

    def sweep_details(self) -> list[SweepDetail]:
        return self.source.sweeps()

    def sweep(self, name: str) -> SweepDetail:
        return self.source.sweep(name)

    def best_records(self, dataset: str) -> list[BestRecord]:
        """Each model's best record on ``dataset`` over every sweep, best first (the one
        leaderboard, ``cryotune.documents.record.leaderboard``)."""
        found = self.source.records(dataset)
        readable = [r for r in found if isinstance(r, PairRecord)]
        best = leaderboard(readable)
        if not best:
            unreadable = [r.error for r in found if isinstance(r, UnreadableRecord)]
            if unreadable:
                raise DataError(f"no readable record of {dataset}: " + "; ".join(unreadable))
            with_results = {r.dataset for r in self.source.records()}
            raise NotFoundError("dataset", dataset, with_results, self.source.where)
        return [BestRecord.of(r) for r in best]

    def unreadable(self, dataset: str) -> list[str]:
        """The record files of ``dataset`` that cannot be read, each with what is wrong."""
        return [r.error for r in self.source.records(dataset) if isinstance(r, UnreadableRecord)]

    def best(self, dataset: str, model: str) -> BestRecord:
        records = {r.model: r for r in self.best_records(dataset)}
        if model not in records:
            damaged = [e for e in self.unreadable(dataset) if f"__{model}.json" in e]
            if damaged:
                raise DataError("; ".join(damaged))
            raise NotFoundError("model", model, records, f"the {dataset} results")
        return records[model]

    def leaderboard(self, dataset: str) -> Leaderboard:
        return Leaderboard(
            dataset=dataset,
            entries=[_entry(r) for r in self.best_records(dataset)],
            paper_reference=PAPER_SOURCE,
            later_reference=LATER_SOURCE,
            unreadable_records=self.unreadable(dataset),
        )

    def report(
        self,
        sweep: str | None = None,
        *,
        datasets: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        repeat_dirs: Iterable[Path] = (),
        reference: ReferenceTable = "paper",
    ) -> Report:
        """The results table of one sweep (or of every sweep): its best records, pairs still
        running or stopped, and seed repeats found in ``repeat_dirs`` and the source's own
        repeats folder."""
        details = [self.source.sweep(sweep)] if sweep is not None else self.source.sweeps()
        records = self.source.records()
        if sweep is not None:
            records = [r for r in records if _of_sweep(r, details[0])]
        folders = [*repeat_dirs]
        if self.source.repeats_dir is not None:
            folders.append(self.source.repeats_dir)
        repeats, problems = read_repeats(folders)
        where = self.source.where
        report = build_report(
            records,
            pending_pairs(details),
            title=REPORT_TITLE,
            scope=f"sweep {sweep} in {where}" if sweep is not None else f"every sweep in {where}",
            sweeps=[d.name for d in details],
            datasets=datasets,
            models=models,
            repeats=repeats,
            reference=reference,
        )
        return report.model_copy(update={"warnings": [*report.warnings, *problems]})


def _of_sweep(record: PairRecord | UnreadableRecord, detail: SweepDetail) -> bool:
    """Whether a record belongs to the sweep; an unreadable one names no sweep, so it counts
    when the sweep planned its pair."""
    if isinstance(record, PairRecord):
        return record.sweep == detail.name
    return any((p.dataset, p.model) == (record.dataset, record.model) for p in detail.pairs)


def _entry(record: BestRecord) -> LeaderboardEntry:
    return LeaderboardEntry(
        model=record.model,
        sweep=record.sweep,
        val_miou=record.val_miou,
        test_miou=record.test_miou,
        lr=record.config.lr,
        depth=record.config.depth,
        num_blocks=record.search_space.get("num_blocks"),
        config=record.config,
        trials=record.trials,
        mlflow_run_id=record.ids.mlflow_run_id,
        paper_frozen_miou=record.paper_frozen_miou,
        later_frozen_miou=record.later_frozen_miou,
        reference_note=record.reference_note,
        repeat_command=record.repeat_command,
    )


def open_query(workspace: str | Path | None = None, tracking_uri: str | None = None) -> Query:
    """A query over a workspace (default ./cryotune-runs) or, given only a URI, an MLflow store."""
    if workspace is not None and tracking_uri is not None:
        raise UsageError("give --workspace or --tracking-uri, not both")
    if tracking_uri is not None:
        from cryotune.query.mlflow_store import MlflowSource

        return Query(MlflowSource(tracking_uri))
    from cryotune.query.workspace import WorkspaceSource

    return Query(WorkspaceSource(workspace))
