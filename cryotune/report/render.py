"""The report as text: markdown, LaTeX, CSV and JSON, each rendered from the typed ``Report``.

A complete cell reads ``TUNED / REFERENCE (DIFFERENCE)``, with ``± STD`` after a mean over seed
repeats; a cell without a result names its state. The notes under the table say where each
reference column comes from and why cells are not complete.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from cryotune.report.models import CELL_STATES, SAME_PROTOCOL, Report, ReportAverage, ReportCell

FORMATS = ("md", "latex", "csv", "json")
MEDIA_TYPES = {
    "json": "application/json",
    "md": "text/markdown",
    "csv": "text/csv",
    "latex": "application/x-latex",
}
CSV_COLUMNS = (
    "model",
    "dataset",
    "state",
    "test_miou",
    "test_miou_std",
    "seeds",
    "reference",
    "difference",
    "reference_table",
    "val_miou",
    "lr",
    "depth",
    "sweep",
    "note",
)
"""One CSV line per cell, then one per model with dataset ``average``."""


def render(report: Report, fmt: str) -> str:
    """``report`` in ``fmt`` (one of ``FORMATS``)."""
    renderers: dict[str, Callable[[Report], str]] = {
        "md": markdown,
        "latex": latex,
        "csv": to_csv,
        "json": lambda r: r.model_dump_json(indent=2) + "\n",
    }
    return renderers[fmt](report)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def cell_text(cell: ReportCell, pm: str = "±") -> str:
    """A cell as the tables print it."""
    if cell.state != "complete":
        return cell.state
    tuned = _number(cell.test_miou)
    if cell.seeds is not None and cell.test_miou_std is not None:
        tuned = f"{tuned} {pm} {cell.test_miou_std:.2f}"
    if cell.reference is None:
        return tuned
    return f"{tuned} / {_number(cell.reference)} ({_signed(cell.difference)})"


def average_text(average: ReportAverage) -> str:
    if average.test_miou is None:
        return "-"
    text = _number(average.test_miou)
    if average.reference is not None:
        text += f" / {_number(average.reference)} ({_signed(average.difference)})"
    return text if average.complete else f"{text} [{len(average.datasets)}]"


def notes(report: Report) -> list[str]:
    """What the table's cells mean, where its references come from, and why cells are empty."""
    counts = ", ".join(f"{report.counts[s]} {s}" for s in CELL_STATES if report.counts.get(s))
    lines = [
        f"Cells: tuned / reference (difference); {report.metric}.",
        f"Cells by state: {counts or 'none'}.",
        "avg: the model's mean over the datasets it has a result on, the reference's over the "
        "same datasets; [n] marks an average over n of the columns.",
    ]
    if report.seed_repeats:
        counts_of = sorted({c.seeds.count for r in report.rows for c in r.cells if c.seeds})
        lines.append(
            f"± : sample standard deviation over seed repeats ({report.seed_repeats} cell(s), "
            f"{' or '.join(map(str, counts_of))} seeds each; `cryotune train --seeds`)."
        )
    by_source: dict[str, list[str]] = {}
    for column in report.columns:
        by_source.setdefault(column.reference.source, []).append(column.label)
    for source, labels in by_source.items():
        lines.append(f"Reference of {', '.join(labels)}: {source}.")
    for column in report.columns:
        if column.reference.table and column.reference.protocol != SAME_PROTOCOL:
            lines.append(f"{column.label} reference protocol: {column.reference.protocol}.")
    for row in report.rows:
        for cell in row.cells:
            if cell.note:
                lines.append(f"{row.label} on {cell.dataset} ({cell.state}): {cell.note}.")
    lines += [f"Warning: {w}." for w in report.warnings]
    lines.append(f"cryotune's protocol beside Cryo-Bench's: {report.protocol}.")
    return lines


def markdown(report: Report) -> str:
    header = ["model", *(c.label for c in report.columns), "avg"]
    lines = [
        f"# {report.title}",
        "",
        f"{report.scope}; sweeps: {', '.join(report.sweeps) or 'none'}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|",
    ]
    for row in report.rows:
        cells = [cell_text(c) for c in row.cells]
        lines.append("| " + " | ".join([row.label, *cells, average_text(row.average)]) + " |")
    lines.append("")
    lines += [f"- {_md_escape(line)}" for line in notes(report)]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex(report: Report) -> str:
    """A booktabs table (``\\usepackage{booktabs}``) with the notes as its caption's footnote."""
    spec = "l" + "c" * (len(report.columns) + 1)
    header = ["Model", *(_tex(c.label) for c in report.columns), "Avg."]
    lines = [
        "% " + _tex(report.title),
        "\\begin{table}[t]",
        "\\centering",
        "\\footnotesize",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(header) + " \\\\",
        "\\midrule",
    ]
    for row in report.rows:
        cells = [_tex(cell_text(c, pm="\0")).replace("\0", "$\\pm$") for c in row.cells]
        cells.append(_tex(average_text(row.average)))
        lines.append(" & ".join([_tex(row.label), *cells]) + " \\\\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        f"\\caption{{{_tex(report.title)}. {_tex(notes(report)[0])}}}",
        "\\end{table}",
        "",
    ]
    lines += ["% " + _tex(line) for line in notes(report)[1:]]
    return "\n".join(lines) + "\n"


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    tables = {c.dataset: c.reference.table for c in report.columns}
    for row in report.rows:
        for cell in row.cells:
            writer.writerow(
                [
                    row.model,
                    cell.dataset,
                    cell.state,
                    cell.test_miou,
                    cell.test_miou_std,
                    cell.seeds.count if cell.seeds else None,
                    cell.reference,
                    cell.difference,
                    tables[cell.dataset],
                    cell.val_miou,
                    cell.lr,
                    cell.depth,
                    cell.sweep,
                    cell.note,
                ]
            )
        average = row.average
        writer.writerow(
            [
                row.model,
                "average",
                "complete" if average.complete else "partial",
                average.test_miou,
                None,
                None,
                average.reference,
                average.difference,
                report.reference_table,
                None,
                None,
                None,
                None,
                f"over {', '.join(average.datasets) or 'no dataset'}",
            ]
        )
    return out.getvalue()
