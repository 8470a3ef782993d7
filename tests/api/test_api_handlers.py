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
