"""Check a sweep that ran on a Ray cluster of containers: run by scripts/docker-test.sh and
scripts/slurm-test.sh inside the cryotune image (or any environment with cryotune installed).

    python docker_check.py wait-trial TRIALS_DIR EPOCHS          print a trial mid-run, checkpointed
    python docker_check.py sweep --sweep-dir DIR --optuna URL --tracking URI --name NAME
        --epochs N --trials N --pairs glid/unet,... [--workers NODE,...] [--lost TRIAL]

`sweep` checks what a complete sweep leaves: every epoch of every trial ran on a worker node and
none twice, the interrupted trial (--lost) continued from its checkpoint, every pair's record is
complete, every study trial COMPLETE in the Optuna storage, every trial's MLflow run FINISHED with
its epochs' metrics. It prints one line per check and exits 1 at the first failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def epochs(trial_dir: Path) -> list[dict]:
    log = trial_dir / "epochs.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_trial(trials_dir: Path, last_epoch: int, timeout: float) -> int:
    """Print the folder of a trial that has checkpointed an epoch and has more to train."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for trial_dir in sorted(trials_dir.glob("*")) if trials_dir.exists() else []:
            done = epochs(trial_dir)
            if done and done[-1]["epoch"] < last_epoch - 1 and (trial_dir / "last.pt").exists():
                print(json.dumps({"trial": trial_dir.name, "epochs": done}))
                return 0
        time.sleep(0.1)
    print(f"no trial mid-run in {trials_dir} within {timeout:.0f} s", file=sys.stderr)
    return 1


def check(ok: bool, what: str) -> None:
    print(f"{'ok' if ok else 'FAIL'}: {what}", flush=True)
    if not ok:
        sys.exit(1)


def check_sweep(args: argparse.Namespace) -> int:
    import optuna
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from cryotune.tracking.names import (
        LEVEL_TRIAL,
        STATUS_COMPLETE,
        TAG_LEVEL,
        TAG_STATUS,
        TAG_TRIAL_ID,
    )

    sweep_dir = Path(args.sweep_dir)
    trials_dir = sweep_dir / "trials"
    trial_dirs = sorted(d for d in trials_dir.iterdir() if d.is_dir())
    ran = {d.name: epochs(d) for d in trial_dirs}
    check(bool(ran), f"{len(ran)} trial folders in {trials_dir}")

    if args.workers:
        workers = set(args.workers.split(","))
        nodes = {e["node"] for log in ran.values() for e in log}
        check(nodes <= workers, f"every epoch ran on a worker container's node ({len(nodes)} used)")
    for trial_id, log in ran.items():
        numbers = [e["epoch"] for e in log]
        check(
            numbers == list(range(1, args.epochs + 1)),
            f"trial {trial_id} trained epochs 1..{args.epochs} once each: {numbers}",
        )
    if args.lost:
        before = json.loads(args.lost)
        log = ran[before["trial"]]
        check(
            log[: len(before["epochs"])] == before["epochs"],
            f"interrupted trial {before['trial']} kept the {len(before['epochs'])} epochs it had",
        )
        lost_node = before["epochs"][-1]["node"]
        after = log[len(before["epochs"]) :]
        check(
            bool(after) and all(e["node"] != lost_node for e in after),
            f"interrupted trial {before['trial']} continued on another node from its checkpoint",
        )

    storage = optuna.storages.RDBStorage(args.optuna)
    killed = json.loads(args.driver_killed) if args.driver_killed else None
    killed_node = killed["epochs"][-1]["node"] if killed else None
    tune_ids = set()
    for pair in args.pairs.split(","):
        dataset, model = pair.split("/")
        study = optuna.load_study(study_name=f"{args.name}/{dataset}/{model}", storage=storage)
        states = [t.state for t in study.trials]
        check(
            states == [TrialState.COMPLETE] * args.trials,
            f"study {study.study_name}: {args.trials} COMPLETE trials in PostgreSQL",
        )
        for trial in study.trials:
            trial_id = trial.user_attrs["tune_trial_id"]
            tune_ids.add(trial_id)
            numbers = [e["epoch"] for e in ran.get(trial_id, [])]
            values = sorted(trial.intermediate_values)
            # Every trained epoch is in the study, those around a killed driver included (a
            # continued trial reports them again); an epoch checkpointed just before the kill
            # is in the trial's history but not in epochs.jsonl.
            history = {
                e["epoch"] for e in (trial.user_attrs.get("result") or {}).get("history", [])
            }
            check(
                set(numbers) <= set(values) <= set(numbers) | history,
                f"study trial {trial.number} has one value per trained epoch of {trial_id}",
            )
            if killed and trial_id == killed["trial"]:
                resumed = sorted(e["epoch"] for e in ran[trial_id] if e["node"] != killed_node)
                check(bool(resumed), f"trial {trial_id} trained on after the resume {resumed}")
        record = json.loads((sweep_dir / "records" / f"{dataset}__{model}.json").read_text())
        check(
            record["status"] == "complete" and record["trials"]["total"] == args.trials,
            f"record {dataset}__{model}: complete, {args.trials} trials",
        )
    check(tune_ids == set(ran), "every trial folder is a study trial and the other way round")

    client = MlflowClient(args.tracking)
    experiment = client.get_experiment_by_name(args.name)
    check(experiment is not None, f"MLflow experiment {args.name} on {args.tracking}")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_LEVEL}` = '{LEVEL_TRIAL}'"
    )
    by_trial = {run.data.tags[TAG_TRIAL_ID]: run for run in runs}
    check(
        set(by_trial) == tune_ids and len(runs) == len(tune_ids),
        f"one MLflow trial run per trial ({len(runs)})",
    )
    for trial_id, run in by_trial.items():
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")]
        check(
            run.info.status == "FINISHED"
            and run.data.tags[TAG_STATUS] == STATUS_COMPLETE
            and sorted(set(steps)) == [e["epoch"] for e in ran[trial_id]],
            f"MLflow run of {trial_id}: FINISHED, val_miou at every trained epoch",
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wait = commands.add_parser("wait-trial")
    wait.add_argument("trials_dir", type=Path)
    wait.add_argument("epochs", type=int)
    wait.add_argument("--timeout", type=float, default=600)
    sweep = commands.add_parser("sweep")
    sweep.add_argument("--sweep-dir", required=True)
    sweep.add_argument("--optuna", required=True)
    sweep.add_argument("--tracking", required=True)
    sweep.add_argument("--name", required=True)
    sweep.add_argument("--epochs", type=int, required=True)
    sweep.add_argument("--trials", type=int, required=True)
    sweep.add_argument("--pairs", required=True)
    sweep.add_argument("--workers", help="Ray node ids of the worker containers, comma-separated")
    sweep.add_argument("--lost", help="wait-trial's output for the trial whose node was killed")
    sweep.add_argument(
        "--driver-killed",
        help="wait-trial's output for a trial running when the driver was killed (its node is "
        "the killed job's)",
    )
    args = parser.parse_args(argv)
    if args.command == "wait-trial":
        return wait_trial(args.trials_dir, args.epochs, args.timeout)
    return check_sweep(args)


if __name__ == "__main__":
    sys.exit(main())
