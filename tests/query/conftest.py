"""Fixtures for the query layer: a real finished sweep in a workspace (the session's smoke sweep),
and a real MLflow store written with MlflowClient exactly as the tracking contract
(``cryotune.tracking.names``) says."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cryotune.documents.plan import PlannedPair, SweepPlanDocument
from cryotune.tracking import names


@pytest.fixture(scope="session")
def finished_sweep(smoke_sweep) -> Path:
    """The folder of a sweep run to its end, the session's smoke sweep (unet and ssl4eo_mae on
    synthetic GLID and CaFFe, 4 trials a pair); its parent is the workspace."""
    return smoke_sweep.folder


@dataclass
class ContractStore:
    """What the store holds, to compare answers with."""

    uri: str
    pair_runs: dict[tuple[str, str], str] = field(default_factory=dict)
    trial_runs: dict[tuple[str, str, int], str] = field(default_factory=dict)


def _record(sweep: str, dataset: str, model: str, lr: float, val: float, test: float, ids: dict):
    """The record the sweep writes, made by its own class (a record written at that value)."""
    from cryotune.config import TrialConfig
    from cryotune.documents.record import BestResult, PairRecord, RecordIds, RecordTrials
    from cryotune.sweep.records import repeat_command

    config = TrialConfig(dataset=dataset, model=model, lr=lr, depth=2, epochs=3, weights="random")
    command, lacks = repeat_command(config.model_dump(mode="json"))
    return PairRecord(
        sweep=sweep,
        dataset=dataset,
        model=model,
        study_name=f"{sweep}/{dataset}/{model}",
        status="complete",
        optuna_storage="sqlite:///optuna.db",
        search_space={"num_blocks": 5, "searched": {}, "fixed": {}},
        cryotune_version="0.1.0",
        trials=RecordTrials(budget=3, complete=2, pruned=1, failed=0, total=3),
        seconds={"pair_wall": 10.0, "trials": 9.0},
        finished_at="2026-11-30T10:00:00+00:00",
        config=config,
        params={"lr": lr, "depth": 2},
        best=BestResult(
            val_miou=val,
            epoch=3,
            per_class_iou=[val - 1, val + 1],
            val_metrics={"miou": val},
            test_metrics={"miou": test},
        ),
        ids=RecordIds(**ids),
        repeat_command=command,
        repeat_command_lacks=lacks,
        tracking_uri="set by the fixture",
    ).to_dict()


# (sweep, state, pairs: {pair: (state, [(study trial, status, lr, best_val_miou)], record)})
_SWEEPS = {
    "alpha": (
        "finished",
        {
            "glid/unet": (
                "finished",
                [
                    (0, "complete", 1e-3, 80.0),
                    (1, "pruned", 3e-3, 40.0),
                    (2, "complete", 5e-4, 85.0),
                ],
                (85.0, 83.0),
            ),
            "glid/dofa": (
                "finished",
                [(0, "complete", 2e-4, 88.0), (1, "failed", 1e-3, None)],
                (88.0, 86.5),
            ),
        },
    ),
    "beta": (
        "running",
        {
            "glid/unet": (
                "finished",
                [(0, "completed", 7e-4, 90.5), (1, "completed", 2e-3, 70.0)],
                (90.5, 89.0),
            ),
            "caffe/unet": (
                "running",
                [(0, "completed", 1e-4, 55.0), (1, "running", 4e-4, None)],
                None,
            ),
        },
    ),
}
# 'alpha' tags its trials as cryotune does now; 'beta' with the spelling of earlier versions.
_RUN_STATUS = {
    "complete": "FINISHED",
    "completed": "FINISHED",
    "pruned": "KILLED",
    "failed": "FAILED",
}


@pytest.fixture(scope="session")
def contract_store(tmp_path_factory) -> ContractStore:
    """Two sweeps in a sqlite MLflow store: 'alpha' finished, 'beta' still running. The record
    of beta's glid/unet lacks the best trial's run id (written before it was known)."""
    from mlflow import MlflowClient

    base = tmp_path_factory.mktemp("mlflow")
    store = ContractStore(uri=f"sqlite:///{base / 'mlflow.db'}")
    client = MlflowClient(tracking_uri=store.uri)
    for sweep, (sweep_state, pairs) in _SWEEPS.items():
        experiment = client.create_experiment(
            sweep,
            artifact_location=str(base / "mlartifacts" / sweep),
            tags={names.TAG_SWEEP: sweep},
        )
        datasets = sorted({p.split("/")[0] for p in pairs})
        models = sorted({p.split("/")[1] for p in pairs})
        sweep_run = client.create_run(
            experiment,
            run_name=sweep,
            tags={
                names.TAG_LEVEL: "sweep",
                names.TAG_SWEEP: sweep,
                names.TAG_STATE: sweep_state,
                names.TAG_DATASETS: ",".join(datasets),
                names.TAG_MODELS: ",".join(models),
                names.TAG_WORKSPACE: str(base / "runs" / sweep),
            },
        ).info.run_id
        plan = SweepPlanDocument(
            name=sweep,
            datasets=datasets,
            pairs=list(pairs),
            spec={},
            weights="random",
            data_roots={},
            pair_plans=[
                PlannedPair(
                    key=key,
                    dataset=key.split("/")[0],
                    model=key.split("/")[1],
                    study_name=f"{sweep}/{key}",
                    trials=3,
                    space={},
                    base_config={},
                )
                for key in pairs
            ],
        ).to_dict()
        client.log_dict(sweep_run, plan, names.PLAN_ARTIFACT)
        for key, (pair_state, trials, result) in pairs.items():
            dataset, model = key.split("/")
            common = {
                names.TAG_SWEEP: sweep,
                names.TAG_DATASET: dataset,
                names.TAG_MODEL: model,
                names.TAG_PAIR: key,
                names.PARENT_TAG: sweep_run,
            }
            pair_run = client.create_run(
                experiment,
                run_name=key,
                tags={**common, names.TAG_LEVEL: "pair", names.TAG_STATE: pair_state},
            ).info.run_id
            store.pair_runs[(sweep, key)] = pair_run
            for number, status, lr, best in trials:
                trial_run = client.create_run(
                    experiment,
                    run_name=f"{key} #{number}",
                    tags={
                        **common,
                        names.TAG_LEVEL: "trial",
                        names.TAG_TRIAL_ID: f"t{number}",
                        names.TAG_STUDY_TRIAL: str(number),
                        names.TAG_STATUS: status,
                        names.PARENT_TAG: pair_run,
                    },
                ).info.run_id
                store.trial_runs[(sweep, key, number)] = trial_run
                for param, value in {
                    "lr": lr,
                    "depth": 2,
                    "model": model,
                    "dataset": dataset,
                }.items():
                    client.log_param(trial_run, param, value)
                for epoch in range(3):
                    client.log_metric(trial_run, "val_miou", (best or 10.0) - 3 + epoch, step=epoch)
                if best is not None:
                    client.log_metric(trial_run, "best_val_miou", best)
                if status in _RUN_STATUS:
                    client.set_terminated(trial_run, _RUN_STATUS[status])
            outcome = [names.LEGACY_STATUS.get(t[1], t[1]) for t in trials]
            for status in ("complete", "pruned", "failed", "running"):
                count = outcome.count(status)
                client.log_metric(pair_run, f"trials_{status}", count, step=len(trials))
            done = [t[3] for t, o in zip(trials, outcome) if o == "complete"]
            client.log_metric(pair_run, "best_val_miou", max(done), step=len(trials))
            if result is not None:
                val, test = result
                best_number, _, best_lr, _ = next(t for t in trials if t[3] == val)
                ids = {
                    "tune_trial_id": f"t{best_number}",
                    "study_trial": best_number,
                    "mlflow_pair_run_id": pair_run,
                    "mlflow_experiment_id": experiment,
                }
                if sweep == "alpha":
                    ids["mlflow_run_id"] = store.trial_runs[(sweep, key, best_number)]
                client.log_metric(pair_run, "best_test_miou", test)
                client.log_dict(
                    pair_run,
                    _record(sweep, dataset, model, best_lr, val, test, ids),
                    names.RECORD_ARTIFACT,
                )
                client.set_terminated(pair_run, "FINISHED")
        if sweep_state == "finished":
            client.set_terminated(sweep_run, "FINISHED")
    return store
