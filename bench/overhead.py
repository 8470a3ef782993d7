"""Orchestration overhead: many short trials through ``cryotune sweep`` against a plain Ray Tune
``Tuner`` with default settings, both running the same trainer on the same tiny trial.

Each trial is two epochs of two steps of a U-Net on synthetic tiles (about 1.5 s of compute), as
short as a real trial gets (one an early-stopping scheduler ends at its grace period). With a
per-trial overhead x, utilisation is c / (c + x) for trials of c seconds: the one-step trials of
earlier runs (c = 0.7 s) could not reach 0.85 with any x above 0.12 s, however low. In-trial
compute is ``run_trial``'s own time, measured inside the trial in both cases.

- per-trial overhead = (wall x slots - sum of in-trial compute) / trials
- slot utilisation = sum of in-trial compute / (wall x slots)

both over the whole run (Ray start, searcher, study storage, records and tracking included) and
over the steady state (first trial start to last trial end), since a short run is dominated by
the fixed start-up cost.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.output import spread, write_result
from bench.table import Row
from bench.workload import TINY_TRIAL, SweepRun, Workspace, quiet_environment, write_data

NAME = "overhead"
DATASET, MODEL = "glid", "unet"
OVERHEAD_TARGET_S = 0.5
UTILISATION_TARGET = 0.85
EPOCHS = 2


@dataclass(frozen=True)
class Setting(Workspace):
    trials: int


def run_cryotune_sweep(setting: Setting, repeat: int) -> SweepRun:
    spec = setting.cryotune_spec(
        f"overhead-{repeat}.yaml",
        TINY_TRIAL,
        **{
            "scheduler.kind": "none",
            "scheduler.max_epochs": EPOCHS,
            "budget.trials": setting.trials,
        },
    )
    return setting.run_cryotune(f"overhead-{repeat}", [DATASET], spec, repeat, [MODEL])


def run_plain_tune(setting: Setting, repeat: int) -> SweepRun:
    from ray import tune

    trial = setting.trial_config(TINY_TRIAL, DATASET, MODEL, epochs=EPOCHS, seed=repeat)
    space = {"lr": tune.loguniform(1e-6, 1e-3)}
    return setting.run_ray_tune(f"tune-{repeat}", trial, space, setting.trials, repeat)


RUNNERS: dict[str, Callable[[Setting, int], SweepRun]] = {
    "cryotune": run_cryotune_sweep,
    "ray_tune": run_plain_tune,
}


def measure(run: SweepRun, slots: int) -> dict:
    trials = len(run.trials)
    busy = sum(t.compute_s for t in run.trials)
    first_start = min(t.ended_at - t.compute_s for t in run.trials)
    last_end = max(t.ended_at for t in run.trials)
    window = last_end - first_start
    return {
        "trials": trials,
        "wall_s": round(run.wall_s, 3),
        "busy_s": round(busy, 3),
        "mean_trial_compute_s": round(busy / trials, 3),
        "overhead_per_trial_s": round((run.wall_s * slots - busy) / trials, 3),
        "utilisation": round(busy / (run.wall_s * slots), 3),
        "startup_s": round(first_start, 3),
        "teardown_s": round(run.wall_s - last_end, 3),
        "steady_overhead_per_trial_s": round((window * slots - busy) / trials, 3),
        "steady_utilisation": round(busy / (window * slots), 3),
    }


FIGURES = (
    "overhead_per_trial_s",
    "utilisation",
    "steady_overhead_per_trial_s",
    "steady_utilisation",
    "startup_s",
    "wall_s",
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench overhead", description=__doc__)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 4 trials")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.repeats = 4, 1
    quiet_environment()
    runs: dict[str, list[dict]] = {name: [] for name in RUNNERS}
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-overhead-") as tmp:
        work = Path(tmp)
        data_root = write_data(work / "data", (DATASET,), 8, 32)
        setting = Setting(data_root=data_root, work=work, slots=args.slots, trials=args.trials)
        for repeat in range(args.repeats):
            for name, runner in RUNNERS.items():
                print(f"overhead repeat {repeat}: {name}", flush=True)
                runs[name].append(measure(runner(setting, repeat), args.slots))
    summary = {
        name: {figure: spread([r[figure] for r in rows]) for figure in FIGURES}
        for name, rows in runs.items()
    }
    ours = summary["cryotune"]
    met = {
        "overhead": ours["steady_overhead_per_trial_s"]["max"] < OVERHEAD_TARGET_S,
        "utilisation": ours["steady_utilisation"]["min"] >= UTILISATION_TARGET,
        "overhead_whole_run": ours["overhead_per_trial_s"]["max"] < OVERHEAD_TARGET_S,
        "utilisation_whole_run": ours["utilisation"]["min"] >= UTILISATION_TARGET,
    }
    result = {
        "benchmark": NAME,
        "trial": f"{DATASET}/{MODEL}, {EPOCHS} epochs of {TINY_TRIAL['max_steps_per_epoch']} "
        "steps (batch 4, 32 px), 4 val tiles",
        "trials": args.trials,
        "slots": args.slots,
        "repeats": args.repeats,
        "target": f"overhead < {OVERHEAD_TARGET_S} s per trial, utilisation >= "
        f"{UTILISATION_TARGET} (every repeat, steady state)",
        "met": met,
        "summary": summary,
        "runs": runs,
        "quick": args.quick,
    }
    path = write_result(NAME, result, args.out)
    for name, row in summary.items():
        print(
            f"{name:<9} overhead/trial {row['overhead_per_trial_s']['values']} s "
            f"(steady {row['steady_overhead_per_trial_s']['values']}), utilisation "
            f"{row['utilisation']['values']} (steady {row['steady_utilisation']['values']})"
        )
    print(f"met: {met}; wrote {path}")
    return result


def row(result: dict) -> Row:
    s = result["summary"]

    def median(name: str, figure: str) -> str:
        return f"{s[name][figure].get('median', '-')}"

    figures = "; ".join(
        f"{name}: {median(name, 'steady_overhead_per_trial_s')} s/trial, utilisation "
        f"{median(name, 'steady_utilisation')} (whole run incl. {median(name, 'startup_s')} s "
        f"start: {median(name, 'overhead_per_trial_s')} s, {median(name, 'utilisation')})"
        for name in s
    )
    return Row(
        compared=f"{result['trials']} trials of ~"
        f"{result['runs']['cryotune'][0]['mean_trial_compute_s']:.1f} s on "
        f"{result['slots']} slots: cryotune vs plain Ray Tune Tuner (defaults)",
        figures=f"median, steady state: {figures}",
        target=result["target"],
        met=result["met"]["overhead"] and result["met"]["utilisation"],
        spread=f"{result['repeats']} repeats; cryotune steady s/trial "
        f"{s['cryotune']['steady_overhead_per_trial_s']['values']}",
    )


if __name__ == "__main__":
    main()
