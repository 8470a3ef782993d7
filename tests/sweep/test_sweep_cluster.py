"""`cryotune sweep --address` on a multi-node Ray cluster that loses a node mid-trial.

The cluster is ``ray.cluster_utils.Cluster`` on this machine: a head without CPUs (it runs the
driver's Tune loop only) and two worker nodes of one CPU each, so trials spread over both. Once a
trial on one worker has checkpointed an epoch, that node is removed; the trial must resume from
its checkpoint on the other node, and the sweep must end with every trial and record intact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from cryotune.tracking.names import (
    LEVEL_TRIAL,
    STATUS_COMPLETE,
    TAG_LEVEL,
    TAG_STATUS,
    TAG_TRIAL_ID,
)

NAME = "cluster"
EPOCHS = 5
BUDGET = 1
PAIRS = ("glid", "caffe")
SPEC = {
    "name": "cluster-test",
    "models": ["unet"],
    "space": {"lr": {"low": 1e-4, "high": 3e-3}},
    "scheduler": {"kind": "none", "max_epochs": EPOCHS},
    "budget": {"trials": BUDGET, "retries": 1},
    "resources": {"cpu": 1},
    "trial": {
        "weights": "random",
        "batch_size": 4,
        "crop_size": 32,
        "max_steps_per_epoch": 2,
        "val_every": 1,
    },
}
OBJECT_STORE_BYTES = 80 * 1024**2


@pytest.fixture
def cluster() -> Iterator:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": OBJECT_STORE_BYTES,
            "include_dashboard": False,
        },
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def _epochs(trial_dir: Path) -> list[dict]:
    log = trial_dir / "epochs.jsonl"
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


def _running_on(trials_dir: Path, node_id: str) -> Path | None:
    """A trial folder whose latest epoch ran on ``node_id`` and that has not finished."""
    if not trials_dir.exists():
        return None
    for trial_dir in trials_dir.iterdir():
        epochs = _epochs(trial_dir)
        if (
            epochs
            and epochs[-1]["node"] == node_id
            and epochs[-1]["epoch"] < EPOCHS - 1
            and (trial_dir / "last.pt").exists()
        ):
            return trial_dir
    return None


def test_a_lost_node_s_trials_resume_on_another_and_the_sweep_loses_nothing(
    cluster, cryotune_background, data_root, tmp_path
):
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    workspace = tmp_path / "runs"
    sweep_dir = workspace / NAME
    trials_dir = sweep_dir / "trials"
    log = tmp_path / "driver.log"
    driver = cryotune_background(
        "sweep", *PAIRS, "--config", str(spec), "--name", NAME, "--address", cluster.address,
        "--data-root", str(data_root), "--workspace", str(workspace), log=log,
    )  # fmt: skip

    workers = {node.node_id: node for node in cluster.worker_nodes}
    deadline = time.monotonic() + 120
    lost = None
    while lost is None and time.monotonic() < deadline and driver.poll() is None:
        lost = next(
            (
                (node_id, trial_dir)
                for node_id in workers
                if (trial_dir := _running_on(trials_dir, node_id)) is not None
            ),
            None,
        )
        time.sleep(0.1)
    assert lost is not None, log.read_text()[-3000:]
    lost_node, interrupted_dir = lost
    cluster.remove_node(workers[lost_node], allow_graceful=False)
    epochs_before = _epochs(interrupted_dir)

    assert driver.wait(timeout=180) == 0, log.read_text()[-3000:]

    # Trials ran on both workers; the interrupted one continued on the surviving node from its
    # last checkpoint: no epoch trained twice, none restarted from 1, all epochs reached.
    nodes = {e["node"] for d in trials_dir.iterdir() for e in _epochs(d)}
    assert nodes == set(workers)
    epochs = _epochs(interrupted_dir)
    assert epochs[: len(epochs_before)] == epochs_before
    on_lost = [e["node"] == lost_node for e in epochs]
    resumed_at = on_lost.index(False)
    assert resumed_at >= len(epochs_before) and not any(on_lost[resumed_at:]), epochs
    numbers = [e["epoch"] for e in epochs]
    assert numbers == sorted(set(numbers)) and numbers[-1] == EPOCHS, numbers

    # Tune saw the node loss as a failure of that trial and recovered it.
    state_file = sorted((sweep_dir / "tune").glob("experiment_state-*.json"))[-1]
    tune_trials = {
        json.loads(t[0])["trial_id"]: (json.loads(t[0]), json.loads(t[1]))
        for t in json.loads(state_file.read_text())["trial_data"]
    }
    assert {t["status"] for t, _ in tune_trials.values()} == {"TERMINATED"}
    assert tune_trials[interrupted_dir.name][1]["num_failures"] >= 1

    # Every study trial complete, every pair recorded, every trial's MLflow run whole.
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    tune_ids = set()
    for pair in PAIRS:
        study = optuna.load_study(study_name=f"{NAME}/{pair}/unet", storage=storage)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * BUDGET, pair
        for trial in study.trials:
            trial_id = trial.user_attrs["tune_trial_id"]
            tune_ids.add(trial_id)
            ran = [e["epoch"] for e in _epochs(trials_dir / trial_id)]
            assert sorted(trial.intermediate_values) == ran, trial_id
        record = json.loads((sweep_dir / "records" / f"{pair}__unet.json").read_text())
        assert record["status"] == "complete" and record["trials"]["total"] == BUDGET
    assert tune_ids == set(tune_trials) == {d.name for d in trials_dir.iterdir()}

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(NAME)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_LEVEL}` = '{LEVEL_TRIAL}'"
    )
    by_trial = {run.data.tags[TAG_TRIAL_ID]: run for run in runs}
    assert set(by_trial) == tune_ids and len(runs) == len(tune_ids)
    for trial_id, run in by_trial.items():
        assert run.info.status == "FINISHED" and run.data.tags[TAG_STATUS] == STATUS_COMPLETE
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")]
        assert sorted(set(steps)) == [e["epoch"] for e in _epochs(trials_dir / trial_id)]
