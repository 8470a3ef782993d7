"""The query layer over an MLflow store alone: sweeps, pairs, leaderboards and records read back
from runs laid out per the tracking contract."""

from __future__ import annotations

import json

import pytest

from cryotune.cli import main
from cryotune.errors import NotFoundError, UsageError
from cryotune.query.mlflow_store import MlflowSource
from cryotune.query.service import PageTokenError, Query, open_query


@pytest.fixture(scope="module")
def query(contract_store) -> Query:
    return open_query(tracking_uri=contract_store.uri)


def test_sweeps_list_state_datasets_models_and_counts(query):
    sweeps = {s.name: s for s in query.sweeps()}
    assert set(sweeps) == {"alpha", "beta"}
    alpha, beta = sweeps["alpha"], sweeps["beta"]
    assert (alpha.state, beta.state) == ("finished", "running")
    assert alpha.datasets == ["glid"] and alpha.models == ["dofa", "unet"]
    assert beta.datasets == ["caffe", "glid"] and beta.models == ["unet"]
    counts = alpha.trials.model_dump()
    assert counts == {"budget": 6, "complete": 3, "pruned": 1, "failed": 1, "running": 0, "done": 5}
    assert (beta.trials.complete, beta.trials.running, beta.trials.done) == (3, 1, 3)
    for sweep in sweeps.values():
        assert sweep.started_at.tzinfo is not None and sweep.started_at <= sweep.updated_at
    assert [s.name for s in query.sweeps("running")] == ["beta"]


def test_the_sweep_list_pages_by_name(query):
    first = query.sweep_page(limit=1)
    assert [s.name for s in first.sweeps] == ["alpha"] and first.next_page_token
    second = query.sweep_page(limit=1, page_token=first.next_page_token)
    assert [s.name for s in second.sweeps] == ["beta"] and second.next_page_token is None
    assert query.sweep_page().sweeps == query.sweeps()  # a small store: one page, as before
    running = query.sweep_page(state="running", limit=1)
    assert [s.name for s in running.sweeps] == ["beta"] and running.next_page_token is None
    with pytest.raises(PageTokenError, match="page_token"):
        query.sweep_page(page_token="not base64!")


def test_a_running_sweep_shows_each_pairs_progress_and_best_so_far(query, contract_store):
    beta = query.sweep("beta")
    pairs = {p.key: p for p in beta.pairs}
    assert list(pairs) == ["glid/unet", "caffe/unet"]  # the plan's order
    caffe = pairs["caffe/unet"]
    assert (caffe.state, caffe.finished, caffe.running, caffe.complete) == ("running", False, 1, 1)
    assert caffe.best_val_miou == 55.0
    assert caffe.best_config.lr == pytest.approx(1e-4) and caffe.best_config.study_trial == 0
    assert caffe.mlflow_pair_run_id == contract_store.pair_runs[("beta", "caffe/unet")]
    assert pairs["glid/unet"].state == "finished" and pairs["glid/unet"].best_val_miou == 90.5


def test_the_leaderboard_takes_each_models_best_over_sweeps(query, contract_store):
    board = query.leaderboard("glid")
    assert [(e.model, e.sweep, e.val_miou) for e in board.entries] == [
        ("unet", "beta", 90.5),
        ("dofa", "alpha", 88.0),
    ]
    unet, dofa = board.entries
    assert unet.test_miou == 89.0 and unet.lr == pytest.approx(7e-4) and unet.depth == 2
    assert (unet.paper_frozen_miou, dofa.paper_frozen_miou) == (91.58, 92.61)
    # alpha's record names its best trial's run; beta's is found from the study trial number.
    assert dofa.mlflow_run_id == contract_store.trial_runs[("alpha", "glid/dofa", 0)]
    assert unet.mlflow_run_id == contract_store.trial_runs[("beta", "glid/unet", 0)]
    assert "Cryo-Bench" in board.paper_reference


def test_best_returns_the_full_record_with_its_repeat_command(query, contract_store):
    record = query.best("glid", "dofa")
    assert record.sweep == "alpha" and record.test_miou == 86.5
    assert record.repeat_command.startswith("cryotune train glid dofa --lr 0.0002 --depth 2")
    assert record.ids.mlflow_pair_run_id == contract_store.pair_runs[("alpha", "glid/dofa")]
    assert record.model_dump()["tracking_uri"] == "set by the fixture"  # kept, not dropped


def test_unknown_names_list_what_exists(query):
    with pytest.raises(NotFoundError) as sweep:
        query.sweep("gamma")
    assert sweep.value.existing == ["alpha", "beta"]
    with pytest.raises(NotFoundError) as dataset:
        query.leaderboard("caffe")  # caffe/unet has not finished: no record yet
    assert dataset.value.existing == ["glid"]
    with pytest.raises(NotFoundError) as model:
        query.best("glid", "vit")
    assert model.value.existing == ["dofa", "unet"] and "vit" in str(model.value)


def test_a_sqlite_uri_naming_no_file_is_refused_rather_than_created(tmp_path):
    with pytest.raises(UsageError, match="no such MLflow store"):
        MlflowSource(f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()


def test_status_and_best_commands_read_the_store(contract_store, capsys):
    assert main(["status", "--tracking-uri", contract_store.uri, "--json"]) == 0
    statuses = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert statuses["beta"]["pairs"][1]["running"] == 1
    assert main(["status", "beta", "--tracking-uri", contract_store.uri]) == 0
    out = capsys.readouterr().out
    assert out.startswith("beta: running") and "caffe/unet" in out and "1/3" in out
    assert main(["best", "glid", "--tracking-uri", contract_store.uri]) == 0
    out = capsys.readouterr().out
    assert "90.50" in out and "best: cryotune train glid unet --lr 0.0007" in out
