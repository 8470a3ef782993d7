"""The paper's results table regenerated from best-config records: a pure function of records,
the pairs still pending in sweeps, and seed repeats.

The query layer (``cryotune report``, ``/report/{sweep}``) and the sweep's MLflow tracking both
build their report here from plain data, so the file a sweep logs and the one a user asks for
later are the same table.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cryotune.documents.record import PairRecord, UnreadableRecord, leaderboard
from cryotune.reference import (
    DATASET_LABELS,
    LATER_FROZEN_MIOU,
    LATER_SOURCE,
    MODEL_LABELS,
    PAPER_DATASETS,
    PAPER_FROZEN_MIOU,
    PAPER_MODELS,
    PAPER_SOURCE,
    PROTOCOL_NOTES,
    later_frozen_miou,
    paper_frozen_miou,
)
from cryotune.report.models import (
    CELL_STATES,
    SAME_PROTOCOL,
    CellSeeds,
    ReferenceTable,
    Report,
    ReportAverage,
    ReportCell,
    ReportColumn,
    ReportReference,
    ReportRow,
)
from cryotune.report.repeats import Repeats, differences

if TYPE_CHECKING:  # the query package imports this module
    from cryotune.query.models import SweepDetail

_LOOKUP = {"paper": paper_frozen_miou, "later": later_frozen_miou}
_SOURCES = {"paper": PAPER_SOURCE, "later": LATER_SOURCE}
_REPORTED = {
    name: {dataset for row in table.values() for dataset in row}
    for name, table in (("paper", PAPER_FROZEN_MIOU), ("later", LATER_FROZEN_MIOU))
}


@dataclass(frozen=True)
class PendingPair:
    """A pair a sweep planned that has no record yet: ``running`` while its sweep runs,
    ``missing`` when the sweep stopped before it ended."""

    dataset: str
    model: str
    state: Literal["running", "missing"]
    note: str


def pending_pairs(details: Iterable[SweepDetail]) -> list[PendingPair]:
    """The unfinished pairs of ``details``, each with where it stands."""
    pending = []
    for detail in details:
        for pair in detail.pairs:
            if pair.finished:
                continue
            budget = "?" if pair.budget is None else pair.budget
            progress = f"{pair.done}/{budget} trials done"
            if detail.state == "running":
                state, note = "running", f"sweep {detail.name}: {progress}"
            else:
                state = "missing"
                note = (
                    f"sweep {detail.name} {detail.state} at {progress}; repeat its "
                    "`cryotune sweep` command with --resume"
                )
            pending.append(PendingPair(pair.dataset, pair.model, state, note))
    return pending


def build_report(
    records: Iterable[PairRecord | UnreadableRecord],
    pending: Iterable[PendingPair] = (),
    *,
    title: str,
    scope: str,
    sweeps: Iterable[str],
    datasets: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    repeats: Iterable[Repeats] = (),
    reference: ReferenceTable = "paper",
) -> Report:
    """The report over ``records`` (any sweeps; each pair shows its best by validation mIoU).

    Columns and rows are ``datasets`` and ``models`` when given, else every dataset and model
    that has a record or a pending pair, in the paper's order first.
    """
    records = list(records)
    pending = list(pending)
    readable = [r for r in records if isinstance(r, PairRecord)]
    best = {(r.dataset, r.model): r for r in leaderboard(readable)}
    failed = {(r.dataset, r.model): r for r in readable if not r.complete}
    unreadable = {(r.dataset, r.model): r for r in records if isinstance(r, UnreadableRecord)}
    waiting: dict[tuple[str, str], list[PendingPair]] = {}
    for pair in pending:
        waiting.setdefault((pair.dataset, pair.model), []).append(pair)
    seen = [*((r.dataset, r.model) for r in records), *waiting]
    columns = _ordered(datasets, (d for d, _ in seen), PAPER_DATASETS, DATASET_LABELS)
    row_keys = _ordered(models, (m for _, m in seen), PAPER_MODELS, MODEL_LABELS)
    warnings: list[str] = []
    matched = _match_repeats(best, list(repeats), warnings)
    rows = []
    for model in row_keys:
        cells = []
        for dataset in columns:
            key = (dataset, model)
            value = _reference(dataset, model, reference)[1]
            if key in best:
                cell = _complete(best[key], value, matched.get(key), waiting.get(key, []))
            else:
                cell = _without_result(
                    dataset,
                    model,
                    value,
                    waiting.get(key, []),
                    failed.get(key),
                    unreadable.get(key),
                )
            cells.append(cell)
        rows.append(
            ReportRow(
                model=model,
                label=MODEL_LABELS.get(model, model),
                cells=cells,
                average=_average(cells, len(columns)),
            )
        )
    counts = {state: 0 for state in CELL_STATES}
    for row in rows:
        for cell in row.cells:
            counts[cell.state] += 1
    return Report(
        title=title,
        scope=scope,
        sweeps=sorted(set(sweeps)),
        reference_table=reference,
        columns=[_column(d, reference) for d in columns],
        rows=rows,
        counts=counts,
        seed_repeats=sum(1 for row in rows for cell in row.cells if cell.seeds is not None),
        warnings=warnings,
    )


def _ordered(
    given: Iterable[str] | None, found: Iterable[str], first: tuple[str, ...], known: dict
) -> list[str]:
    if given is not None:
        return list(dict.fromkeys(given))
    present = set(found)
    order = [*first, *(k for k in known if k not in first)]
    return [k for k in order if k in present] + sorted(present - set(order))


def _reference(dataset: str, model: str, table: ReferenceTable) -> tuple[str | None, float | None]:
    """The reference table used for ``dataset`` (``table`` first, else the other where it
    reports the dataset) and its value for ``model``."""
    chosen = _table_for(dataset, table)
    return chosen, _LOOKUP[chosen](dataset, model) if chosen else None


def _table_for(dataset: str, table: ReferenceTable) -> ReferenceTable | None:
    other: ReferenceTable = "later" if table == "paper" else "paper"
    return next((name for name in (table, other) if dataset in _REPORTED[name]), None)


def _column(dataset: str, table: ReferenceTable) -> ReportColumn:
    chosen = _table_for(dataset, table)
    note = PROTOCOL_NOTES.get(dataset) if chosen == "paper" else None
    return ReportColumn(
        dataset=dataset,
        label=DATASET_LABELS.get(dataset, dataset),
        reference=ReportReference(
            table=chosen,
            source=_SOURCES[chosen] if chosen else "no Cryo-Bench table reports this dataset",
            protocol=note or SAME_PROTOCOL,
        ),
    )


def _match_repeats(
    best: dict[tuple[str, str], PairRecord], repeats: list[Repeats], warnings: list[str]
) -> dict[tuple[str, str], Repeats]:
    """For each best config, the repeats that trained it (the most seeds, if several); a
    repeat of a shown pair that trained another config is named in ``warnings``."""
    matched: dict[tuple[str, str], Repeats] = {}
    for found in repeats:
        record = best.get(found.key)
        if record is None or not found.seeds or found.test_miou_mean is None:
            continue
        changed = differences(record.config, found.config)
        if changed:
            warnings.append(
                f"{found.folder}: seed repeats of {record.key} not shown: they trained another "
                f"config than the best one of sweep {record.sweep} ({'; '.join(changed)})"
            )
            continue
        current = matched.get(found.key)
        if current is None or len(found.seeds) > len(current.seeds):
            matched[found.key] = found
    return matched


def _complete(
    record: PairRecord, reference: float | None, repeats: Repeats | None, live: list[PendingPair]
) -> ReportCell:
    value, std, seeds = record.test_miou, None, None
    if repeats is not None:
        value, std = repeats.test_miou_mean, repeats.test_miou_std
        seeds = CellSeeds(
            count=len(repeats.seeds),
            seeds=list(repeats.seeds),
            folder=repeats.folder,
            val_miou_mean=repeats.val_miou_mean,
            val_miou_std=repeats.val_miou_std,
        )
    notes = [p.note for p in live if p.state == "running"]
    if value is None:
        notes.insert(0, "no test score: the best trial was not tested (evaluate_test off)")
    return ReportCell(
        dataset=record.dataset,
        model=record.model,
        state="complete",
        test_miou=value,
        test_miou_std=std,
        seeds=seeds,
        val_miou=record.val_miou,
        reference=reference,
        difference=None if value is None or reference is None else value - reference,
        sweep=record.sweep,
        lr=record.config.lr,
        depth=record.config.depth,
        note="; ".join(notes) or None,
    )


def _without_result(
    dataset: str,
    model: str,
    reference: float | None,
    live: list[PendingPair],
    failed: PairRecord | None,
    unreadable: UnreadableRecord | None,
) -> ReportCell:
    running = [p.note for p in live if p.state == "running"]
    stopped = [p.note for p in live if p.state == "missing"]
    failure = None
    if failed is not None:
        failure = f"sweep {failed.sweep}: no trial completed ({_last_error(failed)})"
    if running:
        state, notes = "running", [*running, *([failure] if failure else [])]
    elif failed is not None:
        state, notes = "failed", [failure, *stopped]
    elif unreadable is not None:
        state, notes = "unreadable", [unreadable.error, *stopped]
    else:
        state, notes = "missing", stopped or ["no sweep in scope planned this pair"]
    return ReportCell(
        dataset=dataset, model=model, state=state, reference=reference, note="; ".join(notes)
    )


def _last_error(record: PairRecord) -> str:
    """The last line of the record's last error, the exception that ended its trials."""
    lines = [line.strip() for e in record.errors[-1:] for line in e.strip().splitlines()]
    last = lines[-1] if lines else f"{record.trials.failed} failed, {record.trials.pruned} pruned"
    return last if len(last) <= 300 else last[:297] + "..."


def _average(cells: list[ReportCell], columns: int) -> ReportAverage:
    scored = [c for c in cells if c.test_miou is not None]
    if not scored:
        return ReportAverage(
            test_miou=None, reference=None, difference=None, datasets=[], complete=False
        )
    value = statistics.fmean(c.test_miou for c in scored)
    references = [c.reference for c in scored]
    reference = None if None in references else statistics.fmean(references)
    return ReportAverage(
        test_miou=value,
        reference=reference,
        difference=None if reference is None else value - reference,
        datasets=[c.dataset for c in scored],
        complete=len(scored) == columns,
    )
