from __future__ import annotations

import numpy as np
import pytest

from cryotune.data.cache import TileCache
from cryotune.data.datasets import get_dataset
from cryotune.data.fewshot import class_ratio_strata, fewshot_indices, stratified_subset
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


def cryobench_subset(class_distributions: np.ndarray, fraction: float, seed: int) -> list[int]:
    """A transcription of Cryo-Bench's ``bin_class_distributions`` and ``balance_seg_indices``
    (pangaea-bench/pangaea/utils/subset_sampler.py, strategy "stratified", 3 bins), with the
    global generator seeded as its ``fix_seed`` seeds it."""
    np.random.seed(seed)
    bin_edges = np.linspace(0, 1, 3 + 1)[1]
    binned = np.ceil(class_distributions / bin_edges).astype(int) - 1
    combined = np.apply_along_axis(lambda row: "".join(map(str, row)), axis=1, arr=binned)
    indices_per_bin: dict[str, list[int]] = {}
    for idx, bin_id in enumerate(combined):
        indices_per_bin.setdefault(bin_id, []).append(idx)
    selected = []
    for indices in indices_per_bin.values():
        num_to_select = int(max(1, len(indices) * fraction))
        selected.extend(np.random.choice(indices, num_to_select, replace=False))
    return sorted(int(i) for i in selected)


def test_strata_put_absent_classes_apart_and_match_cryobench_edges():
    ratios = np.array([[1.0, 0.0], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [0.5, 0.5], [0.0, 1.0]])
    assert class_ratio_strata(ratios).tolist() == [[2, -1], [1, 0], [0, 1], [1, 1], [-1, 2]]


@pytest.mark.parametrize("fraction", [0.1, 0.25])
@pytest.mark.parametrize("seed", [234, 7])
def test_subset_is_cryobenchs_own_on_the_same_ratios(fraction, seed):
    lakes = _ratios(300, seed=3)
    lakes[:40] = [1.0, 0.0]  # lake-free tiles: their own stratum in Cryo-Bench
    lakes[40:45] = [0.0, 1.0]
    lakes[45:50] = [2 / 3, 1 / 3]
    sea_ice = np.random.default_rng(5).dirichlet(np.full(6, 0.3), size=200)
    sea_ice[:10] = np.eye(6)[np.arange(10) % 6]
    for ratios in (lakes, sea_ice):
        chosen = stratified_subset(ratios, fraction, seed)
        assert chosen.tolist() == cryobench_subset(ratios, fraction, seed)


def test_lake_free_tiles_are_drawn_in_the_same_number_whatever_the_seed():
    ratios = _ratios(400)
    ratios[:120] = [1.0, 0.0]
    counts = {int((stratified_subset(ratios, 0.1, seed) < 120).sum()) for seed in range(20)}
    assert counts == {12}


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
