"""Normalise with the spec's per-band statistics: ``(x - mean) / std``, so zero is the mean.

Encoder bands a dataset lacks are later filled with zeros, which is the mean after this step.
"""

from __future__ import annotations

import numpy as np

from cryotune.data.datasets import ChannelPlan, DatasetSpec


def _standardise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    shape = (len(mean), 1, 1)
    mu = np.asarray(mean, dtype=np.float32).reshape(shape)
    sd = np.asarray(std, dtype=np.float32).reshape(shape)
    return ((x - mu) / sd).astype(np.float32, copy=False)


def normalize_channels(plan: ChannelPlan, channels: np.ndarray) -> np.ndarray:
    """Normalise channels decoded for ``plan`` (the tile cache's layout)."""
    return _standardise(channels, plan.mean, plan.std)


def normalize_sample(spec: DatasetSpec, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A new Sample with every modality normalised; the mask is passed through."""
    out = {}
    for name, value in sample.items():
        if name == "mask":
            out[name] = value
        else:
            m = spec.modality(name)
            out[name] = _standardise(value, m.mean, m.std)
    return out
