"""Time to quality where depth matters: learning rate x finetuning depth on a pretrained encoder.

One pair: the benchmark's own pretrained ViT (``bench.depth_task``: 12 blocks, pretrained on a
synthetic multispectral pretext, cached under bench/cache/) finetuned on a different synthetic
segmentation task written as GSDD's real files. Every strategy trains through cryotune's own
trainer (``bench.depth_task.run_trial`` behind ``$CRYOTUNE_TRIAL_RUNNER``) with the protocol's
cadence scaled to a CPU: 25 epochs a trial (an epoch is one step of 8 crops of a tiny training
set), validation every 5 epochs. The budget is the grid's: every grid point trained to the cap.
A probe (``bench.depth_probe``) first records how much depth matters on the task.

- ``cryotune``: ``cryotune sweep`` with sweeps/default.yaml as it stands (TPE over lr
  log-uniform and depth 0..12, its start-up trials, ASHA with its grace period and reduction
  factor on 25 epochs), up to ``--cryotune-trials``; epochs past the budget are not counted.
- ``grid``: the paper's grid, sweeps/lr-grid.yaml: its learning rates x depth {0 (frozen), 12
  (full)}, each to the cap (plain Ray Tune ``grid_search``).
- ``random``: as many random (lr, depth) points of cryotune's space as the grid has, to the cap.
- ``optuna_sequential``: a plain Optuna loop (default TPE) over cryotune's space, one trial at a
  time to the cap, as terratorch-iterate runs.

Epochs spent count every epoch every trial trained (its last validated epoch), in the order the
validations finished. The target, per seed, is the best validation mIoU any strategy found within
the budget less 1 point.

Then the same comparison on simulated curves, over many seeds: ``bench.depth_curves`` fits a
curve model to every complete real trial of this run and replays the four strategies on it in a
discrete-event simulation (cryotune's own sampler recipe and Ray Tune's ASHA), because 50 x 4
real sweeps through Ray would take hours here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import depth_curves, depth_probe, depth_task
from bench.output import plot_path, spread, write_result
from bench.table import Row
from bench.time_to_quality import plot
from bench.workload import SWEEPS, EpochEvent, SweepRun, Workspace, quiet_environment

NAME = "time_to_quality_depth"
DATASET, MODEL = depth_task.DATASET, depth_task.MODEL
TOLERANCE = 1.0
TARGET_RATIO = 1 / 3
SIM_TARGET_FRACTION = 0.9
REPO = Path(__file__).resolve().parents[1]
QUICK_OVERRIDES = {
    "scheduler.grace_period": 5,
    "scheduler.reduction_factor": 2,
    "sampler.startup_trials": 2,
}

# One trial: 25 epochs (the protocol's 80, scaled to this CPU) validated every 5 as the protocol
# does (so default.yaml's ASHA rungs, 5 and 15, fall on validations), an epoch one step of 8 crops.
TRIAL = {
    "weights": "random",  # the driver checks no file; the runner loads the bench checkpoint
    "batch_size": 8,
    "crop_size": depth_task.CROP,
    "max_steps_per_epoch": 1,
    "evaluate_test": False,
    "val_every": 5,
    "device": "cpu",
}


@dataclass(frozen=True)
class Setting(Workspace):
    epochs: int
    cryotune_trials: int
    grid_lrs: tuple[float, ...]
    grid_depths: tuple[int, ...]
    lr_range: tuple[float, float]
    depth_range: tuple[int, int]
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def budget(self) -> int:
        return len(self.grid_lrs) * len(self.grid_depths) * self.epochs

    @property
    def grid_points(self) -> int:
        return len(self.grid_lrs) * len(self.grid_depths)

    def trial(self, seed: int) -> dict:
        return self.trial_config(TRIAL, DATASET, MODEL, self.epochs, seed)


def default_search() -> dict:
    """What sweeps/default.yaml searches with (read, not copied)."""
    from cryotune.sweep.spec import load_spec

    spec = load_spec(SWEEPS / "default.yaml")
    return {
        "lr_range": (spec.space.lr.low, spec.space.lr.high),
        "depth_fraction_range": list(spec.space.depth.fraction_range),
        "startup_trials": spec.sampler.startup_trials,
        "multivariate": spec.sampler.multivariate,
        "constant_liar": spec.sampler.constant_liar,
        "grace_period": spec.scheduler.grace_period,
        "reduction_factor": spec.scheduler.reduction_factor,
        "max_epochs": spec.scheduler.max_epochs,
        "bootstrap_trials": spec.scheduler.bootstrap_trials,
        "metric": spec.scheduler.metric,
    }


def paper_grid() -> tuple[tuple[float, ...], tuple[float, ...]]:
    from cryotune.sweep.spec import load_spec

    spec = load_spec(SWEEPS / "lr-grid.yaml")
    return tuple(spec.space.lr.grid), tuple(spec.space.depth.fractions)


def run_cryotune_strategy(setting: Setting, seed: int) -> SweepRun:
    spec = setting.cryotune_spec(
        f"cryotune-{seed}.yaml",
        TRIAL,
        **{"budget.trials": setting.cryotune_trials, "scheduler.max_epochs": setting.epochs},
        **dict(setting.overrides),
    )
    return setting.run_cryotune(f"depth-{seed}", [DATASET], spec, seed, [MODEL])


def run_grid(setting: Setting, seed: int) -> SweepRun:
    from ray import tune

    space = {
        "lr": tune.grid_search(list(setting.grid_lrs)),
        "depth": tune.grid_search(list(setting.grid_depths)),
    }
    return setting.run_ray_tune(f"grid-{seed}", setting.trial(seed), space, 1, seed)


def run_random(setting: Setting, seed: int) -> SweepRun:
    from ray import tune

    space = {
        "lr": tune.loguniform(*setting.lr_range),
        "depth": tune.randint(setting.depth_range[0], setting.depth_range[1] + 1),
    }
    trial = setting.trial(seed)
    return setting.run_ray_tune(f"random-{seed}", trial, space, setting.grid_points, seed)


def run_optuna_sequential(setting: Setting, seed: int) -> SweepRun:
    import optuna

    from cryotune.config import TrialConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.time()
    events: list[EpochEvent] = []
    params: dict[str, dict] = {}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *setting.lr_range, log=True)
        depth = trial.suggest_int("depth", *setting.depth_range)
        params[str(trial.number)] = {"lr": lr, "depth": depth}
        config = TrialConfig(**{**setting.trial(seed), "lr": lr, "depth": depth})
        result = depth_task.run_trial(
            config,
            on_epoch=lambda e: events.append(
                EpochEvent(str(trial.number), e.epoch, e.val_miou, time.time() - started)
            ),
        )
        return result.best_val_miou

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=setting.grid_points)
    return SweepRun(
        wall_s=time.time() - started, epochs=events, trials=[], records=[], params=params
    )


STRATEGIES: dict[str, Callable[[Setting, int], SweepRun]] = {
    "cryotune": run_cryotune_strategy,
    "grid": run_grid,
    "random": run_random,
    "optuna_sequential": run_optuna_sequential,
}


# ---------------------------------------------------------------------------------------------
# accounting (shared with the simulation)


def spent(events: list[EpochEvent]) -> list[tuple[EpochEvent, int]]:
    """Validations in the order they finished, each with the epochs every trial had trained by
    then (a trial's epochs: its last validated epoch)."""
    last: dict[str, int] = {}
    total, out = 0, []
    for event in sorted(events, key=lambda e: (e.at, e.trial, e.epoch)):
        total += event.epoch - last.get(event.trial, 0)
        last[event.trial] = event.epoch
        out.append((event, total))
    return out


def within_budget(events: list[EpochEvent], budget: int) -> list[tuple[EpochEvent, int]]:
    return [(e, n) for e, n in spent(events) if n <= budget]


def reach(counted: list[tuple[EpochEvent, int]], target: float) -> dict:
    """Epochs (and seconds) until the first validation at or above ``target``; the best found."""
    best = max((e.val_miou for e, _ in counted), default=None)
    out = {
        "epochs": None,
        "seconds": None,
        "best_val_miou": None if best is None else round(best, 2),
    }
    out["total_epochs"] = counted[-1][1] if counted else 0
    for event, total in counted:
        if event.val_miou >= target:
            out.update(epochs=total, seconds=round(event.at, 2))
            break
    return out


def best_so_far(counted: list[tuple[EpochEvent, int]]) -> list[tuple[int, float]]:
    best, points = float("-inf"), []
    for event, total in counted:
        best = max(best, event.val_miou)
        points.append((total, round(best, 2)))
    return points


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def judge_seed(counted: dict[str, list[tuple[EpochEvent, int]]]) -> dict:
    """One seed's verdict: each strategy's epochs to the target and best, cryotune over grid."""
    best = max(e.val_miou for runs in counted.values() for e, _ in runs)
    target = best - TOLERANCE
    reached = {name: reach(runs, target) for name, runs in counted.items()}
    cryo, grid = reached["cryotune"], reached["grid"]
    epochs_ratio = ratio(cryo["epochs"], grid["epochs"])
    if cryo["epochs"] is not None and grid["epochs"] is None:
        epochs_ratio = 0.0  # cryotune reached what the grid never did
    return {
        "best_val_miou_any": round(best, 2),
        "target": round(target, 2),
        "strategies": reached,
        "cryotune_over_grid_epochs": None if epochs_ratio is None else round(epochs_ratio, 3),
        "ratio_met": epochs_ratio is not None and epochs_ratio <= TARGET_RATIO,
        "best_no_worse_than_grid": (cryo["best_val_miou"] or 0) >= (grid["best_val_miou"] or 0),
    }


# ---------------------------------------------------------------------------------------------
# the run


def trial_curves(runs: dict[str, SweepRun], seed: int) -> list[dict]:
    """Every trial of every strategy: its lr, depth and validation curve (the simulation's data)."""
    out = []
    for name, run in runs.items():
        by_trial: dict[str, list[tuple[int, float]]] = {}
        for event in run.epochs:
            by_trial.setdefault(event.trial, []).append((event.epoch, round(event.val_miou, 3)))
        for trial, points in by_trial.items():
            params = run.params.get(trial, {})
            if params.get("lr") is None or params.get("depth") is None:
                continue
            out.append(
                {
                    "strategy": name,
                    "seed": seed,
                    "lr": params["lr"],
                    "depth": int(params["depth"]),
                    "curve": sorted(points),
                }
            )
    return out


def prepare(work: Path, quick: bool, pretrain_steps: int, log=print) -> tuple[Path, dict]:
    """The downstream data under ``work`` and the cached pretrained encoder; the seam set so that
    every trial (cryotune's, Ray Tune's, Optuna's) trains the bench encoder."""
    checkpoint, pretraining = depth_task.checkpoint(pretrain_steps, log=log)
    data_root = work / "data"
    depth_task.write_dataset(data_root / DATASET)
    os.environ["CRYOTUNE_TRIAL_RUNNER"] = "bench.depth_task:run_trial"
    os.environ[depth_task.CHECKPOINT_ENV] = str(checkpoint)
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # Ray workers import bench
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return data_root, {**pretraining, "sha256": depth_task.sha256(checkpoint)[:16]}


def run_real(
    setting: Setting, seeds: int, log=print, after_seed: Callable | None = None
) -> tuple[list[dict], list[dict]]:
    """Every strategy on every seed; ``after_seed(per_seed, curves)`` after each one."""
    per_seed, curves = [], []
    for seed in range(seeds):
        runs, counted = {}, {}
        for name, strategy in STRATEGIES.items():
            log(f"{NAME} seed {seed}: {name}")
            runs[name] = strategy(setting, seed)
            counted[name] = within_budget(runs[name].epochs, setting.budget)
        verdict = judge_seed(counted)
        for name, run in runs.items():
            verdict["strategies"][name]["wall_s"] = round(run.wall_s, 2)
            verdict["strategies"][name]["trials"] = len({e.trial for e in run.epochs})
        best_config = {}
        for name, run in runs.items():
            if run.epochs:
                top = max(run.epochs, key=lambda e: e.val_miou)
                best_config[name] = {**run.params.get(top.trial, {}), "epoch": top.epoch}
        per_seed.append(
            {
                "seed": seed,
                **verdict,
                "best_config": best_config,
                "curves": {name: best_so_far(c) for name, c in counted.items()},
            }
        )
        curves += trial_curves(runs, seed)
        if after_seed is not None:
            after_seed(per_seed, curves)
    return per_seed, curves


def summarise_real(per_seed: list[dict]) -> dict:
    summary = {}
    for name in STRATEGIES:
        rows = [s["strategies"][name] for s in per_seed]
        summary[name] = {
            "epochs_to_target": spread([r["epochs"] for r in rows]),
            "best_val_miou": spread([r["best_val_miou"] for r in rows]),
            "wall_s": spread([r["wall_s"] for r in rows]),
        }
    ratios = [s["cryotune_over_grid_epochs"] for s in per_seed]
    ratio_met = all(s["ratio_met"] for s in per_seed)
    best_met = all(s["best_no_worse_than_grid"] for s in per_seed)
    return {
        "strategies": summary,
        "cryotune_over_grid_epochs": spread(ratios),
        "ratio_met": ratio_met,
        "best_no_worse_than_grid_met": best_met,
    }


def depth_profile(curves: list[dict]) -> dict:
    """Mean best validation mIoU of the complete (cap-length) trials by depth band and lr
    decade: how much depth matters on this task."""
    import math

    bands = {"frozen (0)": (0, 0), "partial (1-11)": (1, 11), "full (12)": (12, 12)}
    table: dict[str, dict[str, float]] = {}
    for label, (low, high) in bands.items():
        row: dict[str, list[float]] = {}
        for c in curves:
            if c["strategy"] == "cryotune" or not low <= c["depth"] <= high:
                continue
            decade = f"1e{math.floor(math.log10(c['lr']) + 0.5)}"
            row.setdefault(decade, []).append(max(v for _, v in c["curve"]))
        table[label] = {k: round(sum(v) / len(v), 1) for k, v in sorted(row.items())}
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog=f"python -m bench {NAME}", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sim-seeds", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=25, help="epoch cap of every trial")
    parser.add_argument(
        "--cryotune-trials",
        type=int,
        default=24,
        help="trials cryotune may start; its epochs past the grid's budget are not counted",
    )
    parser.add_argument("--pretrain-steps", type=int, default=depth_task.PRETRAIN_STEPS)
    parser.add_argument("--slots", type=int, default=2, help="trials at once")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dotted sweeps/default.yaml override for cryotune (e.g. scheduler.grace_period=10), "
        "real and simulated; the defaults as they stand when not given",
    )
    parser.add_argument("--probe-seeds", type=int, default=2, help="0: no probe")
    parser.add_argument(
        "--probe-file",
        type=Path,
        default=None,
        help="a probe recorded by python -m bench.depth_probe --out, recorded instead of running one",
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 12-epoch trials, 5 sim seeds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_environment()

    overrides = dict((k, _value(v)) for k, v in (item.split("=", 1) for item in args.set))
    lrs, fractions = paper_grid()
    probe_lrs, probe_depths = depth_probe.LRS, depth_probe.DEPTHS
    if args.quick:  # 12-epoch trials: ASHA's one rung (5) at the third validation
        args.seeds, args.sim_seeds, args.epochs, args.cryotune_trials = 1, 5, 12, 6
        args.probe_seeds, probe_lrs = min(args.probe_seeds, 1), (1e-3,)
        lrs = lrs[-2:]
        overrides = {**QUICK_OVERRIDES, **overrides}
    search = default_search()
    for key, value in overrides.items():
        search[key.split(".")[-1]] = value
    depths = tuple(sorted({round(f * depth_task.BLOCKS) for f in fractions}))
    low, high = (round(f * depth_task.BLOCKS) for f in search["depth_fraction_range"])
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-ttqd-") as tmp:
        work = Path(tmp)
        data_root, pretraining = prepare(work, args.quick, args.pretrain_steps)
        probe = None
        if args.probe_file is not None:
            probe = {**json.loads(args.probe_file.read_text()), "file": str(args.probe_file)}
        elif args.probe_seeds:
            probe = depth_probe.probe(
                TRIAL,
                data_root / DATASET,
                work / "cache",
                probe_lrs,
                probe_depths,
                args.probe_seeds,
                args.epochs,
            )
            probe["shape"] = depth_probe.shape(probe)
            print(f"{NAME} probe: {probe['mean_best_val_miou']} {probe['shape']}", flush=True)
        setting = Setting(
            data_root=data_root,
            work=work,
            slots=args.slots,
            epochs=args.epochs,
            cryotune_trials=args.cryotune_trials,
            grid_lrs=lrs,
            grid_depths=depths,
            lr_range=tuple(search["lr_range"]),
            depth_range=(low, high),
            overrides=tuple(overrides.items()),
        )
        context = {
            "args": args,
            "setting": setting,
            "search": search,
            "overrides": overrides,
            "pretraining": pretraining,
            "probe": probe,
            "lrs": lrs,
            "depths": depths,
            "started": started,
        }

        def partial(per_seed: list[dict], curves: list[dict]) -> None:
            # a run cut short still leaves its finished seeds (simulation after the first only)
            if len(per_seed) < args.seeds and len(per_seed) == 1:
                report(context, per_seed, curves, final=False)
            elif len(per_seed) < args.seeds:
                report(context, per_seed, curves, final=False, simulated=None)

        per_seed, curves = run_real(setting, args.seeds, after_seed=partial)
    return report(context, per_seed, curves, final=True)


_LAST_SIMULATED: dict = {}


def report(context, per_seed, curves, final: bool, simulated: object = "run") -> dict:
    """The result of the seeds done so far: written, plotted, printed."""
    args, setting, search = context["args"], context["setting"], context["search"]
    lrs, depths = context["lrs"], context["depths"]
    real_s = time.time() - context["started"]
    if simulated == "run":
        model = depth_curves.fit(curves, args.epochs, TRIAL["val_every"])
        simulated = depth_curves.compare(
            model,
            seeds=args.sim_seeds,
            search=search,
            grid=[(lr, d) for lr in lrs for d in depths],
            grid_points=setting.grid_points,
            cryotune_trials=args.cryotune_trials,
            epochs=args.epochs,
            slots=args.slots,
            lr_range=setting.lr_range,
            depth_range=setting.depth_range,
            judge=judge_seed,
            within_budget=lambda events: within_budget(events, setting.budget),
        )
        simulated["fitted_on_real_seeds"] = len(per_seed)
        simulated["calibration"] = depth_curves.calibration(simulated, per_seed)
        _LAST_SIMULATED.clear()
        _LAST_SIMULATED.update(simulated)
    else:
        simulated = dict(_LAST_SIMULATED)
    result = {
        "benchmark": NAME,
        "pair": f"{DATASET} layout, synthetic debris task ({depth_task.TRAIN_TILES} train tiles "
        f"of {depth_task.TRAIN_SIZE} px, {depth_task.CROP} px crops; {depth_task.VAL_TILES} val "
        f"tiles of {depth_task.CROP} px) / bench ViT 12 x {depth_task.EMBED} pretrained on a "
        f"synthetic multispectral pretext (label: {MODEL}), UPerNet "
        f"{depth_task.DECODER_CHANNELS} ch",
        "pretraining": context["pretraining"],
        "probe": context["probe"],
        "load_average": os.getloadavg(),
        "epoch_cap": args.epochs,
        "slots": args.slots,
        "grid": {"lr": list(lrs), "depth": list(depths)},
        "epoch_budget": setting.budget,
        "cryotune": {"trials": args.cryotune_trials, **search, "overrides": context["overrides"]},
        "tolerance_miou": TOLERANCE,
        "seeds_planned": args.seeds,
        "seeds_done": len(per_seed),
        "complete": final,
        "real": {**summarise_real(per_seed), "seconds": round(real_s, 1)},
        "depth_profile": depth_profile(curves),
        "simulated": simulated,
        "met": None,
        "per_seed": per_seed,
        "trial_curves": curves,
        "quick": args.quick,
    }
    real = result["real"]
    result["met"] = verdict(result)
    path = write_result(NAME, result, args.out)
    plot(per_seed, plot_path(NAME, args.quick, args.out))
    for name, row in real["strategies"].items():
        print(
            f"{name:<18} epochs to target {row['epochs_to_target']['values']} "
            f"best {row['best_val_miou']['values']}"
        )
    print(
        f"cryotune/grid epochs {real['cryotune_over_grid_epochs']['values']}; simulated: "
        f"{simulated.get('fraction_ratio_met', 0):.2f} of {simulated.get('seeds')} seeds within "
        f"{TARGET_RATIO:.2f}; met: {result['met']}; wrote {path}",
        flush=True,
    )
    return result


def verdict(result: dict) -> bool:
    """Met: every real seed's ratio and best, and the simulated fraction, on a complete run."""
    real, simulated = result["real"], result["simulated"] or {}
    return bool(
        result["complete"]
        and real["ratio_met"]
        and real["best_no_worse_than_grid_met"]
        and simulated.get("fraction_ratio_met", 0) >= SIM_TARGET_FRACTION
    )


def _value(text: str):
    import yaml

    return yaml.safe_load(text)


def _seeds(result: dict) -> str:
    done, planned = result.get("seeds_done", len(result["per_seed"])), result.get("seeds_planned")
    if result.get("complete", True) or planned is None:
        return str(done)
    return f"{done} of {planned} (run cut short: verdict on the full run only)"


def _median(summary: dict) -> str:
    return "-" if "median" not in summary else f"{summary['median']:g}"


def _probe(probe: dict | None) -> str:
    """The probe's table in a line: does depth matter on this task?"""
    if not probe:
        return ""
    cells = "; ".join(
        f"lr {lr}: " + ", ".join(f"depth {d} {v:g}" for d, v in row.items())
        for lr, row in probe["mean_best_val_miou"].items()
    )
    return f"probe, mean best mIoU over {probe['seeds']} seeds: {cells}; "


def _ceiling(sim: dict) -> str:
    """The oracle's fraction and the simulated bests beside the real ones (older results lack
    them)."""
    out = ""
    if "oracle" in sim:
        out += "; an oracle at the model's best point: ratio <= 1/3 on "
        out += f"{sim['oracle']['fraction_ratio_met']:.0%}"
    cal = sim.get("calibration", {})
    if cal:
        pairs = ", ".join(
            f"{name} {c['simulated'].get('mean')}/{c['real'].get('mean')}"
            for name, c in cal.items()
        )
        out += f"; mean best, simulated/real: {pairs}"
    return out


def row(result: dict) -> Row:
    real, sim = result["real"], result["simulated"]
    strategies = real["strategies"]
    figures = "; ".join(
        f"{name}: {_median(s['epochs_to_target'])} epochs, best {_median(s['best_val_miou'])} "
        f"({s['epochs_to_target']['reached']} reached)"
        for name, s in strategies.items()
    )
    c = result["cryotune"]
    probe = _probe(result.get("probe"))
    return Row(
        compared=f"{result['pair']}; lr x depth, epochs to within {result['tolerance_miou']:g} "
        f"mIoU of the best any strategy found (cap {result['epoch_cap']} epochs/trial, "
        f"{result['epoch_budget']} epochs per strategy = the grid's "
        f"{len(result['grid']['lr'])} lr x depth {result['grid']['depth']}, {result['slots']} "
        f"slots; cryotune: default.yaml, TPE {c['startup_trials']} start-up trials, ASHA grace "
        f"{c['grace_period']}, rf {c['reduction_factor']}); then {sim['seeds']} seeds on curves "
        f"fitted to this run's {sim['fitted_trials']} complete trials",
        figures=f"{probe}real, median over seeds: {figures}; cryotune/grid epochs "
        f"{real['cryotune_over_grid_epochs']['values']}, cryotune best >= grid's on "
        f"{sum(s['best_no_worse_than_grid'] for s in result['per_seed'])}/"
        f"{len(result['per_seed'])} seeds; simulated: ratio <= 1/3 on "
        f"{sim['fraction_ratio_met']:.0%} of seeds (median {sim['ratio']['median']}), cryotune "
        f"best >= grid's on {sim['fraction_best_no_worse']:.0%}{_ceiling(sim)}",
        target="cryotune epochs to target <= 1/3 of the grid's on every real seed and >= 90% "
        "of simulated seeds; cryotune's best >= the grid's",
        met=result["met"],
        spread=f"{_seeds(result)} real seeds: cryotune epochs "
        f"{strategies['cryotune']['epochs_to_target']['values']}, grid "
        f"{strategies['grid']['epochs_to_target']['values']}; best cryotune "
        f"{strategies['cryotune']['best_val_miou']['values']}, grid "
        f"{strategies['grid']['best_val_miou']['values']}",
    )


if __name__ == "__main__":
    main()
