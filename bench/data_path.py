"""Tiles/s into a training loop: the tile cache vs decoding the GeoTIFFs in every epoch.

Both paths feed the same SegmentationData-shaped batches (every band mapped, normalised, whole
tiles as the U-Net trains on them) through a torch DataLoader, on synthetic GLD-like 10-band tiles
written to a temp folder. The cached path is the trainer's own: ``training_loader`` over
SegmentationData, which gathers each batch straight from the cache; the baseline is what a user's
plain Dataset does, rasterio reads item by item, stacked by the default collate.
The first epoch of either path also fills the OS page cache (a trial trains for tens of epochs),
so the speedup is given over all epochs and over the epochs after the first (steady state); the
paths alternate epoch by epoch so load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from bench.output import spread, write_result
from bench.table import Row
from cryotune.data.bands import ANY_BANDS, BandMapping, map_bands
from cryotune.data.cache import TileCache
from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.data.layouts import list_pairs
from cryotune.data.normalize import normalize_sample
from cryotune.data.readers import read_sample
from cryotune.data.segmentation import SegmentationData, training_loader
from cryotune.data.synth import write_synthetic

NAME = "data_path"
TARGET = 20.0


class ReaderData(Dataset):
    """The baseline: every item decodes its GeoTIFFs with rasterio and normalises them."""

    def __init__(self, spec: DatasetSpec, root: Path, mapping: BandMapping):
        self.spec, self.mapping = spec, mapping
        self.pairs = list_pairs(spec, root, "train")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        sample = normalize_sample(self.spec, read_sample(self.spec, *self.pairs[i]))
        mask = torch.from_numpy(sample.pop("mask"))
        return {"inputs": self.mapping.apply(sample), "mask": mask}


def _epoch_rate(loader: DataLoader) -> float:
    started, seen = time.perf_counter(), 0
    for batch in loader:
        seen += batch["mask"].shape[0]
    return seen / (time.perf_counter() - started)


def _overall(rates: list[float]) -> float:
    """Tiles/s over several equal-size epochs: the harmonic mean of the epoch rates."""
    return statistics.harmonic_mean(rates)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench data_path", description=__doc__)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 tiles of 64 px, 2 epochs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.tiles, args.size, args.epochs = 40, 64, 2
    torch.set_num_threads(1)
    spec = get_dataset("gld")
    mapping = map_bands(spec, ANY_BANDS, "unet")
    rates: dict[str, list[float]] = {"reader": [], "cached": []}
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-") as tmp:
        root = write_synthetic("gld", Path(tmp) / "gld", tiles=args.tiles, size=args.size)
        started = time.perf_counter()
        split = TileCache(Path(tmp) / "cache").open(spec, root, "train")
        build_s = time.perf_counter() - started
        reader = ReaderData(spec, root, mapping)
        loaders = {
            "reader": DataLoader(
                reader,
                batch_size=args.batch_size,
                shuffle=True,
                drop_last=len(reader) >= args.batch_size,
                num_workers=args.workers,
            ),
            "cached": training_loader(
                SegmentationData(split, mapping, crop_size=None, train=True),
                args.batch_size,
                num_workers=args.workers,
                generator=torch.Generator().manual_seed(0),
            ),
        }
        for _ in range(args.epochs):
            for name, loader in loaders.items():
                rates[name].append(_epoch_rate(loader))
    overall = {name: _overall(r) for name, r in rates.items()}
    steady = {name: _overall(r[1:] or r) for name, r in rates.items()}
    per_epoch = [c / r for c, r in zip(rates["cached"], rates["reader"], strict=True)]
    result = {
        "benchmark": NAME,
        "tiles": args.tiles,
        "size_px": args.size,
        "bands": 10,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "torch_threads": 1,
        "cache_build_s": round(build_s, 3),
        "reader_tiles_per_s": round(overall["reader"], 1),
        "cached_tiles_per_s": round(overall["cached"], 1),
        "speedup": round(overall["cached"] / overall["reader"], 2),
        "steady_reader_tiles_per_s": round(steady["reader"], 1),
        "steady_cached_tiles_per_s": round(steady["cached"], 1),
        "steady_speedup": round(steady["cached"] / steady["reader"], 2),
        "speedup_per_epoch": spread(per_epoch),
        "reader_epochs_tiles_per_s": [round(r, 1) for r in rates["reader"]],
        "cached_epochs_tiles_per_s": [round(r, 1) for r in rates["cached"]],
        "target": f"cached / rasterio tiles per s >= {TARGET:g} over all epochs",
        "met": overall["cached"] / overall["reader"] >= TARGET,
        "quick": args.quick,
    }
    print(f"{'path':<28}{'tiles/s':>10}{'after epoch 1':>16}")
    print(f"{'rasterio every epoch':<28}{overall['reader']:>10.1f}{steady['reader']:>16.1f}")
    print(f"{'tile cache (memmap)':<28}{overall['cached']:>10.1f}{steady['cached']:>16.1f}")
    print(
        f"speedup x{result['speedup']} (x{result['steady_speedup']} after epoch 1); cache build "
        f"{build_s:.2f} s for {args.tiles} tiles; met: {result['met']}"
    )
    write_result(NAME, result, args.out)
    return result


def row(result: dict) -> Row:
    return Row(
        compared=f"tiles/s through a DataLoader: the trainer's (batches gathered from the tile "
        f"cache) vs rasterio reads item by item every epoch "
        f"({result['tiles']} ten-band {result['size_px']} px tiles, batch "
        f"{result['batch_size']}, {result['num_workers']} workers, {result['epochs']} epochs)",
        figures=f"{result['cached_tiles_per_s']:g} vs {result['reader_tiles_per_s']:g} tiles/s: "
        f"x{result['speedup']:g} (after epoch 1: x{result['steady_speedup']:g})",
        target=result["target"],
        met=result["met"],
        spread=f"per-epoch speedups {result['speedup_per_epoch']['values']}",
    )


if __name__ == "__main__":
    main()
