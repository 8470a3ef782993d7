"""What the sweep benchmarks run: tiny synthetic datasets, specs derived from sweeps/*.yaml, and
real ``cryotune sweep`` runs (``run_sweep`` on an embedded Ray cluster) timed from the outside.

Every trial is a real ``run_trial`` of a small model (U-Net from scratch) on synthetic tiles, on
one CPU thread per trial; the per-epoch validation mIoU and its time come back from Tune's own
per-trial result files, so the sweep code under test is not touched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
TUNE_LOGGERS_OFF = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"

# One trial: U-Net from scratch on 32 px GLID tiles, 2 steps of batch 4 per epoch, 4 val tiles.
TINY_TRIAL = {
    "weights": "random",
    "batch_size": 4,
    "crop_size": 32,
    "max_steps_per_epoch": 2,
    "evaluate_test": False,
    "val_every": 1,
    "device": "cpu",
}


def quiet_environment() -> None:
    """One thread per trial (workers inherit it) and no CUDA even where a GPU is visible."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    for key in [k for k in os.environ if k.startswith("CRYOTUNE_")]:
        del os.environ[key]
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def write_data(folder: Path, datasets: tuple[str, ...], tiles: int, size: int) -> Path:
    """Synthetic ``datasets`` under ``folder`` (one sub-folder each, as ``--data-root`` wants)."""
    from cryotune.data.synth import write_synthetic

    for key in datasets:
        if (folder / key).exists():
            continue
        write_synthetic(key, folder / key, tiles=tiles, size=size, seed=0)
    return folder


def derive_spec(base: str, out: Path, **overrides) -> Path:
    """``sweeps/BASE.yaml`` with dotted-key ``overrides`` applied, validated, written to ``out``."""
    from cryotune.sweep.spec import load_spec, with_overrides

    spec = with_overrides(load_spec(SWEEPS / f"{base}.yaml"), **overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return out


@dataclass(frozen=True)
class Workspace:
    """A sweep benchmark's shared ground: synthetic data under ``data_root`` and, under ``work``,
    one tile cache (cache/), cryotune sweeps (sweeps/) and plain Ray Tune runs (tune/); every way
    runs ``slots`` trials at once."""

    data_root: Path
    work: Path
    slots: int

    def trial_config(self, base: dict, dataset: str, model: str, epochs: int, seed: int) -> dict:
        """A whole trial config for a plain Ray Tune or Optuna run of ``base`` on this data."""
        return {
            **base,
            "dataset": dataset,
            "model": model,
            "epochs": epochs,
            "seed": seed,
            "data_root": str(self.data_root / dataset),
            "cache_dir": str(self.work / "cache"),
        }

    def cryotune_spec(self, file: str, trial: dict, **overrides) -> Path:
        """``sweeps/default.yaml`` with ``overrides``, its trials ``trial`` on the shared cache."""
        trial = {**trial, "cache_dir": str(self.work / "cache")}
        return derive_spec("default", self.work / file, **overrides, trial=trial)

    def run_cryotune(
        self, name: str, datasets: list[str], spec: Path, seed: int, models: list[str]
    ) -> SweepRun:
        return run_cryotune(
            name, datasets, spec, self.data_root, self.work / "sweeps", self.slots, seed, models
        )

    def run_cryotune_command(
        self, name: str, datasets: list[str], spec: Path, seed: int, models: list[str]
    ) -> float:
        """Wall seconds of one ``cryotune sweep`` command, as a user runs it: a process of its
        own, its imports and Ray start included."""
        command = [
            str(Path(sys.executable).with_name("cryotune")),
            "sweep",
            *datasets,
            f"--config={spec}",
            f"--models={','.join(models)}",
            f"--name={name}",
            f"--workspace={self.work / 'sweeps'}",
            f"--data-root={self.data_root}",
            f"--num-cpus={self.slots}",
            f"--max-concurrent={self.slots}",
            f"--seed={seed}",
            "--tracking-wait=0",
        ]
        started = time.time()
        env = {**os.environ, TUNE_LOGGERS_OFF: "0"}  # as run_cryotune's sweeps
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.time() - started
        if done.returncode != 0:
            raise RuntimeError(f"sweep {name} failed ({done.returncode}): {done.stderr[-2000:]}")
        return wall

    def run_ray_tune(
        self, name: str, trial: dict, param_space: dict, samples: int, seed: int
    ) -> SweepRun:
        return run_ray_tune(name, trial, param_space, samples, self.slots, self.work / "tune", seed)


@dataclass(frozen=True)
class EpochEvent:
    """One validated epoch of one trial, at ``at`` seconds after the run started."""

    trial: str
    epoch: int
    val_miou: float
    at: float


@dataclass(frozen=True)
class TrialTiming:
    """A finished trial: ``compute_s`` is ``run_trial``'s own time, ``ended_at`` is seconds after
    the run started."""

    trial: str
    compute_s: float
    ended_at: float


@dataclass(frozen=True)
class SweepRun:
    wall_s: float
    epochs: list[EpochEvent]
    trials: list[TrialTiming]
    records: list[dict]
    params: dict[str, dict] = field(default_factory=dict)  # per trial: lr, depth


def run_cryotune(
    name: str,
    datasets: list[str],
    spec: Path,
    data_root: Path,
    workspace: Path,
    slots: int,
    seed: int | None = None,
    models: list[str] | None = None,
) -> SweepRun:
    """``cryotune sweep`` through its Python entry point, timed wall to wall (Ray start included)."""
    from cryotune.sweep.driver import SweepRequest, run_sweep
    from cryotune.sweep.keys import FINAL

    request = SweepRequest(
        datasets=datasets,
        config=str(spec),
        models=models,
        name=name,
        workspace=str(workspace),
        data_root=[str(data_root)],
        num_cpus=slots,
        max_concurrent=slots,
        seed=seed,
        tracking_wait=0,
    )
    started = time.time()
    with tune_result_files():
        outcome = run_sweep(request)
    wall = time.time() - started
    if outcome.unfinished:
        raise RuntimeError(f"sweep {name} did not finish: {outcome.notes}")
    epochs, trials = _tune_results(outcome.dir / "tune", outcome.dir / "trials", started, FINAL)
    params = _tune_params(outcome.dir / "tune")
    return SweepRun(
        wall_s=wall, epochs=epochs, trials=trials, records=outcome.records, params=params
    )


@contextlib.contextmanager
def tune_result_files() -> Iterator[None]:
    """Tune's per-trial ``result.json`` and ``params.json``, which the benchmarks read a sweep's
    epochs from, for one sweep: cryotune's driver turns them off unless told otherwise."""
    before = os.environ.get(TUNE_LOGGERS_OFF)
    os.environ[TUNE_LOGGERS_OFF] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TUNE_LOGGERS_OFF, None)
        else:
            os.environ[TUNE_LOGGERS_OFF] = before


def _tune_params(tune_dir: Path) -> dict[str, dict]:
    """Each cryotune trial's searched values (lr, depth) from Tune's ``params.json``."""
    params = {}
    for path in sorted(tune_dir.glob("*/params.json")):
        trial = json.loads(path.read_text()).get("trial", {})
        params[path.parent.name] = {k: trial.get(k) for k in ("lr", "depth")}
    return params


def _tune_results(
    tune_dir: Path, trials_dir: Path, started: float, final_key: str
) -> tuple[list[EpochEvent], list[TrialTiming]]:
    """Per-epoch results from Tune's ``result.json`` of each trial (whole-second timestamps).
    A completed trial's compute time and end come from the trainer's ``result.json`` (its
    ``seconds`` and the file's mtime); a stopped trial's from its reported epoch times."""
    epochs, trials = [], []
    for path in sorted(tune_dir.glob("*/result.json")):
        trial = path.parent.name
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        per_epoch = [r for r in rows if not r.get(final_key) and "epoch_seconds" in r]
        seen: set[int] = set()
        for row in per_epoch:
            if row["epoch"] in seen:
                continue
            seen.add(row["epoch"])
            epochs.append(
                EpochEvent(trial, row["epoch"], row["val_miou"], row["timestamp"] - started)
            )
        trained = trials_dir / trial / "result.json"
        if trained.exists():
            compute = json.loads(trained.read_text())["seconds"]
            ended = trained.stat().st_mtime - started
        else:
            compute = sum(r["epoch_seconds"] for r in per_epoch)
            ended = max((r["timestamp"] for r in rows), default=started) - started
        trials.append(TrialTiming(trial, compute, ended))
    return epochs, trials


def tune_trial(config: dict) -> None:
    """A plain Ray Tune function trainable: ``run_trial`` on ``config["trial"]``, every epoch
    reported with its wall-clock time, the trainer's own time reported at the end. ``run_trial``
    is the one cryotune's sweep trials call: the trainer's, or ``$CRYOTUNE_TRIAL_RUNNER``'s."""
    from ray import tune

    from cryotune.config import TrialConfig
    from cryotune.sweep.trainable import trial_runner

    run_trial = trial_runner()
    trial = TrialConfig(**{**config["trial"], **config.get("params", {})})
    result = run_trial(
        trial,
        on_epoch=lambda e: tune.report(
            {"epoch": e.epoch, "val_miou": e.val_miou, "at": time.time()}
        ),
    )
    tune.report({"epoch": trial.epochs, "compute_s": result.seconds, "at": time.time()})


def run_ray_tune(
    name: str,
    base_trial: dict,
    param_space: dict,
    samples: int,
    slots: int,
    storage: Path,
    seed: int | None = None,
) -> SweepRun:
    """What a user writes without cryotune: ``tune.Tuner`` with default settings on the same
    trainer, no early stopping, timed wall to wall (Ray start included). The cluster has
    ``slots`` CPUs and a function trial takes one, so ``slots`` trials run at once; ``seed``
    seeds the random variants."""
    import ray
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    started = time.time()
    ray.init(address="local", num_cpus=slots, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune_trial,
            param_space={"trial": base_trial, "params": param_space},
            tune_config=tune.TuneConfig(
                num_samples=samples,
                search_alg=BasicVariantGenerator(random_state=seed),
            ),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
    wall = time.time() - started
    epochs, trials, params = [], [], {}
    for result in grid:
        if result.error is not None:
            raise RuntimeError(f"{name}: a Ray Tune trial failed: {result.error}")
        rows = result.metrics_dataframe.to_dict("records")
        trial_id = result.metrics["trial_id"]
        params[trial_id] = dict(result.config.get("params", {}))
        for row in rows:
            if math.isfinite(row.get("val_miou", math.nan)):
                at = row["at"] - started
                epochs.append(EpochEvent(trial_id, int(row["epoch"]), row["val_miou"], at))
        ended = result.metrics["at"] - started
        trials.append(TrialTiming(trial_id, result.metrics["compute_s"], ended))
    return SweepRun(wall_s=wall, epochs=epochs, trials=trials, records=[], params=params)
