"""The report table from records: each pair's best by validation, the reference beside it, cell
states, averages over like datasets, the reference's provenance, and seed repeats."""

from __future__ import annotations

import statistics

import pytest

from cryotune.query.models import PairSummary, SweepDetail, TrialCounts
from cryotune.reference import PAPER_FROZEN_MIOU, later_frozen_miou
from cryotune.report.repeats import read_repeats
from cryotune.report.table import PendingPair, build_report, pending_pairs


def _report(records, pending=(), **options):
    return build_report(records, pending, title="t", scope="s", sweeps=["a", "b"], **options)


def test_a_cell_shows_the_best_validation_configs_test_miou_beside_the_paper(record):
    records = [
        record("a", "glid", "dofa", val=90.0, test=93.5, lr=1e-3),
        record("b", "glid", "dofa", val=91.0, test=92.0, lr=3e-4),  # best by validation
    ]
    cell = _report(records).cell("glid", "dofa")
    paper = PAPER_FROZEN_MIOU["dofa"]["glid"]
    assert cell.state == "complete" and cell.sweep == "b"
    assert (cell.test_miou, cell.val_miou, cell.lr) == (92.0, 91.0, 3e-4)
    assert cell.reference == paper and cell.difference == pytest.approx(92.0 - paper)


def test_columns_and_rows_follow_the_papers_order(record):
    records = [
        record("a", d, m, val=50.0, test=50.0)
        for d, m in [("gsdd", "unet"), ("glid", "vit"), ("caffe", "croma"), ("glb", "unet")]
    ]
    report = _report(records)
    assert [c.dataset for c in report.columns] == ["glid", "caffe", "gsdd", "glb"]
    assert [c.label for c in report.columns] == ["GLID", "CaFFe", "GSDD", "GLB"]
    assert [r.model for r in report.rows] == ["croma", "unet", "vit"]
    assert [r.label for r in report.rows] == ["CROMA", "U-Net", "ViT"]
    explicit = _report(records, datasets=["sicd", "glid"], models=["unet"])
    assert [c.dataset for c in explicit.columns] == ["sicd", "glid"]
    assert explicit.cell("sicd", "unet").state == "missing"


def test_cells_without_a_result_say_whether_they_run_failed_or_were_never_run(record):
    from cryotune.documents.record import UnreadableRecord

    error = "Traceback (most recent call last):\n  ...\nUsageError: --crop-size 32: too small"
    records = [
        record("a", "glid", "unet", val=80.0, test=79.0),
        record("a", "glid", "dofa", errors=(error,)),
        UnreadableRecord(dataset="glid", model="croma", error="glid__croma.json: invalid JSON"),
        record("a", "caffe", "dofa", errors=("RuntimeError: out of memory",)),
    ]
    pending = [
        PendingPair("caffe", "unet", "running", "sweep b: 2/4 trials done"),
        PendingPair("caffe", "dofa", "running", "sweep b: 1/4 trials done"),
        PendingPair("caffe", "croma", "missing", "sweep c interrupted at 0/4 trials done"),
        PendingPair("glid", "unet", "running", "sweep b: 0/4 trials done"),
    ]
    report = _report(records, pending)
    failed = report.cell("glid", "dofa")
    assert failed.state == "failed" and "--crop-size 32: too small" in failed.note
    assert failed.test_miou is None and failed.reference == PAPER_FROZEN_MIOU["dofa"]["glid"]
    assert report.cell("glid", "croma").state == "unreadable"
    assert "invalid JSON" in report.cell("glid", "croma").note
    assert report.cell("caffe", "unet").state == "running"
    rerun = report.cell("caffe", "dofa")  # failed once, running again elsewhere
    assert rerun.state == "running" and "out of memory" in rerun.note
    assert report.cell("caffe", "croma").state == "missing"
    assert "interrupted" in report.cell("caffe", "croma").note
    done = report.cell("glid", "unet")  # a result stays shown while another sweep reruns it
    assert done.state == "complete" and "sweep b" in done.note
    assert report.counts == {
        "complete": 1,
        "running": 2,
        "failed": 1,
        "unreadable": 1,
        "missing": 1,
    }


def test_pending_pairs_come_from_the_sweeps_states():
    def pair(dataset, model, finished, done):
        return PairSummary(
            key=f"{dataset}/{model}",
            dataset=dataset,
            model=model,
            study_name="s",
            state="finished" if finished else "running",
            finished=finished,
            budget=4,
            done=done,
            best_val_miou=None,
            best_config=None,
            elapsed_s=1.0,
        )

    def sweep(name, state, pairs):
        return SweepDetail(
            name=name,
            state=state,
            datasets=[],
            models=[],
            trials=TrialCounts(),
            started_at=None,
            updated_at=None,
            location="x",
            pairs=pairs,
        )

    found = pending_pairs(
        [
            sweep(
                "live", "running", [pair("glid", "unet", False, 2), pair("glid", "vit", True, 4)]
            ),
            sweep("stopped", "interrupted", [pair("caffe", "unet", False, 1)]),
        ]
    )
    assert [(p.dataset, p.model, p.state) for p in found] == [
        ("glid", "unet", "running"),
        ("caffe", "unet", "missing"),
    ]
    assert "2/4 trials" in found[0].note and "--resume" in found[1].note


def test_the_average_covers_the_datasets_with_a_result_and_the_paper_the_same_ones(record):
    records = [
        record("a", "glid", "dofa", val=90.0, test=94.0),
        record("a", "gsdd", "dofa", val=70.0, test=70.0),
        record("a", "caffe", "unet", val=60.0, test=61.0),
    ]
    report = _report(records)
    dofa = next(r for r in report.rows if r.model == "dofa").average
    paper = PAPER_FROZEN_MIOU["dofa"]
    assert dofa.datasets == ["glid", "gsdd"] and not dofa.complete
    assert dofa.test_miou == pytest.approx(82.0)
    assert dofa.reference == pytest.approx(statistics.fmean([paper["glid"], paper["gsdd"]]))
    assert dofa.difference == pytest.approx(dofa.test_miou - dofa.reference)
    assert report.cell("caffe", "dofa").state == "missing"


def test_each_reference_column_says_which_table_and_protocol_it_comes_from(record):
    records = [record("a", d, "unet", val=50.0, test=50.0) for d in ("glid", "sicd", "glb")]
    report = _report(records)
    columns = {c.dataset: c.reference for c in report.columns}
    assert columns["glid"].table == "paper" and "41b6115" in columns["glid"].source
    assert columns["sicd"].table == "paper" and "centre crop" in columns["sicd"].protocol
    assert columns["glb"].table == "later"  # the paper has no GLB column
    assert report.cell("glb", "unet").reference == later_frozen_miou("glb", "unet")
    later = _report(records, reference="later")
    assert {c.dataset: c.reference.table for c in later.columns}["sicd"] == "later"
    assert later.cell("sicd", "unet").reference == later_frozen_miou("sicd", "unet")
    assert "whole" in {c.dataset: c.reference for c in later.columns}["sicd"].source


def test_seed_repeats_of_the_best_config_give_mean_and_std(record, repeats_of, tmp_path):
    best = record("a", "glid", "unet", val=80.0, test=79.0, lr=2e-3, data_root="/here")
    moved = best.config.model_copy(update={"data_root": "/elsewhere", "device": "cpu"})
    repeats_of(tmp_path / "repeats" / "unet", moved, [78.0, 80.0, 82.0])
    other = best.config.model_copy(update={"lr": 1e-4})
    repeats_of(tmp_path / "repeats" / "unet-other-lr", other, [10.0, 12.0])
    repeats, problems = read_repeats([tmp_path / "repeats", tmp_path / "absent"])
    assert problems == [] and len(repeats) == 2
    report = _report([best], repeats=repeats)
    cell = report.cell("glid", "unet")
    assert cell.test_miou == pytest.approx(80.0) and cell.test_miou_std == pytest.approx(2.0)
    assert cell.seeds.count == 3 and cell.seeds.seeds == [234, 235, 236]
    assert cell.difference == pytest.approx(80.0 - PAPER_FROZEN_MIOU["unet"]["glid"])
    assert report.seed_repeats == 1
    (warning,) = report.warnings
    assert "unet-other-lr" in warning and "lr 0.002 -> 0.0001" in warning


def test_an_unreadable_repeats_summary_is_named(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "summary.json").write_text("{not json")
    repeats, problems = read_repeats([tmp_path])
    assert repeats == [] and "x/summary.json" in problems[0]
