"""Few-shot training subsets drawn with Cryo-Bench's (PANGAEA's) stratified scheme.

Each sample's class-ratio vector (ignore pixels excluded) is binned into ``num_bins`` equal bins
per class; from every combination of bins the same fraction is drawn, at least one sample.
Only the training split is ever subsampled.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cryotune.errors import UsageError


def stratified_subset(
    class_ratios: np.ndarray, fraction: float, seed: int, num_bins: int = 3
) -> np.ndarray:
    """Sorted indices of the subset; the same inputs always give the same subset.

    As in PANGAEA, ``int(max(1, n * fraction))`` samples per bin combination. Unlike
    PANGAEA's ``np.digitize``, a ratio of exactly 1.0 falls into the top bin instead of a
    fourth one.
    """
    if not 0 < fraction <= 1:
        raise UsageError(f"label fraction must be in (0, 1]; got {fraction}")
    ratios = np.asarray(class_ratios, dtype=np.float64)
    if ratios.ndim != 2:
        raise UsageError(f"class_ratios must be (samples, classes); got shape {ratios.shape}")
    if fraction == 1:
        return np.arange(len(ratios))
    bins = np.clip(np.floor(ratios * num_bins), 0, num_bins - 1).astype(np.int64)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, row in enumerate(bins):
        groups[tuple(row.tolist())].append(index)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for combination in sorted(groups):
        members = groups[combination]
        count = int(max(1, len(members) * fraction))
        chosen += rng.choice(members, size=count, replace=False).tolist()
    return np.sort(np.asarray(chosen, dtype=np.int64))


def fewshot_indices(
    split_name: str, class_ratios: np.ndarray, fraction: float, seed: int
) -> np.ndarray | None:
    """The training subset for ``fraction``; None (use every sample) for val/test or 100%."""
    if split_name != "train" or fraction == 1:
        if not 0 < fraction <= 1:
            raise UsageError(f"label fraction must be in (0, 1]; got {fraction}")
        return None
    return stratified_subset(class_ratios, fraction, seed)
