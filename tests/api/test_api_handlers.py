"""The API's handlers and `cryotune best` in-process, over a workspace written by the sweep's
own record writer (``PairRecorder``): the fast tier's check that every reader of a workspace
gives one answer. The served API over HTTP is tested in test_api_app.py."""

from __future__ import annotations

import json

import optuna
import pytest
from fastapi.testclient import TestClient

from cryotune.api.app import create_app
from cryotune.cli import main
from cryotune.data.synth import write_synthetic
from cryotune.documents.record import PairRecord
from cryotune.query.service import open_query
from cryotune.sweep.keys import RESULT, TUNE_TRIAL_ID
from cryotune.sweep.plan import plan_sweep
from cryotune.sweep.records import PairRecorder
from cryotune.sweep.spec import load_spec
from cryotune.sweep.workspace import SweepWorkspace

SCORES = {"unet": [(1e-3, 61.0), (3e-4, 64.5)], "ssl4eo_mae": [(1e-4, 58.0)]}


def _result(config: dict, val: float) -> dict:
    return {
        "config": config,
        "history": [],
        "best_epoch": 2,
        "best_val_miou": val,
        "best_val_metrics": {"miou": val, "iou": [val - 2, val + 2]},
        "test_metrics": {"miou": val - 1},
        "info": {"weights_sha256": None, "data_root": "data/glid"},
        "seconds": 1.5,
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> SweepWorkspace:
    """Sweep 'unit' of unet and ssl4eo_mae on GLID, its studies told by hand and its records
    written by PairRecorder, as the driver does when a pair ends."""
    base = tmp_path_factory.mktemp("handlers")
    write_synthetic("glid", base / "data" / "glid", tiles=4, size=48, seed=0)
    spec = load_spec("sweeps/smoke.yaml")
    workspace = SweepWorkspace.at(base / "runs", "unit")
    plan = plan_sweep(
        spec,
        "unit",
        ["glid"],
        models=list(SCORES),
        data_root=[str(base / "data")],
        weights="random",
        cache_dir=str(workspace.cache_dir),
    )
    workspace.create(plan.document())
    recorder = PairRecorder(workspace, workspace.optuna_url, 0, "all", None, "test")
    lr = optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)
    for pair in plan.pairs:
        study = optuna.create_study(
            storage=workspace.optuna_url, study_name=pair.study_name, direction="maximize"
        )
        for number, (value, score) in enumerate(SCORES[pair.model]):
            trial = study.ask({"lr": lr})
            config = pair.trial_config({"lr": value}).model_dump(mode="json")
            trial.set_user_attr(RESULT, _result(config, score))
            trial.set_user_attr(TUNE_TRIAL_ID, f"{pair.model}-{number}")
            study.tell(trial, score)
        recorder.finish(pair, study, seconds=3.0)
    return workspace


@pytest.fixture(scope="module")
def client(workspace) -> TestClient:
    return TestClient(create_app(open_query(workspace.root)))


def test_the_writer_and_every_reader_agree(workspace, client, capsys):
    written = {
        path.stem.split("__")[1]: PairRecord.read(path)
        for path in workspace.records_dir.glob("glid__*.json")
    }
    assert main(["best", "glid", "--json", "--workspace", str(workspace.root)]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    board = client.get("/best/glid").json()
    assert [r["model"] for r in from_cli] == [e["model"] for e in board["entries"]]
    assert [e["model"] for e in board["entries"]] == ["unet", "ssl4eo_mae"]
    for record in from_cli:
        served = client.get(f"/best/glid/{record['model']}").json()
        assert served == record
        ours = written[record["model"]].to_dict()
        assert {k: v for k, v in served.items() if k in ours} == ours
    unet = board["entries"][0]
    assert unet["val_miou"] == 64.5 and unet["lr"] == 3e-4
    assert unet["trials"]["complete"] == 2


def test_a_sweep_shows_each_pair_finished_with_its_best(client):
    detail = client.get("/sweeps/unit").json()
    assert detail["state"] == "finished"
    pairs = {p["key"]: p for p in detail["pairs"]}
    assert pairs["glid/unet"]["best_val_miou"] == 64.5
    assert pairs["glid/unet"]["best_config"]["lr"] == 3e-4
    assert pairs["glid/ssl4eo_mae"]["complete"] == 1


def test_a_damaged_record_is_named_where_its_pair_is_shown(workspace, client, tmp_path):
    path = workspace.record_path("glid", "ssl4eo_mae")
    kept = path.read_text()
    try:
        path.write_text('{"schema": 1, "dataset": "glid"')
        board = client.get("/best/glid").json()
        assert [e["model"] for e in board["entries"]] == ["unet"]
        (problem,) = board["unreadable_records"]
        assert str(path) in problem and "invalid JSON" in problem
        answer = client.get("/best/glid/ssl4eo_mae")
        assert answer.status_code != 200 and str(path) in answer.text
        pair = next(p for p in client.get("/sweeps/unit").json()["pairs"] if "mae" in p["key"])
        assert str(path) in pair["record_error"]
    finally:
        path.write_text(kept)


def test_a_record_of_a_newer_schema_is_refused_by_name(workspace, client):
    path = workspace.record_path("glid", "ssl4eo_mae")
    kept = path.read_text()
    try:
        path.write_text(json.dumps({**json.loads(kept), "schema": 99}))
        (problem,) = client.get("/best/glid").json()["unreadable_records"]
        assert "schema 99 is newer than this cryotune reads" in problem
    finally:
        path.write_text(kept)


def test_the_report_is_one_table_from_the_api_and_the_cli(workspace, client, capsys, tmp_path):
    from cryotune.reference import PAPER_FROZEN_MIOU

    report = client.get("/report/unit").json()
    cells = {(c["dataset"], c["model"]): c for row in report["rows"] for c in row["cells"]}
    unet = cells[("glid", "unet")]
    assert unet["state"] == "complete" and unet["sweep"] == "unit"
    assert (unet["val_miou"], unet["test_miou"], unet["lr"]) == (64.5, 63.5, 3e-4)
    assert unet["reference"] == PAPER_FROZEN_MIOU["unet"]["glid"]
    assert cells[("glid", "ssl4eo_mae")]["test_miou"] == 57.0
    assert [c["dataset"] for c in report["columns"]] == ["glid"]
    assert report["columns"][0]["reference"]["table"] == "paper"

    served = client.get("/report/unit", params={"format": "md"})
    assert served.headers["content-type"].startswith("text/markdown")
    plot = tmp_path / "report.png"
    args = ["report", "unit", "--workspace", str(workspace.root), "--plot", str(plot)]
    assert main(args) == 0
    assert capsys.readouterr().out == served.text
    assert "| U-Net | 63.50 / 91.58 (-28.08) |" in served.text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/report/nope").status_code == 404
    assert main(["report", "--workspace", str(workspace.root), "--models", "nope"]) == 2
    assert "unknown model 'nope'; valid:" in capsys.readouterr().err
    absent = str(tmp_path / "absent")
    assert main(["report", "--workspace", str(workspace.root), "--repeats", absent]) == 2
    assert f"--repeats {absent}: no such folder" in capsys.readouterr().err


def test_best_exports_a_config_to_cryobench_and_says_what_terratorch_lacks(workspace, capsys):
    root = str(workspace.root)
    assert main(["best", "glid", "unet", "--as", "cryobench", "--workspace", root, "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["argv"][:4] == ["torchrun", "--nnodes=1", "--nproc_per_node=1", "pangaea/run.py"]
    for part in ("dataset=glid", "encoder=unet_encoder", "decoder=seg_unet", "finetune=True"):
        assert part in run["overrides"]
    assert "optimizer.lr=0.0003" in run["overrides"]
    assert main(["best", "glid", "ssl4eo_mae", "--as", "cryobench", "--workspace", root]) == 0
    text = capsys.readouterr().out
    assert "encoder=ssl4eo_mae_optical" in text and "finetune=False" in text
    assert main(["best", "glid", "unet", "--as", "terratorch", "--workspace", root]) == 1
    assert "TerraTorch ships no backbone for model 'unet'" in capsys.readouterr().err
    assert main(["best", "glid", "--as", "cryobench", "--workspace", root]) == 2
    assert "models with results on glid: unet, ssl4eo_mae" in capsys.readouterr().err
