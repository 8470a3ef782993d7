"""Tiles/s into a training loop: the tile cache vs decoding the GeoTIFFs in every epoch.

Both paths feed the same SegmentationData-shaped items (every band mapped, normalised, full
tiles) through a torch DataLoader, on synthetic GLD-like 10-band tiles written to a temp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from cryotune.data.bands import ANY_BANDS, BandMapping, map_bands
from cryotune.data.cache import TileCache
from cryotune.data.datasets import DatasetSpec, get_dataset
from cryotune.data.layouts import list_pairs
from cryotune.data.normalize import normalize_sample
from cryotune.data.readers import read_sample
from cryotune.data.segmentation import SegmentationData
from cryotune.data.synth import write_synthetic

RESULTS = Path(__file__).parent / "results" / "data_path.json"


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


def _tiles_per_s(data: Dataset, epochs: int, batch_size: int, workers: int) -> tuple[float, list]:
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers)
    per_epoch = []
    for _ in range(epochs):
        started, seen = time.perf_counter(), 0
        for batch in loader:
            seen += batch["mask"].shape[0]
        per_epoch.append(seen / (time.perf_counter() - started))
    total = epochs * len(data)
    return total / sum(len(data) / r for r in per_epoch), per_epoch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.data_path", description=__doc__)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = get_dataset("gld")
    mapping = map_bands(spec, ANY_BANDS, "unet")
    with tempfile.TemporaryDirectory(prefix="cryotune-bench-") as tmp:
        root = write_synthetic("gld", Path(tmp) / "gld", tiles=args.tiles, size=args.size)
        started = time.perf_counter()
        split = TileCache(Path(tmp) / "cache").open(spec, root, "train")
        build_s = time.perf_counter() - started
        cached = SegmentationData(split, mapping, crop_size=None, train=True)
        reader = ReaderData(spec, root, mapping)
        reader_rate, reader_epochs = _tiles_per_s(
            reader, args.epochs, args.batch_size, args.workers
        )
        cached_rate, cached_epochs = _tiles_per_s(
            cached, args.epochs, args.batch_size, args.workers
        )
    result = {
        "tiles": args.tiles,
        "size_px": args.size,
        "bands": 10,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "cache_build_s": round(build_s, 3),
        "reader_tiles_per_s": round(reader_rate, 1),
        "cached_tiles_per_s": round(cached_rate, 1),
        "speedup": round(cached_rate / reader_rate, 2),
        "reader_epochs_tiles_per_s": [round(r, 1) for r in reader_epochs],
        "cached_epochs_tiles_per_s": [round(r, 1) for r in cached_epochs],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads 1",
    }
    print(f"{'path':<28}{'tiles/s':>10}")
    print(f"{'rasterio every epoch':<28}{reader_rate:>10.1f}")
    print(f"{'tile cache (memmap)':<28}{cached_rate:>10.1f}")
    print(f"speedup x{result['speedup']}; cache build {build_s:.2f} s for {args.tiles} tiles")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".json.tmp")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(args.out)
    return result


if __name__ == "__main__":
    main()
