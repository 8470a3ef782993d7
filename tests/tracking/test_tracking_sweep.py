"""A real smoke sweep (the session's, on GLID and CaFFe) read back from its MLflow store: the
tree, params, per-epoch metrics, status tags matching the studies, pair artifacts, the leaderboards
and the record ids."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from cryotune.tracking import names
from cryotune.tracking.outbox import Outbox

SWEEP = "smoke-glid-caffe"
PAIRS = ["glid/unet", "glid/ssl4eo_mae", "caffe/unet", "caffe/ssl4eo_mae"]
GLID_PAIRS = PAIRS[:2]  # a two-class optical dataset: the per-trial checks name its classes
STATUS = {"COMPLETE": ("complete", "FINISHED"), "PRUNED": ("pruned", "KILLED")}


@pytest.fixture(scope="module")
def store(smoke_sweep):
    workspace = smoke_sweep.folder.parent
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    by_level: dict[str, list] = {}
    for run in runs:
        by_level.setdefault(run.data.tags[names.TAG_LEVEL], []).append(run)
    return client, experiment, by_level, workspace / SWEEP


def _study(sweep_dir: Path, pair: str) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    return optuna.load_study(study_name=f"{SWEEP}/{pair}", storage=storage)


def test_one_experiment_per_sweep_with_a_three_level_tree(store):
    _, experiment, by_level, sweep_dir = store
    assert experiment.tags[names.TAG_SWEEP] == SWEEP
    (sweep,) = by_level["sweep"]
    assert sweep.info.run_name == SWEEP and names.PARENT_TAG not in sweep.data.tags
    assert sweep.data.tags[names.TAG_STATE] == "finished" and sweep.info.status == "FINISHED"
    assert float(sweep.data.tags[names.TAG_HEARTBEAT]) > sweep.info.start_time / 1000
    assert sweep.data.tags[names.TAG_DATASETS] == "glid,caffe"
    assert sweep.data.tags[names.TAG_MODELS] == "unet,ssl4eo_mae"
    assert sweep.data.tags[names.TAG_WORKSPACE] == str(sweep_dir)
    pairs = {r.data.tags[names.TAG_PAIR]: r for r in by_level["pair"]}
    assert sorted(pairs) == sorted(PAIRS)
    for key, pair in pairs.items():
        assert pair.info.run_name == key
        assert pair.data.tags[names.PARENT_TAG] == sweep.info.run_id
        assert pair.data.tags[names.TAG_STATE] == "finished"
    trials = by_level["trial"]
    assert len(trials) == 4 * len(PAIRS)
    for trial in trials:
        parent = pairs[trial.data.tags[names.TAG_PAIR]]
        assert trial.data.tags[names.PARENT_TAG] == parent.info.run_id
        number = trial.data.tags[names.TAG_STUDY_TRIAL]
        assert trial.info.run_name == f"{trial.data.tags[names.TAG_PAIR]} #{number}"


def test_trial_runs_hold_params_epochs_and_the_study_outcome(store):
    client, _, by_level, sweep_dir = store
    for key in GLID_PAIRS:
        study = _study(sweep_dir, key)
        runs = [r for r in by_level["trial"] if r.data.tags[names.TAG_PAIR] == key]
        assert sorted(int(r.data.tags[names.TAG_STUDY_TRIAL]) for r in runs) == [0, 1, 2, 3]
        for run in runs:
            tags, params = run.data.tags, run.data.params
            frozen = study.trials[int(tags[names.TAG_STUDY_TRIAL])]
            assert frozen.user_attrs["tune_trial_id"] == tags[names.TAG_TRIAL_ID]
            assert (tags[names.TAG_STATUS], run.info.status) == STATUS[frozen.state.name]
            assert float(params["lr"]) == pytest.approx(frozen.params["lr"])
            if "depth" in frozen.params:
                assert int(params["depth"]) == frozen.params["depth"]
            assert int(params["trainable_params"]) > 0
            assert (params["dataset"], params["model"]) == tuple(key.split("/"))
            assert (params["epochs"], params["batch_size"], params["weights"]) == (
                "3",
                "4",
                "random",
            )
            assert params["seed"] == "234" and params["label_fraction"] == "1.0"
            expected_filled = "none" if key.endswith("unet") else "optical:B1"
            assert params["filled_bands"].split(",")[0] == expected_filled

            trial_dir = sweep_dir / "trials" / tags[names.TAG_TRIAL_ID]
            epochs = [json.loads(line) for line in (trial_dir / "epochs.jsonl").open()]
            history = client.get_metric_history(run.info.run_id, "val_miou")
            assert [(m.step, m.value) for m in history] == [
                (e["epoch"], pytest.approx(e["val_miou"])) for e in epochs
            ]
            steps = [e["epoch"] for e in epochs]
            for metric in ("train_loss", "lr", "epoch_seconds", "iou_background", "iou_target"):
                assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == (
                    steps
                )
            assert "peak_memory_mb" not in run.data.metrics  # CPU only
            config = json.loads((trial_dir / names.CONFIG_ARTIFACT).read_text())
            assert config["lr"] == pytest.approx(frozen.params["lr"])
            assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.json"]
            if frozen.state.name == "COMPLETE":
                result = frozen.user_attrs["result"]
                assert run.data.metrics["best_val_miou"] == pytest.approx(frozen.value)
                assert run.data.metrics["best_epoch"] == result["best_epoch"]
                assert run.data.metrics["test_miou"] == pytest.approx(
                    result["test_metrics"]["miou"]
                )
            assert Outbox(trial_dir).pending() == 0


def test_pair_runs_hold_counts_plots_and_the_record(store):
    client, _, by_level, sweep_dir = store
    for pair in by_level["pair"]:
        key = pair.data.tags[names.TAG_PAIR]
        record = json.loads((sweep_dir / "records" / f"{key.replace('/', '__')}.json").read_text())
        metrics = pair.data.metrics
        assert metrics["trials_complete"] == record["trials"]["complete"]
        assert metrics["trials_pruned"] == record["trials"]["pruned"]
        assert metrics["trials_failed"] == 0 and metrics["trials_running"] == 0
        assert metrics["best_val_miou"] == pytest.approx(record["best"]["val_miou"])
        assert metrics["best_test_miou"] == pytest.approx(record["best"]["test_metrics"]["miou"])
        tags = pair.data.tags  # its best trial, so readers need not read every trial run
        assert int(tags[names.TAG_BEST_STUDY_TRIAL]) == record["ids"]["study_trial"]
        assert float(tags[names.TAG_BEST_LR]) == pytest.approx(record["config"]["lr"])
        assert tags[names.TAG_BEST_DEPTH] == str(record["config"]["depth"])
        done = client.get_metric_history(pair.info.run_id, "trials_complete")
        assert [m.step for m in done][:4] == [1, 2, 3, 4]  # one point per ended trial
        artifacts = {a.path for a in client.list_artifacts(pair.info.run_id)}
        assert artifacts == {names.RECORD_ARTIFACT, *names.PAIR_PLOTS}
        local = Path(client.download_artifacts(pair.info.run_id, "", str(sweep_dir.parent / key)))
        for png in names.PAIR_PLOTS:
            assert (local / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads((local / names.RECORD_ARTIFACT).read_text()) == record


def test_record_ids_point_to_real_runs(store):
    client, experiment, _, sweep_dir = store
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["tracking_uri"] == f"sqlite:///{sweep_dir.parent / 'mlflow.db'}"
    for key in PAIRS:
        record = json.loads((sweep_dir / "records" / f"{key.replace('/', '__')}.json").read_text())
        ids = record["ids"]
        assert record["tracking_uri"] == plan["tracking_uri"]
        assert ids["mlflow_experiment_id"] == experiment.experiment_id
        best = client.get_run(ids["mlflow_run_id"])
        assert best.data.tags[names.TAG_TRIAL_ID] == ids["tune_trial_id"]
        assert best.data.tags[names.TAG_STUDY_TRIAL] == str(ids["study_trial"])
        pair = client.get_run(ids["mlflow_pair_run_id"])
        assert pair.data.tags[names.TAG_PAIR] == key
        assert best.data.tags[names.PARENT_TAG] == pair.info.run_id


def test_the_sweep_run_holds_the_plan_and_a_leaderboard(store):
    client, _, by_level, sweep_dir = store
    (sweep,) = by_level["sweep"]
    local = Path(client.download_artifacts(sweep.info.run_id, "", str(sweep_dir.parent / "sw")))
    assert json.loads((local / names.PLAN_ARTIFACT).read_text())["name"] == SWEEP
    for dataset in ("glid", "caffe"):
        table = json.loads((local / names.LEADERBOARD_DIR / f"{dataset}.json").read_text())
        assert table["columns"] == list(names.LEADERBOARD_COLUMNS)
        rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
        assert sorted(r["model"] for r in rows) == ["ssl4eo_mae", "unet"]
        assert rows[0]["val_miou"] >= rows[1]["val_miou"]
        for row in rows:
            tags = client.get_run(row["run_id"]).data.tags
            assert (tags[names.TAG_DATASET], tags[names.TAG_MODEL]) == (dataset, row["model"])
    assert "mlflow.loggedArtifacts" not in sweep.data.tags  # MLflow's own tag is left to it


def test_the_sweep_run_holds_the_report_of_its_pairs(store, tmp_path):
    from cryotune.report.models import Report

    client, _, by_level, sweep_dir = store
    (sweep,) = by_level["sweep"]
    local = Path(client.download_artifacts(sweep.info.run_id, names.REPORT_DIR, str(tmp_path)))
    assert {p.name for p in local.iterdir()} == {*names.REPORT_FILES.values(), names.REPORT_PNG}
    report = Report.model_validate_json((local / names.REPORT_FILES["json"]).read_text())
    assert report.sweeps == [SWEEP] and report.counts["complete"] == len(PAIRS)
    for key in PAIRS:
        record = json.loads((sweep_dir / "records" / f"{key.replace('/', '__')}.json").read_text())
        cell = report.cell(*key.split("/"))
        assert cell.test_miou == pytest.approx(record["best"]["test_metrics"]["miou"])
        assert cell.val_miou == pytest.approx(record["best"]["val_miou"])
    assert "| U-Net |" in (local / names.REPORT_FILES["md"]).read_text()
    assert (local / names.REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_keeps_the_store_it_started_with(smoke_sweep, cryotune, tmp_path):
    args = smoke_sweep.args
    other = f"sqlite:///{tmp_path / 'other.db'}"
    refused = cryotune(*args, "--resume", "--tracking-uri", other)
    assert refused.returncode == 2
    assert "logs to the MLflow store" in refused.stderr and other in refused.stderr
    assert not (tmp_path / "other.db").exists()


def test_resume_delivers_what_waited_even_for_a_finished_sweep(smoke_sweep, cryotune, store):
    client, _, by_level, sweep_dir = store
    run = by_level["trial"][0]
    outbox = Outbox(sweep_dir / "trials" / run.data.tags[names.TAG_TRIAL_ID])
    outbox.append("tags", tags={"spooled_while_away": "yes"})  # as if the store was down
    resumed = cryotune(*smoke_sweep.args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert client.get_run(run.info.run_id).data.tags["spooled_while_away"] == "yes"
    assert outbox.pending() == 0
    assert f"MLflow: experiment '{SWEEP}'" in resumed.stdout and "cryotune mlflow" in resumed.stdout


def _cut_spool_after(outbox: Outbox, count: int) -> None:
    """Leave only the first ``count`` operations, all delivered: what the outbox held when a
    driver was killed just before spooling the rest."""
    lines = outbox.spool_file.read_text().split("\n")[:count]
    outbox.spool_file.write_text("\n".join(lines) + "\n")
    outbox.delivered_file.write_text(str(count))


def test_a_resumed_sweep_closes_runs_whose_end_a_killed_driver_never_logged(
    cryotune, data_root, tmp_path
):
    """A driver killed after a pair's record was written (or a trial's study state was told)
    but before their MLflow ends were spooled: ``--resume`` finds the sweep done and still
    closes those runs, so MLflow agrees with the studies."""
    workspace = tmp_path / "runs"
    args = ["sweep", "glid", "--config", "sweeps/smoke.yaml", "--models", "unet"]
    args += ["--trials", "2", "--name", "killed", "--data-root", str(data_root)]
    args += ["--workspace", str(workspace)]
    done = cryotune(*args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    sweep_dir = workspace / "killed"
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("killed")

    trial_dir = next(p for p in (sweep_dir / "trials").iterdir() if (p / "mlflow-run-id").exists())
    for box in (Outbox(sweep_dir / "mlflow" / "glid__unet"), Outbox(trial_dir)):
        ops = box.operations()
        _cut_spool_after(box, min(i for i, op in enumerate(ops) if op["kind"] == "status"))
        client.update_run(box.run_id(), status="RUNNING")

    resumed = cryotune(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    study = _study_named(sweep_dir, "killed/glid/unet")
    expected = {t.user_attrs["tune_trial_id"]: STATUS[t.state.name][1] for t in study.get_trials()}
    for run in runs:
        level = run.data.tags[names.TAG_LEVEL]
        if level == "trial":
            assert run.info.status == expected[run.data.tags[names.TAG_TRIAL_ID]]
        else:
            assert run.info.status == "FINISHED", (level, resumed.stdout[-1500:])


def _study_named(sweep_dir: Path, name: str) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    return optuna.load_study(study_name=name, storage=storage)
