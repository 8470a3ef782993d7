"""A real trial of a ViT-B encoder with UPerNet at 224 px (bf16 autocast on CUDA) on synthetic
224 px tiles: step time, images/s and peak memory of cryotune's training loop, against a bare
PyTorch loop over the same model, data and optimizer, plus one whole ``run_trial`` (validation,
checkpoints and test included).

Both loops run the same number of steps after the same warm-up; their order alternates per round
so clock boosts and allocator state do not favour one. Overhead = cryotune step / bare step - 1.
``--device cpu --quick`` is a smoke check of the harness on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from bench.output import spread, write_result
from bench.table import Row

NAME = "gpu_trainer"
DATASET = "glid"
BARE_DESCRIPTION = "model(inputs) under autocast, masked cross-entropy, AdamW step"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cryotune_step_s(trial, runtime) -> float:
    """Seconds per step of the trainer's own ``train_epoch`` (its loader, transfers, autocast,
    loss, optimizer and LR schedule) over one epoch of ``steps_per_epoch`` steps."""
    from cryotune.train.trainer import train_epoch

    _sync(runtime.device)
    started = time.perf_counter()
    train_epoch(trial, runtime)
    _sync(runtime.device)
    return (time.perf_counter() - started) / trial.steps_per_epoch


def bare_step_s(
    model, optimizer, loader, device: torch.device, steps: int, ignore_index: int
) -> float:
    """Seconds per step of a plain loop over ``steps`` batches: batches to the device, bf16
    autocast on CUDA, mean cross-entropy over labelled pixels, ``optimizer`` (AdamW)."""
    model.train()
    cuda = device.type == "cuda"
    _sync(device)
    started = time.perf_counter()
    for step, batch in enumerate(loader):
        if step >= steps:
            break
        inputs = {k: v.to(device, non_blocking=True) for k, v in batch["inputs"].items()}
        mask = batch["mask"].to(device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.float(), mask, ignore_index=ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench gpu_trainer", description=__doc__)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--model", default="vit", help="encoder key (default: ViT-B baseline)")
    parser.add_argument("--size", type=int, default=224, help="tile and crop size in px")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per loop")
    parser.add_argument("--quick", action="store_true", help="32 px, batch 2, 2 steps, 2 rounds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size, args.steps, args.rounds = 32, 2, 2, 2

    from torch.utils.data import DataLoader

    from cryotune.config import TrialConfig
    from cryotune.data.synth import write_synthetic
    from cryotune.models.segmenter import build_segmenter
    from cryotune.train.trainer import Runtime, prepare_trial, run_trial, select_device

    device = select_device(args.device)
    runtime = Runtime(device)
    if runtime.cuda:
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-gpu-") as tmp:
        tiles = args.batch_size * args.steps
        root = write_synthetic(DATASET, Path(tmp) / DATASET, tiles=tiles, size=args.size)
        config = TrialConfig(
            dataset=DATASET,
            model=args.model,
            weights="random",
            data_root=str(root),
            cache_dir=str(Path(tmp) / "cache"),
            crop_size=args.size,
            batch_size=args.batch_size,
            epochs=2,
            max_steps_per_epoch=args.steps,
            device=args.device,
        )
        trial = prepare_trial(config, runtime)
        spec = trial.spec
        bare_model = build_segmenter(config, spec).model.to(device)
        bare_loader = DataLoader(
            trial.train_loader.dataset,
            batch_size=args.batch_size,
            shuffle=True,
            drop_last=True,
            pin_memory=runtime.cuda,
        )
        bare_optimizer = torch.optim.AdamW(
            [p for p in bare_model.parameters() if p.requires_grad], lr=1e-4
        )
        loops = {
            "cryotune": partial(cryotune_step_s, trial, runtime),
            "bare": partial(
                bare_step_s,
                bare_model,
                bare_optimizer,
                bare_loader,
                device,
                args.steps,
                spec.ignore_index,
            ),
        }
        for name in loops:  # warm-up: cudnn autotuning, allocator, page cache
            loops[name]()
        times: dict[str, list[float]] = {name: [] for name in loops}
        if runtime.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for round_ in range(args.rounds):
            order = list(loops) if round_ % 2 == 0 else list(reversed(loops))
            for name in order:
                times[name].append(loops[name]())
        ours, bare = times["cryotune"], times["bare"]
        peak_both_mb = runtime.peak_memory_mb()
        del trial, bare_model, bare_optimizer, loops
        if runtime.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        whole = run_trial(config, checkpoint_dir=Path(tmp) / "trial")
        whole_s = time.perf_counter() - started
    step_ours, step_bare = statistics.median(ours), statistics.median(bare)
    card = torch.cuda.get_device_name(device) if runtime.cuda else "cpu (no GPU)"
    result = {
        "benchmark": NAME,
        "card": card,
        "device": str(device),
        "precision": runtime.precision,
        "model": f"{args.model} + UPerNet, random weights, depth {whole.info.get('depth')}",
        "trainable_parameters": whole.info.get("trainable_params"),
        "size_px": args.size,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "cryotune_step_s": spread(ours),
        "bare_step_s": spread(bare),
        "cryotune_images_per_s": round(args.batch_size / step_ours, 1),
        "bare_images_per_s": round(args.batch_size / step_bare, 1),
        "trainer_overhead": round(step_ours / step_bare - 1, 4),
        "overhead_per_round": spread([o / b - 1 for o, b in zip(ours, bare, strict=True)]),
        "bare_loop": BARE_DESCRIPTION,
        "peak_memory_mb_both_models": None if peak_both_mb is None else round(peak_both_mb, 1),
        "trial_peak_memory_mb": whole.history[-1].peak_memory_mb if whole.history else None,
        "trial_seconds": round(whole_s, 2),
        "trial_epochs": len(whole.history),
        "trial_val_miou": round(whole.best_val_miou, 2),
        "target": "recorded on a lent GPU (a CPU or --quick run counts as not run)",
        "met": True if runtime.cuda and not args.quick else None,
        "quick": args.quick,
    }
    print(
        f"{card}: cryotune {step_ours * 1000:.1f} ms/step ({result['cryotune_images_per_s']} img/s)"
        f", bare {step_bare * 1000:.1f} ms/step ({result['bare_images_per_s']} img/s), overhead "
        f"{result['trainer_overhead']:+.1%}; trial {whole_s:.1f} s, peak "
        f"{result['trial_peak_memory_mb']} MB"
    )
    print(f"wrote {write_result(NAME, result, args.out)}")
    return result


def row(result: dict) -> Row:
    return Row(
        compared=f"{result['model']} at {result['size_px']} px, batch {result['batch_size']}, "
        f"{result['precision']} on {result['card']}: cryotune trainer vs bare PyTorch loop",
        figures=f"{result['cryotune_images_per_s']} vs {result['bare_images_per_s']} img/s "
        f"(median step {result['cryotune_step_s'].get('median')} vs "
        f"{result['bare_step_s'].get('median')} s), overhead {result['trainer_overhead']:+.1%}; "
        f"trial peak memory {result['trial_peak_memory_mb']} MB",
        target=result["target"],
        met=result["met"],
        spread=f"{result['rounds']} rounds; overhead per round "
        f"{result['overhead_per_round']['values']}",
    )


if __name__ == "__main__":
    main()
