from __future__ import annotations

import numpy as np
import pytest

from cryotune.data.cache import TileCache
from cryotune.data.datasets import get_dataset
from cryotune.data.fewshot import fewshot_indices, stratified_subset
from cryotune.data.synth import write_synthetic
from cryotune.errors import UsageError


def _ratios(n: int, seed: int = 0) -> np.ndarray:
    lake = np.random.default_rng(seed).beta(0.5, 2, size=n)
    return np.stack([1 - lake, lake], axis=1)


def test_same_seed_same_subset_other_seed_other_subset():
    ratios = _ratios(400)
    a = stratified_subset(ratios, 0.1, seed=234)
    assert np.array_equal(a, stratified_subset(ratios, 0.1, seed=234))
    assert not np.array_equal(a, stratified_subset(ratios, 0.1, seed=235))
    assert np.all(np.diff(a) > 0)


def test_each_bin_combination_keeps_its_share_and_at_least_one():
    ratios = np.concatenate([_ratios(400), np.zeros((400, 1))], axis=1)
    ratios[:3] = [0.0, 0.0, 1.0]  # a rare bin combination of 3 tiles
    chosen = stratified_subset(ratios, 0.1, seed=1)
    bins = np.clip(np.floor(ratios * 3), 0, 2).astype(int)
    keys = [tuple(row) for row in bins]
    for combination in set(keys):
        members = [i for i, k in enumerate(keys) if k == combination]
        picked = [i for i in chosen if keys[i] == combination]
        assert len(picked) == int(max(1, len(members) * 0.1))
    assert len([i for i in chosen if i < 3]) == 1


def test_full_fraction_keeps_everything_and_bad_fraction_is_refused():
    assert np.array_equal(stratified_subset(_ratios(10), 1.0, 0), np.arange(10))
    for bad in (0, -0.1, 1.5):
        with pytest.raises(UsageError, match="label fraction"):
            stratified_subset(_ratios(10), bad, 0)


def test_only_the_training_split_is_subsampled(tmp_path):
    spec = get_dataset("gld")
    root = write_synthetic("gld", tmp_path / "gld", tiles=20, size=16, seed=0)
    cache = TileCache(tmp_path / "cache")
    train, val = cache.open(spec, root, "train"), cache.open(spec, root, "val")
    assert train.class_ratios.shape == (20, 2)
    assert np.allclose(train.class_ratios.sum(axis=1), 1)
    subset = fewshot_indices(train.split, train.class_ratios, 0.1, seed=234)
    assert subset is not None and 1 <= len(subset) < 20
    assert fewshot_indices(val.split, val.class_ratios, 0.1, seed=234) is None
    assert fewshot_indices(train.split, train.class_ratios, 1.0, seed=234) is None
