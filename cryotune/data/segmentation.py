"""The torch Dataset trials train and evaluate on: cached tiles mapped onto encoder inputs.

Training items are random crops of the encoder's input size (tiles smaller than the crop are
padded: zeros in the inputs, the ignore index in the mask); evaluation items are whole tiles or
scenes, which the trainer covers with sliding windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cryotune.data.bands import BandMapping
from cryotune.data.cache import CachedSplit
from cryotune.errors import UsageError


class SegmentationData(Dataset):
    """Items: ``{"inputs": {encoder_modality: float32 (C, h, w)}, "mask": int64 (h, w)}``.

    Crops draw from torch's RNG, so ``torch.manual_seed`` and DataLoader worker seeding make
    them reproducible.
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

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        i = self.indices[k]
        if self.train and self.crop_size is not None:
            sample = self._random_crop(i, self.crop_size)
        else:
            sample = self.split.sample(i, self.modalities)
        mask = torch.from_numpy(sample.pop("mask"))
        return {"inputs": self.mapping.apply(sample), "mask": mask}

    def _random_crop(self, i: int, size: int) -> dict[str, np.ndarray]:
        h, w = self.split.shape(i)
        ch, cw = min(size, h), min(size, w)
        top = int(torch.randint(0, h - ch + 1, ()).item())
        left = int(torch.randint(0, w - cw + 1, ()).item())
        sample = self.split.sample(i, self.modalities, window=(top, left, ch, cw))
        if (ch, cw) == (size, size):
            return sample
        pad = ((0, size - ch), (0, size - cw))
        out = {n: np.pad(a, ((0, 0), *pad)) for n, a in sample.items() if n != "mask"}
        out["mask"] = np.pad(sample["mask"], pad, constant_values=self.ignore_index)
        return out
