"""The one query layer behind ``cryotune status``, ``cryotune best`` and the HTTP API.

A ``Query`` asks a source (a workspace folder, or an MLflow tracking store alone) for sweeps and
best-config records and shapes them into the typed answers of ``cryotune.query.models``.

The sweep list comes in pages by name: listing names is cheap in every source, summarising a
sweep is not (its studies, or its runs), so a page summarises only the sweeps it shows. A page
token is the last name shown, opaque to clients, so sweeps started between two pages neither
shift nor repeat what a client has seen.
"""

from __future__ import annotations

import re
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
    SweepPage,
    SweepState,
    SweepSummary,
)
from cryotune.reference import LATER_SOURCE, PAPER_SOURCE
from cryotune.report.models import REPORT_TITLE, ReferenceTable, Report
from cryotune.report.repeats import read_repeats
from cryotune.report.table import build_report, pending_pairs
from cryotune.sweep.workspace import SWEEP_NAME_PATTERN

DEFAULT_PAGE = 100
"""Sweeps per page unless asked otherwise: every sweep of a small store in one page."""
MAX_PAGE = 1000
PAGE_TOKEN_PREFIX = "after:"
PAGE_TOKEN_PATTERN = "^" + PAGE_TOKEN_PREFIX + SWEEP_NAME_PATTERN.removeprefix("^")
"""Not a bare name: a number or boolean sent as a token would read as one."""
PAGE_TOKEN_MAX = len(PAGE_TOKEN_PREFIX) + 128


class PageTokenError(UsageError):
    """A page token this service did not give out."""


class Source(Protocol):
    kind: Literal["workspace", "mlflow"]

    @property
    def where(self) -> str: ...

    def sweep_names(self) -> list[str]:
        """Every sweep's name, sorted; cheap (no sweep is read)."""

    def sweeps(self) -> list[SweepDetail]: ...

    def summaries(self, names: list[str]) -> list[SweepSummary]:
        """The named sweeps (that exist), in that order, reading only what a summary needs."""

    def sweep(self, name: str) -> SweepDetail: ...

    def records(self, dataset: str | None = None) -> list[PairRecord | UnreadableRecord]: ...

    @property
    def repeats_dir(self) -> Path | None:
        """Where seed repeats of best configs are looked for by default (None: nowhere)."""


class Query:
    def __init__(self, source: Source):
        self.source = source

    def sweeps(self, state: SweepState | None = None) -> list[SweepSummary]:
        """Every sweep (in ``state``)."""
        found = self.source.summaries(self.source.sweep_names())
        return [s for s in found if state is None or s.state == state]

    def sweep_page(
        self,
        state: SweepState | None = None,
        limit: int = DEFAULT_PAGE,
        page_token: str | None = None,
    ) -> SweepPage:
        """Up to ``limit`` sweeps (in ``state``) after the page ``page_token`` ended with."""
        if not 1 <= limit <= MAX_PAGE:
            raise UsageError(f"limit {limit}: give 1..{MAX_PAGE}")
        after = decode_page_token(page_token) if page_token else None
        names = [n for n in self.source.sweep_names() if after is None or n > after]
        shown: list[SweepSummary] = []
        start = 0
        while start < len(names) and len(shown) < limit:
            batch = names[start : start + limit - len(shown)]
            start += len(batch)
            for summary in self.source.summaries(batch):
                if state is None or summary.state == state:
                    shown.append(summary)
            last = batch[-1]
        more = start < len(names)
        return SweepPage(sweeps=shown, next_page_token=encode_page_token(last) if more else None)

    def sweep_details(self) -> list[SweepDetail]:
        return self.source.sweeps()

    def sweep(self, name: str) -> SweepDetail:
        return self.source.sweep(name)

    def best_records(self, dataset: str) -> list[BestRecord]:
        """Each model's best record on ``dataset`` over every sweep, best first (the one
        leaderboard, ``cryotune.documents.record.leaderboard``)."""
        return self._best_of(dataset, self.source.records(dataset))

    def _best_of(
        self, dataset: str, found: list[PairRecord | UnreadableRecord]
    ) -> list[BestRecord]:
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
        found = self.source.records(dataset)  # read once for the entries and the unreadable
        return Leaderboard(
            dataset=dataset,
            entries=[_entry(r) for r in self._best_of(dataset, found)],
            paper_reference=PAPER_SOURCE,
            later_reference=LATER_SOURCE,
            unreadable_records=[r.error for r in found if isinstance(r, UnreadableRecord)],
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


def encode_page_token(last_name: str) -> str:
    """A page's token: ``after:`` and the last sweep name it showed (names are unique and sort
    the list), so every token of that form is one a reader may give."""
    return PAGE_TOKEN_PREFIX + last_name


def decode_page_token(token: str) -> str:
    """The sweep name a page ended with; PageTokenError for anything else."""
    if len(token) > PAGE_TOKEN_MAX or not re.match(PAGE_TOKEN_PATTERN, token):
        raise PageTokenError(
            f"page_token {token[:64]!r}: not a token from a previous page ('after:' and the "
            "last sweep name it showed)"
        )
    return token.removeprefix(PAGE_TOKEN_PREFIX)


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
