"""Few-shot training subsets drawn exactly as Cryo-Bench's (PANGAEA's) stratified sampler draws them.

Each sample's class-ratio vector (ignore pixels excluded) is binned per class with
``ceil(r / (1/3)) - 1``: a class absent from a sample (r = 0) is a stratum of its own (-1), then
(0, 1/3], (1/3, 2/3], (2/3, 1]. Samples with the same vector of bins form a stratum, and from
every stratum ``int(max(1, n * fraction))`` samples are drawn, strata in order of first
appearance, with numpy's legacy generator seeded by the trial seed, the state PANGAEA's
``fix_seed`` leaves its global generator in. On the same ratios and seed the subset is
Cryo-Bench's own (``pangaea/utils/subset_sampler.py``). Only the training split is subsampled.
"""

from __future__ import annotations

import numpy as np

from cryotune.errors import UsageError

NUM_BINS = 3


def class_ratio_strata(class_ratios: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Per sample and class, the stratum index: -1 for an absent class, else 0..num_bins-1.

    The bin width is computed as PANGAEA computes it (``np.linspace(0, 1, num_bins + 1)[1]``),
    so ratios on a bin edge fall where they fall there.
    """
    width = np.linspace(0, 1, num_bins + 1)[1]
    return np.ceil(np.asarray(class_ratios, dtype=np.float64) / width).astype(np.int64) - 1


def stratified_subset(
    class_ratios: np.ndarray, fraction: float, seed: int, num_bins: int = NUM_BINS
) -> np.ndarray:
    """Sorted indices of the subset; the same inputs always give the same subset."""
    if not 0 < fraction <= 1:
        raise UsageError(f"label fraction must be in (0, 1]; got {fraction}")
    ratios = np.asarray(class_ratios, dtype=np.float64)
    if ratios.ndim != 2:
        raise UsageError(f"class_ratios must be (samples, classes); got shape {ratios.shape}")
    if fraction == 1:
        return np.arange(len(ratios))
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, row in enumerate(class_ratio_strata(ratios, num_bins)):
        groups.setdefault(tuple(row.tolist()), []).append(index)
    rng = np.random.RandomState(seed % 2**32)
    chosen: list[int] = []
    for members in groups.values():
        count = int(max(1, len(members) * fraction))
        chosen += rng.choice(members, count, replace=False).tolist()
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
