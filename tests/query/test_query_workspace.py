"""The query layer over a workspace: what a real finished sweep (the session's smoke sweep, unet
and ssl4eo_mae on GLID and CaFFe) left on disk, read back."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from cryotune.cli import main
from cryotune.errors import NotFoundError
from cryotune.query.service import PageTokenError, Query, open_query

SWEEP = "smoke-glid-caffe"
PAIRS = ["glid/unet", "glid/ssl4eo_mae", "caffe/unet", "caffe/ssl4eo_mae"]


@pytest.fixture(scope="module")
def finished_workspace(finished_sweep):
    assert finished_sweep.name == SWEEP
    return finished_sweep.parent


@pytest.fixture(scope="module")
def query(finished_workspace) -> Query:
    return open_query(finished_workspace)


@pytest.fixture(scope="module")
def studies(finished_sweep) -> dict[str, optuna.Study]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{finished_sweep / 'optuna.db'}")
    return {
        pair: optuna.load_study(study_name=f"{SWEEP}/{pair}", storage=storage) for pair in PAIRS
    }


@pytest.fixture(scope="module")
def study(studies) -> optuna.Study:
    return studies["glid/unet"]


def test_the_sweep_is_listed_finished_with_its_counts(query, finished_workspace, studies):
    (sweep,) = query.sweeps()
    assert (sweep.name, sweep.state) == (SWEEP, "finished")
    assert sweep.datasets == ["glid", "caffe"] and sweep.models == ["unet", "ssl4eo_mae"]
    trials = [t for s in studies.values() for t in s.get_trials()]
    assert sweep.trials.complete == sum(t.state == TrialState.COMPLETE for t in trials)
    assert sweep.trials.pruned == sum(t.state == TrialState.PRUNED for t in trials)
    assert (sweep.trials.budget, sweep.trials.done, sweep.trials.running) == (16, 16, 0)
    assert sweep.started_at <= min(t.datetime_start.astimezone() for t in trials)
    assert sweep.updated_at >= max(t.datetime_complete.astimezone() for t in trials)
    assert sweep.location == str(finished_workspace / SWEEP)


def test_a_pair_shows_its_best_value_and_config_from_the_study(query, study):
    pairs = query.sweep(SWEEP).pairs
    assert [p.key for p in pairs] == PAIRS
    pair = pairs[0]
    assert (pair.key, pair.state, pair.finished, pair.done) == ("glid/unet", "finished", True, 4)
    assert pair.best_val_miou == pytest.approx(study.best_value)
    assert pair.best_config.lr == pytest.approx(study.best_trial.params["lr"])
    assert pair.best_config.study_trial == study.best_trial.number
    assert pair.study_name == f"{SWEEP}/glid/unet" and pair.elapsed_s > 0


def test_leaderboard_and_best_read_the_record(query, finished_workspace):
    record = json.loads((finished_workspace / SWEEP / "records" / "glid__unet.json").read_text())
    entries = query.leaderboard("glid").entries
    assert sorted(e.model for e in entries) == ["ssl4eo_mae", "unet"]
    (entry,) = [e for e in entries if e.model == "unet"]
    assert (entry.model, entry.sweep) == ("unet", SWEEP)
    assert entry.val_miou == record["best"]["val_miou"]
    assert entry.test_miou == record["best"]["test_metrics"]["miou"]
    assert entry.lr == record["config"]["lr"] and entry.num_blocks == 5
    assert entry.paper_frozen_miou == 91.58
    assert entry.mlflow_run_id == record["ids"]["mlflow_run_id"]
    best = query.best("glid", "unet")
    assert best.repeat_command == record["repeat_command"]
    assert best.model_dump()["seeds"] == record["seeds"]  # the whole record, not a digest


def test_unknown_names_list_what_exists(query):
    with pytest.raises(NotFoundError, match=f"sweeps there: {SWEEP}"):
        query.sweep("nope")
    with pytest.raises(NotFoundError) as dataset:
        query.leaderboard("sicd")
    assert dataset.value.existing == ["caffe", "glid"]
    with pytest.raises(NotFoundError) as model:
        query.best("glid", "dofa")
    assert model.value.existing == ["ssl4eo_mae", "unet"]


def test_status_and_best_commands_print_tables(finished_workspace, capsys):
    assert main(["status", "--workspace", str(finished_workspace)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SWEEP}: finished") and "glid/unet" in out and "4/4" in out
    assert main(["best", "glid", "--workspace", str(finished_workspace), "--json"]) == 0
    records = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(records) == {"unet", "ssl4eo_mae"}
    assert records["unet"]["paper_frozen_miou"] == 91.58
    assert main(["best", "glid", "--model", "vit", "--workspace", str(finished_workspace)]) == 2
    assert "models there: ssl4eo_mae, unet" in capsys.readouterr().err


def test_a_corrupt_record_is_reported_where_its_pair_is_shown(finished_workspace, tmp_path, capsys):
    import shutil

    from cryotune.errors import DataError

    workspace = tmp_path / "runs"
    shutil.copytree(finished_workspace, workspace)
    records = workspace / SWEEP / "records"
    record = records / "glid__unet.json"
    record.write_text(record.read_text()[:40])  # cut short, as a full disk would leave it
    query = open_query(workspace)
    pairs = {p.key: p for p in query.sweep(SWEEP).pairs}
    pair = pairs["glid/unet"]
    assert pair.finished and str(record) in pair.record_error
    assert pairs["glid/ssl4eo_mae"].record_error is None  # only the damaged record is reported
    assert main(["status", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "finished, record unreadable" in out and str(record) in out
    # The other model's result is still shown, with a warning naming the damaged file.
    assert [r.model for r in query.best_records("glid")] == ["ssl4eo_mae"]
    assert main(["best", "glid", "--workspace", str(workspace)]) == 0
    assert str(record) in capsys.readouterr().err
    with pytest.raises(DataError, match=f"{record}: not a best-config record"):
        query.best("glid", "unet")

    other = records / "glid__ssl4eo_mae.json"
    other.write_text("")  # now no glid result can be read
    with pytest.raises(DataError, match=f"{record}: not a best-config record"):
        query.best_records("glid")
    assert main(["best", "glid", "--workspace", str(workspace)]) == 1
    err = capsys.readouterr().err
    assert str(record) in err and str(other) in err


def test_the_sweep_list_pages_by_name(planned_sweeps, tmp_path):
    query = open_query(planned_sweeps(tmp_path / "runs", "c-sweep", "a-sweep", "b-sweep"))
    first = query.sweep_page(limit=2)
    assert [s.name for s in first.sweeps] == ["a-sweep", "b-sweep"]
    second = query.sweep_page(limit=2, page_token=first.next_page_token)
    assert [s.name for s in second.sweeps] == ["c-sweep"] and second.next_page_token is None
    whole = query.sweep_page()
    assert whole.sweeps == query.sweeps() and whole.next_page_token is None
    assert {s.state for s in whole.sweeps} == {"interrupted"}  # planned, no driver, no record
    assert query.sweep_page(state="finished", limit=1).sweeps == []
    with pytest.raises(PageTokenError, match="page_token"):
        query.sweep_page(page_token="%%")


def test_a_running_sweep_is_read_from_its_drivers_live_status_and_a_dead_ones_from_studies(
    finished_sweep, tmp_path
):
    """At 100 pairs reading every unfinished study took a second a read; the live driver's file
    is one read. Only a live driver's file is believed."""
    import dataclasses
    import shutil

    from cryotune.files import file_lock
    from cryotune.sweep.live_status import read_live_status, write_live_status
    from cryotune.sweep.status import summarize_study
    from cryotune.sweep.workspace import SweepWorkspace

    copy = SweepWorkspace.at(tmp_path / "runs", SWEEP)
    copy.dir.mkdir(parents=True)
    for name in ("sweep.json", "optuna.db"):  # the pairs' records not written yet
        shutil.copy(finished_sweep / name, copy.dir / name)
    query = open_query(copy.root)
    from_studies = query.sweep(SWEEP)
    assert from_studies.state == "interrupted" and from_studies.trials.done == 16

    storage = optuna.storages.RDBStorage(copy.optuna_url)
    rows = []
    for pair in PAIRS:
        study = optuna.load_study(study_name=f"{SWEEP}/{pair}", storage=storage)
        rows.append(summarize_study(study, pair, f"{SWEEP}/{pair}", 4, finished=False))
    rows[0] = dataclasses.replace(rows[0], running=1)  # what only the file says
    write_live_status(copy.live_file, rows[:3])  # the last pair not started yet
    assert read_live_status(copy.live_file)["glid/unet"] == rows[0]

    with file_lock(copy.driver_lock_file):
        live = query.sweep(SWEEP)
        assert live.state == "running"
        first, *middle, last = live.pairs
        assert (first.state, first.running) == ("running", 1)
        assert middle == from_studies.pairs[1:3]
        assert (last.state, last.done, last.best_config) == ("waiting", 0, None)
        assert first.best_config == from_studies.pairs[0].best_config

    assert query.sweep(SWEEP) == from_studies  # the driver is gone: the studies again
