"""The driver's heartbeat: a sweep whose driver died reads as interrupted over MLflow alone."""

from __future__ import annotations

import signal
import time

import pytest
from mlflow import MlflowClient

from cryotune.errors import UsageError
from cryotune.query.service import open_query
from cryotune.tracking import names
from cryotune.tracking.heartbeat import (
    DEFAULT_INTERVAL_S,
    HEARTBEAT_ENV,
    STALE_BEATS,
    Heartbeat,
    interval_s,
    is_stale,
)


def test_a_beat_lands_on_the_run_with_its_interval(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("beats")).info.run_id
    before = time.time()
    with Heartbeat(uri, run, interval=60):
        tags = client.get_run(run).data.tags
    assert before - 0.001 <= float(tags[names.TAG_HEARTBEAT]) <= time.time() + 0.001  # ms
    assert tags[names.TAG_HEARTBEAT_S] == "60"
    assert not is_stale(tags)


def test_a_run_reads_stale_only_after_several_missed_beats():
    tags = {names.TAG_HEARTBEAT: "1000.0", names.TAG_HEARTBEAT_S: "10"}
    assert not is_stale(tags, now=1000.0 + STALE_BEATS * 10)
    assert is_stale(tags, now=1000.0 + STALE_BEATS * 10 + 1)
    assert not is_stale({}, now=1e12)  # written before beats existed: nothing to age
    assert not is_stale({names.TAG_HEARTBEAT: "garbled"}, now=1e12)
    no_interval = {names.TAG_HEARTBEAT: "1000.0"}
    assert is_stale(no_interval, now=1000.0 + STALE_BEATS * DEFAULT_INTERVAL_S + 1)


def test_a_beat_the_store_refuses_is_skipped_not_raised(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("beats")
    assert Heartbeat(uri, "no-such-run", interval=60).beat() is False


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_an_unusable_interval_is_refused_naming_the_variable(value):
    with pytest.raises(UsageError, match=HEARTBEAT_ENV):
        interval_s({HEARTBEAT_ENV: value})
    assert interval_s({}) == DEFAULT_INTERVAL_S and interval_s({HEARTBEAT_ENV: "2.5"}) == 2.5


def test_a_sigkilled_drivers_sweep_reads_interrupted_from_mlflow_alone(
    cryotune_background, data_root, tmp_path
):
    workspace = tmp_path / "runs"
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--models", "unet"]
    args += ["--trials", "8", "--max-concurrent", "1", "--name", "beating"]
    args += ["--data-root", str(data_root), "--workspace", str(workspace)]
    driver = cryotune_background(*args, log="sweep.log", **{HEARTBEAT_ENV: "1"})
    store = workspace / "mlflow.db"

    created = workspace / "beating" / "mlflow" / "sweep" / "mlflow-run-id"

    def state() -> str | None:
        if not created.exists():
            return None
        return open_query(tracking_uri=f"sqlite:///{store}").sweep("beating").state

    deadline = time.monotonic() + 240
    while state() != "running" or not _runs(store, "trial"):
        assert driver.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the sweep never read running"
        time.sleep(0.5)

    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 60
    while state() != "interrupted":
        assert time.monotonic() < deadline, f"still reads {state()} after the driver died"
        time.sleep(0.5)
    detail = open_query(tracking_uri=f"sqlite:///{store}").sweep("beating")
    assert all(pair.state != "running" for pair in detail.pairs)
    (sweep_run,) = _runs(store, "sweep")
    assert sweep_run.data.tags[names.TAG_STATE] == "running"  # only its beat aged


def _runs(store, level: str) -> list:
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("beating")
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{names.TAG_LEVEL}` = '{level}'"
    )
