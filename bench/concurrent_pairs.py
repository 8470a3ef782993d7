"""Concurrent pairs: one ``cryotune sweep`` of two (dataset, model) pairs on shared slots against
two sweeps of one pair each, one after the other, on the same slots.

Both pairs are a U-Net on synthetic tiles (GLID and CaFFe), searched with sweeps/default.yaml's
TPE + ASHA, the same trials per pair, seeds and slots either way. Each sweep is a ``cryotune
sweep`` command, as a user runs it, and its wall time is the command's whole time (imports and Ray
start included: once for the shared sweep, once per sweep when one after the other).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.output import spread, write_result
from bench.table import Row
from bench.workload import TINY_TRIAL, Workspace, quiet_environment, write_data

NAME = "concurrent_pairs"
DATASETS = ("glid", "caffe")
MODEL = "unet"
TARGET_RATIO = 0.7


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench concurrent_pairs", description=__doc__)
    parser.add_argument("--trials", type=int, default=4, help="trials per pair")
    parser.add_argument("--epochs", type=int, default=3, help="epoch cap of a trial")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 2 trials of 1 epoch")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.repeats = 2, 1, 1
    quiet_environment()
    together, apart = [], []
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-pairs-") as tmp:
        work = Path(tmp)
        data_root = write_data(work / "data", DATASETS, tiles=8, size=32)
        space = Workspace(data_root, work, args.slots)
        spec = space.cryotune_spec(
            "pairs.yaml",
            TINY_TRIAL,
            **{
                "scheduler.grace_period": 1,
                "scheduler.reduction_factor": 2,
                "scheduler.max_epochs": args.epochs,
                "sampler.startup_trials": 2,
                "budget.trials": args.trials,
            },
        )

        def sweep(name: str, datasets: list[str], seed: int) -> float:
            return space.run_cryotune_command(name, datasets, spec, seed, [MODEL])

        for repeat in range(args.repeats):
            print(f"concurrent_pairs repeat {repeat}", flush=True)
            together.append(sweep(f"both-{repeat}", list(DATASETS), repeat))
            apart.append(sum(sweep(f"{d}-{repeat}", [d], repeat) for d in DATASETS))
    ratios = [t / a for t, a in zip(together, apart, strict=True)]
    result = {
        "benchmark": NAME,
        "pairs": [f"{d}/{MODEL}" for d in DATASETS],
        "trials_per_pair": args.trials,
        "epoch_cap": args.epochs,
        "slots": args.slots,
        "repeats": args.repeats,
        "together_wall_s": spread(together),
        "one_after_another_wall_s": spread(apart),
        "wall_ratio": spread(ratios),
        "target": f"wall ratio together / one after another <= {TARGET_RATIO} (every repeat)",
        "met": max(ratios) <= TARGET_RATIO,
        "quick": args.quick,
    }
    path = write_result(NAME, result, args.out)
    print(
        f"together {result['together_wall_s']['values']} s, one after another "
        f"{result['one_after_another_wall_s']['values']} s, ratio {result['wall_ratio']['values']}"
    )
    print(f"met: {result['met']}; wrote {path}")
    return result


def row(result: dict) -> Row:
    return Row(
        compared=f"{' + '.join(result['pairs'])}, {result['trials_per_pair']} trials each "
        f"(ASHA, cap {result['epoch_cap']} epochs), {result['slots']} slots: one sweep of both "
        "vs two sweeps one after the other",
        figures=f"median wall {result['together_wall_s']['median']} s vs "
        f"{result['one_after_another_wall_s']['median']} s, ratio "
        f"{result['wall_ratio']['median']}",
        target=result["target"],
        met=result["met"],
        spread=f"{result['repeats']} repeats; ratios {result['wall_ratio']['values']}",
    )


if __name__ == "__main__":
    main()
