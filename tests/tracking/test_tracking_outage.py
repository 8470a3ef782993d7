"""A tracking server killed mid-sweep and started again later: training goes on, and at the end
every trial's per-epoch metrics and outcome are in MLflow."""

from __future__ import annotations

import json
import sys

import optuna
import pytest
from mlflow import MlflowClient

from cryotune.tracking import names
from cryotune.tracking.outbox import SPOOL_FILE, Outbox
from cryotune.tracking.uri import CLIENT_ENVIRONMENT

SWEEP = "smoke-glid"
STATUS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def test_a_server_outage_mid_sweep_loses_nothing(
    tracking_server, background, data_root, tmp_path, wait, monkeypatch
):
    for key, value in CLIENT_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    workspace = tmp_path / "runs"
    sweep_dir = workspace / SWEEP
    sweep = background(
        sys.executable,
        "-m",
        "cryotune.cli",
        "sweep",
        "glid",
        "--config",
        "sweeps/smoke.yaml",
        "--trials",
        "5",
        "--data-root",
        str(data_root),
        "--workspace",
        str(workspace),
        "--tracking-uri",
        tracking_server.url,
        log="sweep.log",
    )
    client = MlflowClient(tracking_server.url)

    def a_trial_reported() -> bool:
        try:
            experiment = client.get_experiment_by_name(SWEEP)
            return experiment is not None and bool(
                client.search_runs(
                    [experiment.experiment_id],
                    "tags.`cryotune.level` = 'trial' and metrics.val_miou >= 0",
                )
            )
        except Exception:
            return False

    def spooled_while_down() -> bool:
        folders = [p.parent for p in sweep_dir.glob(f"**/{SPOOL_FILE}")]
        return any(Outbox(folder).pending() for folder in folders)

    wait(a_trial_reported, 180, "a trial's first metrics in MLflow")
    tracking_server.kill()
    wait(spooled_while_down, 120, "logging to wait in an outbox while the server is down")
    assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
    tracking_server.start()

    assert sweep.wait(timeout=400) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    log = (tmp_path / "sweep.log").read_text()
    assert "wait for the tracking store" not in log
    assert not (workspace / "mlflow.db").exists()  # everything went to the server

    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    trials = {
        r.data.tags[names.TAG_TRIAL_ID]: r for r in runs if r.data.tags[names.TAG_LEVEL] == "trial"
    }
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
    checked = 0
    for pair in ("glid/unet", "glid/ssl4eo_mae"):
        study = optuna.load_study(study_name=f"{SWEEP}/{pair}", storage=storage)
        assert len(study.trials) == 5
        for frozen in study.trials:
            trial_id = frozen.user_attrs["tune_trial_id"]
            run = trials[trial_id]
            assert run.data.tags[names.TAG_STATUS] == STATUS[frozen.state.name]
            trial_dir = sweep_dir / "trials" / trial_id
            epochs = [json.loads(line) for line in (trial_dir / "epochs.jsonl").open()]
            history = client.get_metric_history(run.info.run_id, "val_miou")
            assert [(m.step, m.value) for m in history] == [
                (e["epoch"], pytest.approx(e["val_miou"])) for e in epochs
            ]
            if frozen.state.name == "COMPLETE":
                result = json.loads((trial_dir / "result.json").read_text())
                assert run.data.metrics["test_miou"] == pytest.approx(
                    result["test_metrics"]["miou"]
                )
            assert Outbox(trial_dir).pending() == 0
            checked += 1
    assert checked == 10
    for pair in (r for r in runs if r.data.tags[names.TAG_LEVEL] == "pair"):
        artifacts = {a.path for a in client.list_artifacts(pair.info.run_id)}
        assert artifacts == {names.RECORD_ARTIFACT, *names.PAIR_PLOTS}
        assert pair.data.tags[names.TAG_STATE] == "finished"
    records = [json.loads(p.read_text()) for p in (sweep_dir / "records").glob("*.json")]
    assert all(client.get_run(r["ids"]["mlflow_run_id"]) for r in records)
    assert {r["tracking_uri"] for r in records} == {tracking_server.url}
