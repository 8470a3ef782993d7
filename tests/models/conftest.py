"""Model test helpers shared by the segmenter and per-encoder tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from torch import Tensor

from cryotune.data.datasets import get_dataset


def _dataset_batch(built, size: tuple[int, int], batch: int = 2) -> dict[str, Tensor]:
    dataset = get_dataset(built.info["dataset"])
    rng = np.random.default_rng(0)
    sample = {
        m.name: rng.standard_normal((batch, len(m.bands), *size)).astype(np.float32)
        for m in dataset.modalities
    }
    return built.mapping.apply(sample)


@pytest.fixture
def dataset_batch() -> Callable[..., dict[str, Tensor]]:
    """``dataset_batch(built, (h, w), batch=2)``: seeded random tiles of every modality of a
    built segmenter's dataset, fed through its band mapping."""
    return _dataset_batch
