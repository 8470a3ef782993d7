"""The report's formats: each says the same numbers and states, and the markdown and LaTeX say
where the references come from."""

from __future__ import annotations

import csv
import io

import pytest

from cryotune.reference import PAPER_FROZEN_MIOU
from cryotune.report.models import Report
from cryotune.report.render import CSV_COLUMNS, render
from cryotune.report.repeats import read_repeats
from cryotune.report.table import PendingPair, build_report


@pytest.fixture
def report(record, repeats_of, tmp_path) -> Report:
    best = record("a", "glid", "unet", val=92.0, test=92.58)
    repeats_of(tmp_path / "unet", best.config, [92.0, 93.0])
    repeats, _ = read_repeats([tmp_path])
    return build_report(
        [
            best,
            record("a", "sicd", "terramind", val=30.0, test=30.48),
            record("a", "glid", "terramind", errors=("ValueError: band_x missing",)),
        ],
        [PendingPair("sicd", "unet", "running", "sweep a: 1/4 trials done")],
        title="Cryo-Bench results",
        scope="sweep a in workspace w",
        sweeps=["a"],
        repeats=repeats,
    )


def test_markdown_is_the_papers_table_with_tuned_paper_and_difference(report):
    text = render(report, "md")
    lines = text.splitlines()
    assert lines[0] == "# Cryo-Bench results"
    header = next(line for line in lines if line.startswith("| model"))
    assert header == "| model | GLID | SICD | avg |"
    terramind = next(line for line in lines if line.startswith("| TerraMind"))
    paper = PAPER_FROZEN_MIOU["terramind"]["sicd"]
    assert terramind == f"| TerraMind | failed | 30.48 / {paper:.2f} ({30.48 - paper:+.2f}) | " + (
        f"30.48 / {paper:.2f} ({30.48 - paper:+.2f}) [1] |"
    )
    unet = next(line for line in lines if line.startswith("| U-Net"))
    assert unet.startswith("| U-Net | 92.50 ± 0.71 / 91.58 (+0.92) | running |")
    assert "2 seeds each" in text and "band_x missing" in text
    assert "centre crop" in text  # SICD's paper protocol
    assert "docs/protocol.md" in text


def test_csv_has_one_line_per_cell_and_per_average(report):
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    cells = {(r["model"], r["dataset"]): r for r in rows}
    unet = cells[("unet", "glid")]
    assert float(unet["test_miou"]) == pytest.approx(92.5) and unet["seeds"] == "2"
    assert float(unet["reference"]) == PAPER_FROZEN_MIOU["unet"]["glid"]
    assert unet["reference_table"] == "paper"
    assert cells[("unet", "sicd")]["state"] == "running"
    assert cells[("terramind", "glid")]["test_miou"] == ""
    assert cells[("terramind", "average")]["state"] == "partial"
    assert len(rows) == 2 * (2 + 1)


def test_latex_is_a_booktabs_table_with_escaped_text(report):
    text = render(report, "latex")
    assert "\\begin{tabular}{lccc}" in text and "\\toprule" in text and "\\bottomrule" in text
    assert "92.50 $\\pm$ 0.71 / 91.58 (+0.92)" in text
    assert "band\\_x missing" in text and "100\\% labels" in text


def test_json_reads_back_as_the_same_report(report):
    assert Report.model_validate_json(render(report, "json")) == report
