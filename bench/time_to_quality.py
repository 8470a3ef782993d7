"""Time to quality: epochs and wall time each search strategy needs to come within 1 mIoU point
of the best validation mIoU any strategy found, on the same pair, data, epoch cap and total
budget in epochs (the grid's: every grid point trained to the cap), per seed.

Strategies (all train the same U-Net from scratch on the same synthetic GLID tiles, ``slots``
trials at once unless said otherwise):

- ``cryotune``: ``cryotune sweep`` with sweeps/default.yaml's TPE + ASHA (lr log-uniform over the
  grid's range, 3 random startup trials, grace 4 epochs, reduction factor 3, the first 3 trials
  stopped at the grace period as ASHA's bootstrap probes), as many trials as fit the budget; its
  epochs beyond the budget are not counted. Epoch 2 of these tiny epochs (2 steps each) is still
  at chance for every learning rate, epoch 4 tells them apart, hence the grace period.
- ``grid``: sweeps/lr-grid.yaml's learning-rate grid, every point trained to the epoch cap, as a
  plain Ray Tune ``grid_search`` (the Cryo-Bench protocol).
- ``random``: as many random log-uniform learning rates as the grid has points, no early stopping
  (plain Ray Tune).
- ``optuna_sequential``: a plain Optuna loop (default TPE sampler, ``study.optimize``) training one
  trial after another without early stopping, as terratorch-iterate runs.

Epochs count every validated epoch of every trial, in the order they finished, up to and including
the first epoch that reached the target; wall time is measured from the strategy's start (its Ray
start included) to that epoch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.output import plot_path, spread, write_result
from bench.table import Row
from bench.workload import (
    SWEEPS,
    TINY_TRIAL,
    EpochEvent,
    SweepRun,
    Workspace,
    quiet_environment,
    write_data,
)

NAME = "time_to_quality"
DATASET, MODEL = "glid", "unet"
TOLERANCE = 1.0  # mIoU points
TARGET_RATIO = 1 / 3  # cryotune's epochs over the grid's
TRAIN_TILES, TILE_PX = 16, 32


@dataclass(frozen=True)
class Setting(Workspace):
    epochs: int
    cryotune_trials: int
    grid: tuple[float, ...]
    grace: int
    reduction_factor: int
    startup_trials: int
    bootstrap_trials: int

    @property
    def budget(self) -> int:
        """Every strategy's epochs: the grid's, every point trained to the cap."""
        return len(self.grid) * self.epochs

    @property
    def lr_range(self) -> tuple[float, float]:
        return min(self.grid), max(self.grid)

    def trial(self, seed: int) -> dict:
        return self.trial_config(TINY_TRIAL, DATASET, MODEL, self.epochs, seed)


def run_cryotune_strategy(setting: Setting, seed: int) -> SweepRun:
    low, high = setting.lr_range
    spec = setting.cryotune_spec(
        f"cryotune-{seed}.yaml",
        TINY_TRIAL,
        **{
            "space.lr": {"low": low, "high": high},
            "sampler.startup_trials": setting.startup_trials,
            "scheduler.grace_period": setting.grace,
            "scheduler.reduction_factor": setting.reduction_factor,
            "scheduler.bootstrap_trials": setting.bootstrap_trials,
            "scheduler.max_epochs": setting.epochs,
            "budget.trials": setting.cryotune_trials,
        },
    )
    return setting.run_cryotune(f"ttq-{seed}", [DATASET], spec, seed, [MODEL])


def run_grid(setting: Setting, seed: int) -> SweepRun:
    from ray import tune

    space = {"lr": tune.grid_search(list(setting.grid))}
    return setting.run_ray_tune(f"grid-{seed}", setting.trial(seed), space, 1, seed)


def run_random(setting: Setting, seed: int) -> SweepRun:
    from ray import tune

    space = {"lr": tune.loguniform(*setting.lr_range)}
    samples = len(setting.grid)
    return setting.run_ray_tune(f"random-{seed}", setting.trial(seed), space, samples, seed)


def run_optuna_sequential(setting: Setting, seed: int) -> SweepRun:
    import optuna

    from cryotune.config import TrialConfig
    from cryotune.train.trainer import run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    events: list[EpochEvent] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *setting.lr_range, log=True)
        config = TrialConfig(**{**setting.trial(seed), "lr": lr})
        result = run_trial(
            config,
            on_epoch=lambda e: events.append(
                EpochEvent(str(trial.number), e.epoch, e.val_miou, time.time() - started)
            ),
        )
        return result.best_val_miou

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=len(setting.grid))
    return SweepRun(wall_s=time.time() - started, epochs=events, trials=[], records=[])


STRATEGIES: dict[str, Callable[[Setting, int], SweepRun]] = {
    "cryotune": run_cryotune_strategy,
    "grid": run_grid,
    "random": run_random,
    "optuna_sequential": run_optuna_sequential,
}


def finish_order(events: list[EpochEvent]) -> list[EpochEvent]:
    return sorted(events, key=lambda e: (e.at, e.trial, e.epoch))


def within_budget(run: SweepRun, budget: int) -> SweepRun:
    """``run`` cut to its first ``budget`` epochs in the order they finished."""
    kept = finish_order(run.epochs)[:budget]
    return SweepRun(wall_s=run.wall_s, epochs=kept, trials=run.trials, records=run.records)


def reach(run: SweepRun, target: float) -> dict:
    """Epochs and seconds until the first epoch at or above ``target`` (None: never)."""
    ordered = finish_order(run.epochs)
    best = max((e.val_miou for e in ordered), default=None)
    out = {"epochs": None, "seconds": None, "total_epochs": len(ordered), "best_val_miou": best}
    for count, event in enumerate(ordered, start=1):
        if event.val_miou >= target:
            out.update(epochs=count, seconds=round(event.at, 2))
            break
    out["wall_s"] = round(run.wall_s, 2)
    return out


def curve(run: SweepRun) -> list[tuple[int, float]]:
    """Best validation mIoU so far against epochs spent."""
    best, points = float("-inf"), []
    for count, event in enumerate(finish_order(run.epochs), start=1):
        best = max(best, event.val_miou)
        points.append((count, round(best, 2)))
    return points


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(per_seed: list[dict]) -> dict:
    summary = {}
    for name in STRATEGIES:
        runs = [s["strategies"][name] for s in per_seed]
        summary[name] = {
            "epochs_to_target": spread([r["epochs"] for r in runs]),
            "seconds_to_target": spread([r["seconds"] for r in runs]),
            "total_epochs": spread([r["total_epochs"] for r in runs]),
            "wall_s": spread([r["wall_s"] for r in runs]),
        }
    epochs_ratio = [
        ratio(s["strategies"]["cryotune"]["epochs"], s["strategies"]["grid"]["epochs"])
        for s in per_seed
    ]
    budget_ratio = [
        ratio(s["strategies"]["cryotune"]["epochs"], s["strategies"]["grid"]["total_epochs"])
        for s in per_seed
    ]
    reached = [r for r in epochs_ratio if r is not None]
    met = len(reached) == len(epochs_ratio) and max(reached) <= TARGET_RATIO
    return {
        "strategies": summary,
        "cryotune_over_grid_epochs_to_target": spread(epochs_ratio),
        "cryotune_to_target_over_grid_budget": spread(budget_ratio),
        "target": f"cryotune epochs to target <= {TARGET_RATIO:.2f} x the grid's, every seed",
        "met": met,
    }


def plot(per_seed: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(per_seed), 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(per_seed), squeeze=False)[0]
    for ax, seed_result in zip(axes, per_seed, strict=True):
        for name, points in seed_result["curves"].items():
            if points:
                xs, ys = zip(*points, strict=True)
                ax.step(xs, ys, where="post", label=name)
        ax.axhline(seed_result["target"], color="grey", linestyle=":", label="target")
        ax.set_title(f"seed {seed_result['seed']}")
        ax.set_xlabel("epochs spent (all trials)")
        ax.set_ylabel("best val mIoU so far")
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench time_to_quality", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=32, help="epoch cap of every trial")
    parser.add_argument(
        "--cryotune-trials",
        type=int,
        default=None,
        help="trials cryotune may start (default: 5 x the grid's points); its epochs beyond the "
        "grid's total are not counted",
    )
    parser.add_argument("--grace", type=int, default=4, help="ASHA grace period (epochs)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA reduction factor")
    parser.add_argument("--startup-trials", type=int, default=3, help="TPE random startup trials")
    parser.add_argument(
        "--bootstrap-trials", type=int, default=3, help="trials stopped at the grace period first"
    )
    parser.add_argument("--slots", type=int, default=2, help="trials at once")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 2-3 trials each")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_environment()
    from cryotune.sweep.spec import load_spec

    grid = load_spec(SWEEPS / "lr-grid.yaml").space.lr.grid
    if args.quick:
        args.seeds, args.epochs, args.cryotune_trials, grid = 1, 2, 3, grid[-2:]
        args.grace, args.bootstrap_trials = 1, 1
    trials = args.cryotune_trials or 5 * len(grid)
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-ttq-") as tmp:
        work = Path(tmp)
        data_root = write_data(work / "data", (DATASET,), tiles=TRAIN_TILES, size=TILE_PX)
        setting = Setting(
            data_root=data_root,
            work=work,
            slots=args.slots,
            epochs=args.epochs,
            cryotune_trials=trials,
            grid=tuple(grid),
            grace=args.grace,
            reduction_factor=args.reduction_factor,
            startup_trials=args.startup_trials,
            bootstrap_trials=args.bootstrap_trials,
        )
        for seed in range(args.seeds):
            runs = {}
            for name, strategy in STRATEGIES.items():
                print(f"time_to_quality seed {seed}: {name}", flush=True)
                runs[name] = within_budget(strategy(setting, seed), setting.budget)
            best = max(e.val_miou for run in runs.values() for e in run.epochs)
            target = best - TOLERANCE
            per_seed.append(
                {
                    "seed": seed,
                    "best_val_miou_any": round(best, 2),
                    "target": round(target, 2),
                    "strategies": {name: reach(run, target) for name, run in runs.items()},
                    "curves": {name: curve(run) for name, run in runs.items()},
                }
            )
    result = {
        "benchmark": NAME,
        "pair": f"{DATASET}/{MODEL} (random init), synthetic {TILE_PX} px tiles: {TRAIN_TILES} "
        f"train, {TRAIN_TILES // 2} val",
        "epoch_cap": args.epochs,
        "slots": args.slots,
        "grid": list(grid),
        "epoch_budget": setting.budget,
        "cryotune": {
            "trials": trials,
            "grace": args.grace,
            "reduction_factor": args.reduction_factor,
            "startup_trials": args.startup_trials,
            "bootstrap_trials": args.bootstrap_trials,
        },
        "tolerance_miou": TOLERANCE,
        **summarise(per_seed),
        "per_seed": per_seed,
        "quick": args.quick,
    }
    path = write_result(NAME, result, args.out)
    plot(per_seed, plot_path(NAME, args.quick, args.out))
    for name, row in result["strategies"].items():
        print(
            f"{name:<18} epochs to target {row['epochs_to_target']['values']} "
            f"seconds {row['seconds_to_target']['values']}"
        )
    print(f"met: {result['met']}; wrote {path}")
    return result


def _median(summary: dict) -> str:
    return "-" if "median" not in summary else f"{summary['median']:g}"


def row(result: dict) -> Row:
    strategies = result["strategies"]
    figures = "; ".join(
        f"{name}: {_median(s['epochs_to_target'])} epochs / "
        f"{_median(s['seconds_to_target'])} s ({s['epochs_to_target']['reached']} reached)"
        for name, s in strategies.items()
    )
    ratios = result["cryotune_over_grid_epochs_to_target"]
    return Row(
        compared=f"{result['pair']}; epochs to within {result['tolerance_miou']:g} mIoU of the "
        f"best any strategy found (cap {result['epoch_cap']} epochs/trial, "
        f"{result['epoch_budget']} epochs in all per strategy, {result['slots']} slots; "
        f"cryotune: ASHA grace {result['cryotune']['grace']}, "
        f"{result['cryotune']['bootstrap_trials']} bootstrap probes)",
        figures=f"median over seeds: {figures}; cryotune/grid epochs {ratios['values']}",
        target=result["target"],
        met=result["met"],
        spread=f"{len(result['per_seed'])} seeds; cryotune epochs "
        f"{strategies['cryotune']['epochs_to_target']['values']}, grid "
        f"{strategies['grid']['epochs_to_target']['values']}",
    )


if __name__ == "__main__":
    main()
