"""The results table in docs/benchmarks.md, rebuilt from bench/results/*.json between markers.

Each benchmark module presents its own result through ``row(result) -> Row``; a benchmark with
no result file yet is listed as not run.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from bench.output import RESULTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:table:begin (written by `python -m bench`; edits here are overwritten) -->"
END = "<!-- bench:table:end -->"
TABLED = (
    "time_to_quality_depth",
    "time_to_quality",
    "overhead",
    "data_path",
    "concurrent_pairs",
    "scale",
    "gpu_trainer",
)
HEADERS = ("benchmark", "compared", "figures (same run)", "target", "verdict", "spread", "machine")


@dataclass(frozen=True)
class Row:
    compared: str
    figures: str
    target: str
    met: bool | None
    spread: str


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not run"}[met]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: Path = RESULTS) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    for name in TABLED:
        path = results / f"{name}.json"
        if not path.exists():
            cells = (f"`{name}`", "-", "-", "-", verdict(None), "-", "-")
        else:
            result = json.loads(path.read_text())
            row = importlib.import_module(f"bench.{name}").row(result)
            cells = (
                f"[`{name}`](../bench/results/{name}.json)",
                row.compared,
                row.figures,
                row.target,
                verdict(row.met),
                row.spread,
                result.get("machine", "-"),
            )
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines)


def update_table(doc: Path = DOC, results: Path = RESULTS) -> Path:
    """Replace the text between the markers of ``doc`` with the current table."""
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc}: the table markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{render(results)}\n{END}{tail}")
    return doc
