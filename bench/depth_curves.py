"""The depth benchmark's simulated half: learning curves fitted to its real trials, and the four
strategies replayed on them over many seeds.

The curve model is a kernel regression of the real validation curves: at (lr, depth), the mean
curve of the real complete trials weighted by a Gaussian kernel in (log10 lr, depth), with its
bandwidths chosen by leave-one-out error. A simulated trial is that mean plus the leave-one-out
residual curve of one real trial, drawn with the same kernel weights: its luck is what a real
trial near that point had, with its shape across validations and its size where it was measured
(a run at 1e-3 full depth swung 17 mIoU between seeds, one at 1e-4 full depth 5). Independent
noise per validation with the pooled spreads, as this model had before, put the simulated bests
5 points above the real ones with up to five times their spread: a lottery no search could win
(``calibration`` compares the two). Only complete trials (the grid, random and sequential Optuna
ones, every one trained to the cap) are fitted: cryotune's trials that ASHA stopped are the poor
ones, and its promoted ones were picked on their own noise.

The strategies run as a discrete-event simulation, ``slots`` trials at once, every epoch one
time unit, a validation every ``val_every`` epochs:

- ``cryotune``: cryotune's own sampler recipe (``cryotune.sweep.study.SamplerRecipe``: the TPE
  sampler with default.yaml's start-up trials, multivariate, constant liar) on an in-memory
  study, and Ray Tune's own ``AsyncHyperBandScheduler`` with default.yaml's grace period and
  reduction factor, wrapped as cryotune's ``PairScheduler`` wraps it (a trial at its last epoch
  finishes; the first ``bootstrap_trials`` at the grace period stop); stopped trials are told
  to the study as pruned with their intermediate values, finished ones as complete with their
  best value, as ``StudySearch`` does.
- ``grid``, ``random``, ``optuna_sequential``: as in the real run.
- an oracle, as a ceiling and not a contender: every trial at the model's best point, to the cap.
  The fraction of seeds on which it meets the target in cryotune's place is the most any search
  could reach at this budget and noise.

Pure Python, not the real driver through the runner seam: one sweep through Ray costs 10-20 s
of start-up and per-trial overhead here, 200 seeds x 4 strategies would take hours,
while the search logic that decides the verdict (sampler, ASHA, accounting) is the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from bench.output import spread
from bench.workload import EpochEvent

BANDWIDTHS_LR = (0.15, 0.25, 0.4, 0.6)  # decades
BANDWIDTHS_DEPTH = (0.5, 1.0, 2.0, 4.0)  # blocks


@dataclass(frozen=True)
class CurveModel:
    """Kernel regression over real curves: ``x`` (n, 2) as (log10 lr, depth), ``y`` (n, k)
    validation mIoU at epochs ``steps``."""

    x: np.ndarray
    y: np.ndarray
    steps: tuple[int, ...]
    h_lr: float
    h_depth: float
    residuals: np.ndarray
    sigma_trial: float
    sigma_epoch: float
    loo_rmse: float

    def weights(self, lr: float, depth: int) -> np.ndarray:
        d_lr = (self.x[:, 0] - math.log10(lr)) / self.h_lr
        d_depth = (self.x[:, 1] - depth) / self.h_depth
        return np.exp(-0.5 * (d_lr**2 + d_depth**2)) + 1e-300

    def mean(self, lr: float, depth: int) -> np.ndarray:
        w = self.weights(lr, depth)
        return w @ self.y / w.sum()

    def draw(self, lr: float, depth: int, rng: np.random.Generator) -> np.ndarray:
        """One trial's curve: the mean and the residual curve of a real trial near (lr, depth)."""
        w = self.weights(lr, depth)
        donor = rng.choice(len(w), p=w / w.sum())
        return np.clip(self.mean(lr, depth) + self.residuals[donor], 0.0, 100.0)

    def best_point(self) -> tuple[float, int]:
        """The (lr, depth) whose mean curve peaks highest, on a lattice over the span of the
        real trials (not beyond it, where the kernel's mean is the nearest trial's)."""
        lrs = np.logspace(self.x[:, 0].min(), self.x[:, 0].max(), 61)
        depths = range(int(self.x[:, 1].min()), int(self.x[:, 1].max()) + 1)
        points = [(float(lr), d) for lr in lrs for d in depths]
        return max(points, key=lambda p: float(self.mean(*p).max()))

    def describe(self) -> dict:
        return {
            "fitted_trials": len(self.x),
            "bandwidth_lr_decades": self.h_lr,
            "bandwidth_depth_blocks": self.h_depth,
            "noise": "the residual curve of a real trial, drawn with the kernel's weights",
            "sigma_trial": round(self.sigma_trial, 3),
            "sigma_validation": round(self.sigma_epoch, 3),
            "loo_rmse": round(self.loo_rmse, 3),
        }


def _loo(x: np.ndarray, y: np.ndarray, h_lr: float, h_depth: float) -> np.ndarray:
    """Leave-one-out predictions of every curve from the others."""
    d_lr = (x[:, None, 0] - x[None, :, 0]) / h_lr
    d_depth = (x[:, None, 1] - x[None, :, 1]) / h_depth
    w = np.exp(-0.5 * (d_lr**2 + d_depth**2))
    np.fill_diagonal(w, 0.0)
    w = w + 1e-300
    return w @ y / w.sum(axis=1, keepdims=True)


def fit(curves: list[dict], epochs: int, val_every: int) -> CurveModel:
    """The model of the complete non-cryotune curves in ``curves`` (``trial_curves`` rows)."""
    steps = tuple(sorted({*range(val_every, epochs + 1, val_every), epochs}))
    complete = [
        c
        for c in curves
        if c["strategy"] != "cryotune" and [e for e, _ in c["curve"]] == list(steps)
    ]
    if len(complete) < 3:
        raise ValueError(f"{len(complete)} complete real trials: too few to fit curves to")
    x = np.array([[math.log10(c["lr"]), c["depth"]] for c in complete])
    y = np.array([[v for _, v in c["curve"]] for c in complete])
    best = None
    for h_lr in BANDWIDTHS_LR:
        for h_depth in BANDWIDTHS_DEPTH:
            rmse = float(np.sqrt(np.mean((_loo(x, y, h_lr, h_depth) - y) ** 2)))
            if best is None or rmse < best[0]:
                best = (rmse, h_lr, h_depth)
    rmse, h_lr, h_depth = best
    residual = y - _loo(x, y, h_lr, h_depth)
    offsets = residual.mean(axis=1)
    sigma_epoch = float(np.std(residual - offsets[:, None]))
    sigma_trial = float(np.std(offsets))
    return CurveModel(x, y, steps, h_lr, h_depth, residual, sigma_trial, sigma_epoch, rmse)


# ---------------------------------------------------------------------------------------------
# the strategies, simulated


@dataclass
class _Running:
    name: str
    lr: float
    depth: int
    curve: np.ndarray
    index: int = 0  # validations done
    handle: object = None


def _rng(seed: int, strategy: str, trial: int) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, strategy)), trial])


def _fixed_trials(
    model: CurveModel, points: list[tuple[float, int]], seed: int, strategy: str, slots: int
) -> list[EpochEvent]:
    """Trials at ``points`` trained to the cap, ``slots`` at once (in order)."""
    events = []
    for number, (lr, depth) in enumerate(points):
        curve = model.draw(lr, depth, _rng(seed, strategy, number))
        start = (number // slots) * model.steps[-1]
        for step, value in zip(model.steps, curve, strict=True):
            events.append(EpochEvent(str(number), step, float(value), float(start + step)))
    return events


def simulate_cryotune(
    model: CurveModel,
    seed: int,
    search: dict,
    trials: int,
    slots: int,
    lr_range: tuple[float, float],
    depth_range: tuple[int, int],
) -> list[EpochEvent]:
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState
    from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

    from cryotune.sweep.searcher import pair_seed
    from cryotune.sweep.study import SamplerRecipe

    recipe = SamplerRecipe(
        kind="tpe",
        seed=pair_seed(seed, "sim"),
        multivariate=search["multivariate"],
        startup_trials=search["startup_trials"],
        constant_liar=search["constant_liar"],
    )
    study = optuna.create_study(direction="maximize", sampler=recipe.build())
    space = {
        "lr": FloatDistribution(*lr_range, log=True),
        "depth": IntDistribution(*depth_range),
    }
    epochs = model.steps[-1]
    asha = AsyncHyperBandScheduler(
        time_attr="epoch",
        metric="val_miou",
        mode="max",
        max_t=epochs,
        grace_period=search["grace_period"],
        reduction_factor=search["reduction_factor"],
    )
    at_grace: set[str] = set()
    events: list[EpochEvent] = []
    running: list[_Running | None] = [None] * slots
    started = 0
    tick = 0
    while True:
        for slot in range(slots):
            if running[slot] is None and started < trials:
                trial = study.ask(fixed_distributions=space)
                lr, depth = trial.params["lr"], int(trial.params["depth"])
                curve = model.draw(lr, depth, _rng(seed, "cryotune", started))
                name = str(started)
                running[slot] = _Running(name, lr, depth, curve, handle=trial)
                asha.on_trial_add(None, SimpleNamespace(trial_id=name))
                started += 1
        if all(r is None for r in running):
            break
        tick += 1
        for slot, run in enumerate(running):
            if run is None:
                continue
            epoch, value = model.steps[run.index], float(run.curve[run.index])
            run.index += 1
            events.append(EpochEvent(run.name, epoch, value, float(tick * model.steps[0])))
            run.handle.report(value, epoch)
            stub = SimpleNamespace(trial_id=run.name)
            result = {"epoch": epoch, "val_miou": value}
            decision = asha.on_trial_result(None, stub, result)
            if epoch >= search["grace_period"] and run.name not in at_grace:
                at_grace.add(run.name)
                if len(at_grace) <= search["bootstrap_trials"]:
                    decision = TrialScheduler.STOP
            finished = epoch >= epochs
            if finished or decision == TrialScheduler.STOP:
                asha.on_trial_complete(None, stub, result)
                if finished:
                    study.tell(run.handle, float(run.curve.max()), state=TrialState.COMPLETE)
                else:
                    study.tell(run.handle, None, state=TrialState.PRUNED)
                running[slot] = None
    return events


def simulate_optuna_sequential(
    model: CurveModel,
    seed: int,
    trials: int,
    lr_range: tuple[float, float],
    depth_range: tuple[int, int],
) -> list[EpochEvent]:
    import optuna

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    events: list[EpochEvent] = []
    for number in range(trials):
        trial = study.ask()
        lr = trial.suggest_float("lr", *lr_range, log=True)
        depth = trial.suggest_int("depth", *depth_range)
        curve = model.draw(lr, depth, _rng(seed, "optuna_sequential", number))
        start = number * model.steps[-1]
        for step, value in zip(model.steps, curve, strict=True):
            events.append(EpochEvent(str(number), step, float(value), float(start + step)))
        study.tell(trial, float(curve.max()))
    return events


def simulate_seed(
    model: CurveModel,
    seed: int,
    search: dict,
    grid: list[tuple[float, int]],
    grid_points: int,
    cryotune_trials: int,
    slots: int,
    lr_range: tuple[float, float],
    depth_range: tuple[int, int],
) -> dict[str, list[EpochEvent]]:
    rng = np.random.default_rng([seed, 7])
    random_points = [
        (
            float(10 ** rng.uniform(math.log10(lr_range[0]), math.log10(lr_range[1]))),
            int(rng.integers(depth_range[0], depth_range[1] + 1)),
        )
        for _ in range(grid_points)
    ]
    return {
        "cryotune": simulate_cryotune(
            model, seed, search, cryotune_trials, slots, lr_range, depth_range
        ),
        "grid": _fixed_trials(model, grid, seed, "grid", slots),
        "random": _fixed_trials(model, random_points, seed, "random", slots),
        "optuna_sequential": simulate_optuna_sequential(
            model, seed, grid_points, lr_range, depth_range
        ),
    }


def compare(
    model: CurveModel,
    seeds: int,
    search: dict,
    grid: list[tuple[float, int]],
    grid_points: int,
    cryotune_trials: int,
    epochs: int,
    slots: int,
    lr_range: tuple[float, float],
    depth_range: tuple[int, int],
    judge: Callable[[dict], dict],
    within_budget: Callable[[list[EpochEvent]], list],
) -> dict:
    """Every strategy on ``seeds`` simulated seeds, judged as the real seeds are."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best = model.best_point()
    per_seed = []
    for seed in range(seeds):
        runs = simulate_seed(
            model, seed, search, grid, grid_points, cryotune_trials, slots, lr_range, depth_range
        )
        counted = {name: within_budget(events) for name, events in runs.items()}
        verdict = judge(counted)
        oracle = within_budget(_fixed_trials(model, [best] * grid_points, seed, "oracle", slots))
        ceiling = judge({**counted, "cryotune": oracle})
        per_seed.append(
            {
                "seed": seed,
                "ratio": verdict["cryotune_over_grid_epochs"],
                "ratio_met": verdict["ratio_met"],
                "oracle_ratio_met": ceiling["ratio_met"],
                "best_no_worse_than_grid": verdict["best_no_worse_than_grid"],
                "epochs": {k: v["epochs"] for k, v in verdict["strategies"].items()},
                "best": {k: v["best_val_miou"] for k, v in verdict["strategies"].items()},
            }
        )
    names = list(per_seed[0]["epochs"]) if per_seed else []
    return {
        "how": "pure-Python discrete-event simulation (cryotune's sampler recipe, Ray Tune's "
        "ASHA) on kernel-regression curves fitted to this run's complete real trials",
        **model.describe(),
        "seeds": seeds,
        "ratio": spread([s["ratio"] for s in per_seed]),
        "fraction_ratio_met": sum(s["ratio_met"] for s in per_seed) / max(1, len(per_seed)),
        "oracle": {
            "point": {"lr": best[0], "depth": best[1]},
            "fraction_ratio_met": sum(s["oracle_ratio_met"] for s in per_seed)
            / max(1, len(per_seed)),
        },
        "fraction_best_no_worse": sum(s["best_no_worse_than_grid"] for s in per_seed)
        / max(1, len(per_seed)),
        "strategies": {
            name: {
                "epochs_to_target": spread([s["epochs"][name] for s in per_seed]),
                "best_val_miou": spread([s["best"][name] for s in per_seed]),
            }
            for name in names
        },
        "per_seed": per_seed,
    }


def calibration(simulated: dict, real_per_seed: list[dict]) -> dict:
    """Each strategy's best mIoU, mean and spread over seeds, simulated beside real: a model
    whose luck is larger than the real runs' turns the verdict into a lottery."""

    def moments(values: list) -> dict:
        values = [v for v in values if v is not None]
        if not values:
            return {}
        return {
            "mean": round(float(np.mean(values)), 2),
            "sd": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 2),
        }

    out = {}
    for name in simulated.get("strategies", {}):
        out[name] = {
            "simulated": moments([s["best"][name] for s in simulated["per_seed"]]),
            "real": moments([s["strategies"][name]["best_val_miou"] for s in real_per_seed]),
        }
    return out


# ---------------------------------------------------------------------------------------------
# re-simulating a recorded run under other search settings


def simulate_recorded(result: dict, overrides: dict, seeds: int) -> dict:
    """The recorded run's simulation on its own real curves, cryotune's search as recorded less
    ``overrides`` (dotted default.yaml keys, as ``--set`` takes them)."""
    from bench import depth_task
    from bench import time_to_quality_depth as ttqd

    model = fit(result["trial_curves"], result["epoch_cap"], ttqd.TRIAL["val_every"])
    grid = [(lr, d) for lr in result["grid"]["lr"] for d in result["grid"]["depth"]]
    recorded = result["cryotune"]
    budget = result["epoch_budget"]
    search = {**recorded, **{k.split(".")[-1]: v for k, v in overrides.items()}}
    low, high = (round(f * depth_task.BLOCKS) for f in search["depth_fraction_range"])
    out = compare(
        model,
        seeds=seeds,
        search=search,
        grid=grid,
        grid_points=len(grid),
        cryotune_trials=recorded["trials"],
        epochs=result["epoch_cap"],
        slots=result["slots"],
        lr_range=tuple(search["lr_range"]),
        depth_range=(low, high),
        judge=ttqd.judge_seed,
        within_budget=lambda events: ttqd.within_budget(events, budget),
    )
    out["fitted_on_real_seeds"] = len(result.get("per_seed", []))
    out["calibration"] = calibration(out, result.get("per_seed", []))
    return out


def variants(result: dict, settings: list[dict], seeds: int) -> list[dict]:
    """The recorded run's simulation again, once per dict of overrides: how the verdict moves
    with the defaults, the oracle beside."""
    rows = []
    for overrides in [{}, *settings]:
        out = simulate_recorded(result, overrides, seeds)
        reached = sum(s["epochs"]["cryotune"] is not None for s in out["per_seed"])
        rows.append(
            {
                "overrides": overrides or "as recorded",
                "ratio_met": out["fraction_ratio_met"],
                "best_no_worse": out["fraction_best_no_worse"],
                "target_reached": reached / seeds,
                "oracle_ratio_met": out["oracle"]["fraction_ratio_met"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    import argparse
    import json
    from pathlib import Path

    import yaml

    from bench.output import RESULTS

    parser = argparse.ArgumentParser(
        prog="python -m bench.depth_curves",
        description="Re-simulate a recorded depth time-to-quality run under other defaults.",
    )
    parser.add_argument("--result", type=Path, default=RESULTS / "time_to_quality_depth.json")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="default.yaml overrides for one variant, e.g. scheduler.grace_period=10",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="replace the result's simulated half (and verdict) with this simulation of its "
        "own settings; the real seeds stay as recorded",
    )
    args = parser.parse_args(argv)
    if args.write:
        result = rewrite(args.result, args.seeds)
        if args.result.resolve() == (RESULTS / "time_to_quality_depth.json").resolve():
            from bench.table import update_table

            print(f"table updated in {update_table()}")
        return [result]
    settings = [
        {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in variant.split(","))}
        for variant in args.variant
    ]
    rows = variants(json.loads(args.result.read_text()), settings, args.seeds)
    for row in rows:
        print(
            f"{json.dumps(row['overrides']):<70} ratio <= 1/3 on {row['ratio_met']:.0%}, "
            f"target reached {row['target_reached']:.0%}, best >= grid's "
            f"{row['best_no_worse']:.0%} (oracle {row['oracle_ratio_met']:.0%})"
        )
    return rows


def rewrite(path, seeds: int) -> dict:
    """The result at ``path`` with its simulated half computed again (a new curve model)."""
    import json

    from bench import time_to_quality_depth as ttqd

    result = json.loads(path.read_text())
    simulated = simulate_recorded(result, {}, seeds)
    result["simulated"] = simulated
    result["met"] = ttqd.verdict(result)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"simulated again on {simulated['fitted_trials']} real trials: ratio <= 1/3 on "
        f"{simulated['fraction_ratio_met']:.0%} of {seeds} seeds (oracle "
        f"{simulated['oracle']['fraction_ratio_met']:.0%}); met: {result['met']}; wrote {path}"
    )
    return result


if __name__ == "__main__":
    main()
