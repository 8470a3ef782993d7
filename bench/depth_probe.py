"""Does depth matter on the depth benchmark's task? A few lr x depth points, a couple of seeds.

Run before the comparison (``bench.time_to_quality_depth`` records its table): each point is one
real trial of the bench encoder through cryotune's trainer (``bench.depth_task.run_trial``), in
this process, with the comparison's trial settings; the table is the mean best validation mIoU.
The task is meant to have its optimum at a partial depth and a learning rate inside the paper's
grid, frozen clearly worse and full finetuning at the top learning rate worse than partial.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench import depth_task

LRS = (1e-4, 3e-4, 1e-3)
DEPTHS = (0, 6, 12)


def probe(
    trial: dict,
    data_root: Path,
    cache: Path,
    lrs=LRS,
    depths=DEPTHS,
    seeds: int = 2,
    epochs: int = 25,
    log=print,
) -> dict:
    """Mean best validation mIoU (and per-seed values) at every (lr, depth) point."""
    from cryotune.config import TrialConfig

    started = time.perf_counter()
    table: dict[str, dict[str, list[float]]] = {}
    for lr in lrs:
        for depth in depths:
            bests = []
            for seed in range(seeds):
                config = TrialConfig(
                    **{
                        **trial,
                        "dataset": depth_task.DATASET,
                        "model": depth_task.MODEL,
                        "data_root": str(data_root),
                        "cache_dir": str(cache),
                        "epochs": epochs,
                        "seed": seed,
                        "lr": lr,
                        "depth": depth,
                    }
                )
                bests.append(round(depth_task.run_trial(config).best_val_miou, 2))
            table.setdefault(f"{lr:g}", {})[str(depth)] = bests
            log(f"lr {lr:g} depth {depth}: {bests}")
    means = {
        lr: {d: round(sum(v) / len(v), 1) for d, v in row.items()} for lr, row in table.items()
    }
    best_lr, best_depth = max(
        ((lr, d) for lr, row in means.items() for d in row), key=lambda k: means[k[0]][k[1]]
    )
    return {
        "epochs": epochs,
        "seeds": seeds,
        "mean_best_val_miou": means,
        "per_seed": table,
        "best": {"lr": float(best_lr), "depth": int(best_depth)},
        "seconds": round(time.perf_counter() - started, 1),
    }


def shape(result: dict, blocks: int = depth_task.BLOCKS) -> dict:
    """The intended shape, checked: partial best, frozen clearly worse, full at the top lr worse."""
    means = result["mean_best_val_miou"]
    best = max(v for row in means.values() for v in row.values())
    by_depth = {d: max(row[d] for row in means.values()) for d in next(iter(means.values()))}
    top_lr = max(means, key=float)
    partial = max((v for d, v in by_depth.items() if 0 < int(d) < blocks), default=None)
    return {
        "partial_best": partial is not None and partial == best,
        "frozen_gap": round(best - by_depth["0"], 1),
        "full_gap": round(best - by_depth[str(blocks)], 1),
        "full_at_top_lr_gap": round(best - means[top_lr][str(blocks)], 1),
        "best_lr_inside_grid": result["best"]["lr"] < float(top_lr),
    }


def main(argv: list[str] | None = None) -> dict:
    from bench.time_to_quality_depth import TRIAL

    parser = argparse.ArgumentParser(prog="python -m bench.depth_probe", description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    weights, _ = depth_task.checkpoint()
    os.environ[depth_task.CHECKPOINT_ENV] = str(weights)
    with tempfile.TemporaryDirectory(prefix="cryotune-depth-probe-") as tmp:
        data = depth_task.write_dataset(Path(tmp) / "data" / depth_task.DATASET)
        result = probe(
            TRIAL, data, Path(tmp) / "cache", args.lrs, args.depths, args.seeds, args.epochs
        )
    result["shape"] = shape(result)
    print(json.dumps({k: result[k] for k in ("mean_best_val_miou", "shape", "seconds")}))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
