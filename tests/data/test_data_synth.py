from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning

from cryotune.data.cache import TileCache
from cryotune.data.check import check_dataset
from cryotune.data.datasets import DATASETS, get_dataset
from cryotune.data.layouts import list_pairs
from cryotune.data.readers import read_sample
from cryotune.data.synth import write_synthetic
from cryotune.errors import UsageError

KEYS = tuple(DATASETS)


@pytest.mark.parametrize("key", KEYS)
def test_synthetic_data_passes_check_without_any_warning(synth_root, key):
    report = check_dataset(key, synth_root(key))
    assert report.ok, report.format()
    assert report.issues == []
    assert {s: report.splits[s].tiles for s in ("train", "val", "test")} == {
        "train": 4,
        "val": 2,
        "test": 2,
    }
    assert "OK" in report.format()


@pytest.mark.parametrize("key", KEYS)
def test_synthetic_files_have_the_real_file_type_dtype_and_band_count(synth_root, key):
    spec = get_dataset(key)
    image, mask = list_pairs(spec, synth_root(key), "train")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        src = rasterio.open(image)
    with src:
        assert src.driver == spec.image.driver
        assert src.dtypes[0] == spec.image.dtypes[0]
        assert spec.image.min_bands <= src.count <= (spec.image.max_bands or src.count)
    sample = read_sample(spec, image, mask)
    for m in spec.modalities:
        assert sample[m.name].shape[0] == len(m.bands)
        assert sample[m.name].dtype == np.float32
    assert sample["mask"].dtype == np.int64
    assert set(np.unique(sample["mask"])) <= {*range(spec.num_classes), spec.ignore_index}


@pytest.mark.parametrize("key", KEYS)
def test_synthetic_data_loads_through_the_cache(synth_root, tmp_path, key):
    spec = get_dataset(key)
    views = tuple(m.name for m in spec.modalities)
    split = TileCache(tmp_path).open(spec, synth_root(key), "val", views)
    assert len(split) == 2
    sample = split.sample(0)
    h, w = split.shape(0)
    assert sample["mask"].shape == (h, w)
    for m in spec.modalities:
        assert sample[m.name].shape == (len(m.bands), h, w)


def _miou(pred: np.ndarray, target: np.ndarray, classes: int) -> float:
    ious = []
    for c in range(classes):
        union = np.sum((pred == c) | (target == c))
        if union:
            ious.append(np.sum((pred == c) & (target == c)) / union)
    return float(np.mean(ious))


def _pixels(split, spec):
    xs, ys = [], []
    for i in range(len(split)):
        s = split.sample(i)
        x = np.concatenate([s[m.name] for m in spec.primary_modalities]).reshape(-1, s["mask"].size)
        keep = s["mask"].ravel() != spec.ignore_index
        xs.append(x[:, keep].T)
        ys.append(s["mask"].ravel()[keep])
    return torch.tensor(np.concatenate(xs)), torch.tensor(np.concatenate(ys))


@pytest.mark.parametrize("key", KEYS)
def test_synthetic_classes_are_learnable_well_above_chance(tmp_path, key):
    spec = get_dataset(key)
    root = write_synthetic(key, tmp_path / key, tiles=6, size=32, seed=3)
    cache = TileCache(tmp_path / "cache")
    x, y = _pixels(cache.open(spec, root, "train"), spec)
    vx, vy = _pixels(cache.open(spec, root, "val"), spec)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], spec.num_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    pred = model(vx).argmax(1).numpy()
    majority = np.full_like(vy.numpy(), np.bincount(y.numpy()).argmax())
    learned = _miou(pred, vy.numpy(), spec.num_classes)
    chance = _miou(majority, vy.numpy(), spec.num_classes)
    assert learned > chance + 0.2, (learned, chance)


def test_synth_refuses_a_non_empty_folder_and_bad_sizes(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an empty folder"):
        write_synthetic("glid", tmp_path / "full")
    with pytest.raises(UsageError, match="--tiles"):
        write_synthetic("glid", tmp_path / "a", tiles=0)
    with pytest.raises(UsageError, match="--size"):
        write_synthetic("glid", tmp_path / "b", size=4)


def test_synth_is_deterministic_per_seed(tmp_path):
    spec = get_dataset("gld")
    a = write_synthetic("gld", tmp_path / "a", tiles=1, size=32, seed=5)
    b = write_synthetic("gld", tmp_path / "b", tiles=1, size=32, seed=5)
    sa = read_sample(spec, *list_pairs(spec, a, "train")[0])
    sb = read_sample(spec, *list_pairs(spec, b, "train")[0])
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
