"""The report over real sources: a finished sweep's workspace (with seed repeats made by the real
`cryotune train --seeds`) and an MLflow store holding a finished and a running sweep."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from cryotune.documents.record import PairRecord
from cryotune.query.service import open_query
from cryotune.reference import PAPER_FROZEN_MIOU

SWEEP = (
    "smoke-glid-caffe"  # the shared smoke sweep (tests/conftest.py): glid, caffe x unet, ssl4eo_mae
)


def test_a_finished_sweep_reports_its_record_beside_the_paper(finished_sweep):
    record = PairRecord.read(finished_sweep / "records" / "glid__unet.json")
    report = open_query(finished_sweep.parent).report(SWEEP)
    row = next(r for r in report.rows if r.model == "unet")
    cell = report.cell("glid", "unet")
    assert (row.label, cell.state, cell.sweep) == ("U-Net", "complete", SWEEP)
    assert cell.test_miou == pytest.approx(record.test_miou)
    assert cell.val_miou == pytest.approx(record.val_miou)
    assert cell.reference == PAPER_FROZEN_MIOU["unet"]["glid"]
    assert cell.seeds is None and report.counts["complete"] == 4


def test_seed_repeats_of_the_best_config_show_as_mean_and_std(finished_sweep, cryotune, tmp_path):
    workspace = tmp_path / "runs"
    shutil.copytree(finished_sweep.parent, workspace)
    record = PairRecord.read(workspace / SWEEP / "records" / "glid__unet.json")
    repeat = shlex.split(record.repeat_command)[1:]  # `cryotune train ...` without the program
    out = workspace / "repeats" / "glid-unet"
    done = cryotune(*repeat, "--seeds", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())

    shown = cryotune("report", SWEEP, "--workspace", str(workspace), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    row = next(r for r in answer["rows"] if r["model"] == "unet")
    column = [c["dataset"] for c in answer["columns"]].index("glid")
    cell = row["cells"][column]
    assert cell["seeds"]["count"] == 2 and cell["seeds"]["seeds"] == [234, 235]
    assert cell["test_miou"] == pytest.approx(summary["test_miou_mean"])
    assert cell["test_miou_std"] == pytest.approx(summary["test_miou_std"])
    table = cryotune("report", "--workspace", str(workspace))
    assert "2 seeds each" in table.stdout and " ± " in table.stdout


@pytest.fixture(scope="module")
def store_query(contract_store):
    return open_query(tracking_uri=contract_store.uri)


def test_over_every_sweep_each_pair_shows_its_best_and_running_pairs_say_so(store_query):
    report = store_query.report()
    assert report.sweeps == ["alpha", "beta"]
    unet = report.cell("glid", "unet")
    assert (unet.sweep, unet.val_miou, unet.test_miou) == ("beta", 90.5, 89.0)
    assert report.cell("glid", "dofa").test_miou == 86.5
    running = report.cell("caffe", "unet")
    assert running.state == "running" and "sweep beta: 1/3 trials done" in running.note
    assert report.cell("caffe", "dofa").state == "missing"
    assert report.cell("caffe", "unet").reference == PAPER_FROZEN_MIOU["unet"]["caffe"]


def test_one_sweeps_report_holds_only_its_records(store_query):
    alpha = store_query.report("alpha")
    assert alpha.sweeps == ["alpha"] and [c.dataset for c in alpha.columns] == ["glid"]
    assert alpha.cell("glid", "unet").sweep == "alpha"
    assert alpha.cell("glid", "unet").test_miou == 83.0
