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


def test_a_beating_sweep_is_read_from_its_live_status_and_a_stale_one_from_its_runs(tmp_path):
    """At 100 pairs on a busy server, reading every pair run of a running sweep took 1.7 s; the
    driver's beats carry its live status to the sweep run, which is one download. An earlier
    driver's status is never believed: until this driver has rows the artifact holds none."""
    import datetime as dt

    from mlflow import MlflowClient

    from cryotune.sweep.live_status import write_live_status
    from cryotune.sweep.status import PairStatus
    from cryotune.tracking import names
    from cryotune.tracking.heartbeat import Heartbeat

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(
        "gamma", str(tmp_path / "mlartifacts"), tags={names.TAG_SWEEP: "gamma"}
    )
    level = {names.TAG_SWEEP: "gamma", names.TAG_STATE: "running"}
    tags = {**level, names.TAG_DATASETS: "glid", names.TAG_MODELS: "unet,dofa"}
    sweep_run = client.create_run(experiment, tags={**tags, names.TAG_LEVEL: "sweep"})
    pair_run = client.create_run(
        experiment,
        tags={**level, names.TAG_LEVEL: "pair", names.TAG_PAIR: "glid/unet"},
    ).info.run_id
    client.log_metric(pair_run, "trials_complete", 1)
    now = dt.datetime.now(dt.timezone.utc)
    rows = [
        PairStatus(
            "glid/unet",
            "gamma/glid/unet",
            5,
            3,
            1,
            0,
            1,
            0,
            71.5,
            9.0,
            False,
            2,
            10,
            1e-4,
            6,
            now,
            now,
        ),
        PairStatus("glid/dofa", "gamma/glid/dofa", 5, 0, 0, 0, 0, 0, None, 0.0, False),
    ]
    live_file = tmp_path / "live.json"
    write_live_status(live_file, rows)
    live_file.unlink()  # an earlier driver's, removed as a driver starts
    beat = Heartbeat(
        uri, sweep_run.info.run_id, 60, live_file=live_file, pair_run_ids={"glid/unet": pair_run}
    )
    with beat:
        before = open_query(tracking_uri=uri).sweep("gamma")
        assert [p.key for p in before.pairs] == ["glid/unet"]  # from the pair runs
        assert before.pairs[0].complete == 1

        write_live_status(live_file, rows)
        assert beat.publish() and not beat.publish()  # sent once, then unchanged
        detail = open_query(tracking_uri=uri).sweep("gamma")
        assert detail.state == "running"
        unet, dofa = detail.pairs
        assert (unet.key, unet.state, unet.complete, unet.pruned, unet.running) == (
            "glid/unet",
            "running",
            3,
            1,
            1,
        )
        assert unet.best_config.lr == 1e-4 and unet.best_config.depth == 6
        assert unet.mlflow_pair_run_id == pair_run and unet.budget == 5
        assert (dofa.state, dofa.done, dofa.model, dofa.mlflow_pair_run_id) == (
            "waiting",
            0,
            "dofa",
            None,
        )
        assert detail.trials.complete == 3 and detail.updated_at >= now - dt.timedelta(seconds=1)
        assert [s.trials.running for s in open_query(tracking_uri=uri).sweeps()] == [1]

    client.set_tag(sweep_run.info.run_id, names.TAG_HEARTBEAT, "1000.0")  # its driver died
    stale = open_query(tracking_uri=uri).sweep("gamma")
    assert stale.state == "interrupted" and [p.complete for p in stale.pairs] == [1]
