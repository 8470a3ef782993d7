"""The torch Dataset trials train and evaluate on: cached tiles mapped onto encoder inputs.

Training items are random crops of the encoder's input size (tiles smaller than the crop are
padded: zeros in the inputs, the ignore index in the mask); evaluation items are whole tiles or
scenes, which the trainer covers with sliding windows.

A DataLoader fetches a batch through ``__getitems__``: each tile's window is copied once, straight
from the memory-mapped cache into one preallocated batch tensor per encoder modality, with the
band mapping done as a channel gather during that copy; ``collate_tiles`` passes such a batch
through unchanged. Per-item reads plus stacking would copy every pixel two or three times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from cryotune.data.bands import BandMapping
from cryotune.data.cache import CachedSplit
from cryotune.errors import UsageError

Run = tuple[int, int, int | None]
"""``(first slot, slot count, first stored channel or None for zeros)``: one copy of a gather."""


def _runs(channels: tuple[int | None, ...]) -> tuple[Run, ...]:
    """Group slots whose stored channels are consecutive, so each group is one slice copy."""
    runs: list[list] = []
    for slot, channel in enumerate(channels):
        if runs:
            _, count, first = runs[-1]
            if channel == (None if first is None else first + count):
                runs[-1][1] += 1
                continue
        runs.append([slot, 1, channel])
    return tuple((s, n, c) for s, n, c in runs)


def _fill_margin(out, h: int, w: int, value: float) -> None:
    """Fill what lies below row ``h`` or right of column ``w``: the padding of a short window."""
    if h < out.shape[-2]:
        out[..., h:, :] = value
    if w < out.shape[-1]:
        out[..., :h, w:] = value


class TileBatch(Sequence):
    """A batch gathered in one go: ``collate_tiles`` returns ``batch`` as is.

    As a sequence its items are views of the batch, so torch's ``default_collate`` (a plain
    DataLoader) still stacks it into the same batch.
    """

    def __init__(self, batch: dict):
        self.batch = batch

    def __len__(self) -> int:
        return self.batch["mask"].shape[0]

    def __getitem__(self, b: int) -> dict:
        inputs = {name: x[b] for name, x in self.batch["inputs"].items()}
        return {"inputs": inputs, "mask": self.batch["mask"][b]}


def collate_tiles(data: TileBatch | list) -> dict:
    """DataLoader ``collate_fn``: a gathered TileBatch passes through, a list collates as usual."""
    if isinstance(data, TileBatch):
        return data.batch
    return default_collate(data)


class SegmentationData(Dataset):
    """Items: ``{"inputs": {encoder_modality: float32 (C, h, w)}, "mask": int64 (h, w)}``.

    Crops draw from torch's RNG, item by item in batch order, so ``torch.manual_seed`` and
    DataLoader worker seeding make them reproducible, batched or not.
    """

    def __init__(
        self,
        split: CachedSplit,
        mapping: BandMapping,
        crop_size: int | None,
        train: bool,
        indices: Sequence[int] | None = None,
    ):
        if crop_size is not None and crop_size < 1:
            raise UsageError(f"crop size must be a positive number of pixels; got {crop_size}")
        self.split = split
        self.mapping = mapping
        self.crop_size = crop_size
        self.train = train
        self.indices = list(range(len(split))) if indices is None else [int(i) for i in indices]
        bad = [i for i in self.indices if not 0 <= i < len(split)]
        if bad:
            raise UsageError(f"tile indices {bad[:5]} out of range for {len(split)} tiles")
        self.modalities = mapping.dataset_modalities
        self.ignore_index = split.spec.ignore_index
        self.num_classes = split.spec.num_classes
        stored = mapping.stored_channels(split.modality_channels)
        self._slots = {name: len(channels) for name, channels in stored.items()}
        self._runs = {name: _runs(channels) for name, channels in stored.items()}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        return TileBatch(self._gather([k], self._item_shape(k)))[0]

    def __getitems__(self, ks: Sequence[int]) -> TileBatch | list[dict]:
        """One gathered batch; items of different sizes (whole scenes) come back one by one."""
        shapes = {self._item_shape(k) for k in ks}
        if len(shapes) != 1:
            return [self[k] for k in ks]
        return TileBatch(self._gather(ks, shapes.pop()))

    def _cropped(self) -> bool:
        return self.train and self.crop_size is not None

    def _item_shape(self, k: int) -> tuple[int, int]:
        if self._cropped():
            return self.crop_size, self.crop_size
        return self.split.shape(self.indices[k])

    def _window(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)``: a random crop, or the whole tile for evaluation."""
        if not self._cropped():
            return 0, 0, h, w
        ch, cw = min(self.crop_size, h), min(self.crop_size, w)
        top = int(torch.randint(0, h - ch + 1, ()).item())
        left = int(torch.randint(0, w - cw + 1, ()).item())
        return top, left, ch, cw

    def _gather(self, ks: Sequence[int], shape: tuple[int, int]) -> dict:
        """Copy each item's window from the cache into the batch tensors, padding short tiles."""
        inputs = {
            name: torch.empty((len(ks), slots, *shape), dtype=torch.float32)
            for name, slots in self._slots.items()
        }
        mask = torch.empty((len(ks), *shape), dtype=torch.int64)
        arrays = {name: x.numpy() for name, x in inputs.items()}
        mask_array = mask.numpy()
        for b, k in enumerate(ks):
            tile, tile_mask = self.split.tile(self.indices[k])
            top, left, ch, cw = self._window(*tile_mask.shape)
            rows, cols = slice(top, top + ch), slice(left, left + cw)
            for name, runs in self._runs.items():
                out = arrays[name][b]
                for slot, count, channel in runs:
                    if channel is None:
                        out[slot : slot + count] = 0
                    else:
                        src = tile[channel : channel + count, rows, cols]
                        out[slot : slot + count, :ch, :cw] = src
                _fill_margin(out, ch, cw, 0)
            mask_array[b, :ch, :cw] = tile_mask[rows, cols]
            _fill_margin(mask_array[b], ch, cw, self.ignore_index)
        return {"inputs": inputs, "mask": mask}


def training_loader(
    data: SegmentationData,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
) -> DataLoader:
    """The loader trials train with (and ``bench.data_path`` measures): shuffled, gathered batches.

    The last short batch is dropped unless the data is smaller than one batch.
    """
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(data) >= batch_size,
        num_workers=num_workers,
        collate_fn=collate_tiles,
        pin_memory=pin_memory,
        generator=generator,
        worker_init_fn=worker_init_fn,
    )


def evaluation_loader(data: SegmentationData, pin_memory: bool = False) -> DataLoader:
    """Batch size 1, in order: val and test items are whole tiles or scenes whose sizes may differ."""
    return DataLoader(
        data, batch_size=1, shuffle=False, collate_fn=collate_tiles, pin_memory=pin_memory
    )
