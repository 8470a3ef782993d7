"""One measured run of the scale benchmark, in a process of its own: a ``cryotune sweep`` of
simulated trials through the real driver, or a plain Ray Tune ``Tuner`` of the same trials.

Its own process so the driver's CPU time and peak memory are this run's alone; everything it
imports is imported before the clock starts. ``python -m bench.scale_run ARGS`` writes one JSON
object to ``--out`` (see ``measure``); ``bench/scale.py`` starts it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

RUNNER = "bench.simulated:run_trial"
DELIVERY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Trial:
    """One trial as the ideal schedule sees it: epochs it ran, from ``started`` to ``ended``
    (unix seconds)."""

    epochs: int
    started: float
    ended: float


class CpuClock:
    """Samples this process's CPU time (every thread) against the wall clock, so the CPU spent
    between two moments of the run (its first trial's start and last trial's end) can be read
    afterwards without touching the driver."""

    PERIOD_S = 0.2

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu-clock", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.time(), time.process_time()))
            if self._stop.wait(self.PERIOD_S):
                return

    def __enter__(self) -> CpuClock:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), time.process_time()))

    def at(self, moment: float) -> float:
        """CPU seconds at ``moment`` (unix), interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= moment), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= moment), default=self.samples[-1])
        if after[0] == before[0]:
            return before[1]
        share = (moment - before[0]) / (after[0] - before[0])
        return before[1] + share * (after[1] - before[1])

    def between(self, start: float, end: float) -> float:
        return self.at(end) - self.at(start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's resident memory now (Linux), else its peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_cryotune(args) -> tuple[list[Trial], dict]:
    """The sweep through ``run_sweep`` (as ``cryotune sweep`` calls it); its trials, and when
    its last metric reached MLflow."""
    from cryotune.sweep.driver import SweepRequest, run_sweep

    request = SweepRequest(
        datasets=args.datasets.split(","),
        models=args.models.split(","),
        config=args.spec,
        name=args.name,
        workspace=args.workspace,
        data_root=[args.data_root],
        num_cpus=args.slots,
        max_concurrent=args.slots,
        seed=0,
        tracking_uri=args.tracking_uri,
        tracking_wait=DELIVERY_TIMEOUT_S,
        optuna_storage=args.optuna_storage,
    )
    outcome = run_sweep(request)
    returned = time.time()
    trials = _study_trials(outcome.dir)
    delivered = _delivered(outcome.dir, args.tracking_uri, args.name, len(trials))
    extra = {
        "unfinished": outcome.unfinished,
        "records": len(outcome.records),
        "returned_at": returned,
        "delivered_at": delivered,
    }
    return trials, extra


def _study_trials(sweep_dir: Path) -> list[Trial]:
    """Every trial that ran, as its simulated runner timed it (the plain Tuner's trials are
    timed by the same runner, so both ways are measured alike)."""
    from bench.simulated import STATE_FILE

    trials = []
    for path in sorted((sweep_dir / "trials").glob(f"*/{STATE_FILE}")):
        state = json.loads(path.read_text())
        trials.append(Trial(epochs=state["epoch"], started=state["started"], ended=state["at"]))
    return trials


def _delivered(sweep_dir: Path, uri: str, name: str, expected: int) -> float | None:
    """When every outbox of the sweep was delivered and the store held every trial's run
    ended (None: not within DELIVERY_TIMEOUT_S)."""
    from mlflow import MlflowClient

    from cryotune.tracking.names import LEVEL_TRIAL, TAG_LEVEL, TAG_STATUS
    from cryotune.tracking.outbox import SPOOL_FILE, Outbox

    client = MlflowClient(uri)
    folders = [p.parent for p in sweep_dir.rglob(SPOOL_FILE)]
    experiment = client.get_experiment_by_name(name)
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(Outbox(f).pending() == 0 for f in folders):
            ended = 0
            token = None
            while True:
                page = client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"tags.`{TAG_LEVEL}` = '{LEVEL_TRIAL}' "
                    f"and tags.`{TAG_STATUS}` != 'running'",
                    max_results=1000,
                    page_token=token,
                )
                ended += len(page)
                token = page.token
                if not token:
                    break
            if ended >= expected:
                return time.time()
        time.sleep(0.2)
    return None


def simulated_tune_trial(config: dict) -> None:
    """The plain Ray Tune trainable: the same simulated trial, every epoch reported to Tune."""
    from ray import tune

    from bench.simulated import run_trial
    from cryotune.config import TrialConfig

    started = time.time()  # as the runner's state file has it in a sweep
    trial = TrialConfig(**{**config["trial"], "lr": config["lr"], "depth": config["depth"]})
    run_trial(
        trial,
        on_epoch=lambda e: tune.report(
            {"epoch": e.epoch, "val_miou": e.val_miou, "started": started, "at": time.time()}
        ),
    )


def run_ray_tune(args) -> tuple[list[Trial], dict]:
    """A plain ``Tuner``: no searcher (random variants), Tune's own ASHA with the sweep's
    settings, actors reused as cryotune does; no study storage, records or tracking."""
    import ray
    from ray import tune
    from ray.tune.schedulers import AsyncHyperBandScheduler

    spec = json.loads(Path(args.spec_json).read_text())
    scheduler = spec["scheduler"]
    base = {**spec["trial"], "dataset": args.datasets.split(",")[0], "model": "unet"}
    base["epochs"] = scheduler["max_epochs"]
    ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            simulated_tune_trial,
            param_space={
                "trial": base,
                "lr": tune.loguniform(spec["space"]["lr"]["low"], spec["space"]["lr"]["high"]),
                "depth": tune.randint(0, 13),
            },
            tune_config=tune.TuneConfig(
                num_samples=args.trials,
                max_concurrent_trials=args.slots,
                reuse_actors=True,
                scheduler=AsyncHyperBandScheduler(
                    time_attr="epoch",
                    metric="val_miou",
                    mode="max",
                    max_t=scheduler["max_epochs"],
                    grace_period=scheduler["grace_period"],
                    reduction_factor=scheduler["reduction_factor"],
                ),
            ),
            run_config=tune.RunConfig(
                name=args.name, storage_path=str(Path(args.workspace).parent / "tune"), verbose=0
            ),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    trials = []
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"{args.name}: a Ray Tune trial failed: {result.error}")
        rows = result.metrics_dataframe.to_dict("records")
        trials.append(
            Trial(
                epochs=int(max(r["epoch"] for r in rows)),
                started=min(r["started"] for r in rows),
                ended=max(r["at"] for r in rows),
            )
        )
    return trials, {}


def _import_first(way: str) -> None:
    """What the run would import on its clock: the driver's modules (the plan's checks import
    the model registry, hence torch), or Ray Tune's."""
    import importlib

    modules = ["ray.tune", "ray.tune.schedulers"]
    if way == "cryotune":
        modules += [
            "cryotune.sweep.driver",
            "cryotune.sweep.searcher",
            "cryotune.sweep.scheduler",
            "cryotune.sweep.progress",
            "cryotune.models.encoders",
            "cryotune.models.segmenter",
            "cryotune.tracking.sweep",
            "cryotune.tracking.plots",
            "mlflow",
        ]
    for module in modules:
        importlib.import_module(module)


def measure(args) -> dict:
    """Wall, driver CPU and memory of the run, and its trials' epochs and times."""
    import optuna

    _import_first(args.way)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["CRYOTUNE_TRIAL_RUNNER"] = RUNNER
    os.environ["CRYOTUNE_SIM_EPOCH_S"] = str(args.epoch_s)
    run = run_cryotune if args.way == "cryotune" else run_ray_tune
    rss_before = rss_mb()
    cpu_before = time.process_time()
    started = time.time()
    with CpuClock() as clock:
        trials, extra = run(args)
    wall = (extra.get("returned_at") or time.time()) - started
    cpu = time.process_time() - cpu_before
    first = min((t.started for t in trials), default=started)
    last = max((t.ended for t in trials), default=started)
    return {
        "steady_driver_cpu_s": clock.between(first, last),
        "way": args.way,
        "name": args.name,
        "slots": args.slots,
        "epoch_s": args.epoch_s,
        "started_at": started,
        "wall_s": wall,
        "driver_cpu_s": cpu,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "trials": [t.__dict__ for t in trials],
        **extra,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_run", description=__doc__)
    parser.add_argument("--way", choices=("cryotune", "ray_tune"), required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--trials", type=int, required=True, help="all trials (plain Tune)")
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--epoch-s", type=float, required=True)
    parser.add_argument("--spec", required=True, help="the sweep spec (YAML)")
    parser.add_argument("--spec-json", required=True, help="the same spec as JSON")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--optuna-storage")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args)
    args.out.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
