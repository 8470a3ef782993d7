from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from cryotune.data.bands import ANY_BANDS, map_bands
from cryotune.data.cache import TileCache
from cryotune.data.datasets import get_dataset
from cryotune.data.segmentation import (
    SegmentationData,
    TileBatch,
    collate_tiles,
    evaluation_loader,
    training_loader,
)
from cryotune.errors import UsageError

S2_12 = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")


@pytest.fixture
def gld(synth_root, tmp_path):
    spec = get_dataset("gld")
    return TileCache(tmp_path).open(spec, synth_root("gld"), "train")


def test_train_items_are_random_crops_of_the_mapped_tile(gld):
    mapping = map_bands(gld.spec, {"optical": S2_12}, "croma")
    data = SegmentationData(gld, mapping, crop_size=16, train=True)
    torch.manual_seed(0)
    item = data[2]
    assert set(item) == {"inputs", "mask"}
    x, mask = item["inputs"]["optical"], item["mask"]
    assert x.shape == (12, 16, 16) and x.dtype == torch.float32
    assert mask.shape == (16, 16) and mask.dtype == torch.int64
    full = mapping.apply(gld.sample(2))["optical"]
    full_mask = torch.from_numpy(gld.sample(2)["mask"])
    windows = [
        (t, left)
        for t in range(17)
        for left in range(17)
        if torch.equal(full[:, t : t + 16, left : left + 16], x)
        and torch.equal(full_mask[t : t + 16, left : left + 16], mask)
    ]
    assert windows, "the crop is a window of the tile"
    assert x[0].eq(0).all(), "B1 is filled"
    torch.manual_seed(0)
    assert torch.equal(data[2]["inputs"]["optical"], x)


def test_tiles_smaller_than_the_crop_are_padded_with_zeros_and_ignore(gld):
    data = SegmentationData(gld, map_bands(gld.spec, ANY_BANDS, "unet"), 40, train=True)
    item = data[0]
    x, mask = item["inputs"]["all"], item["mask"]
    assert x.shape == (10, 40, 40) and mask.shape == (40, 40)
    assert x[:, 32:, :].eq(0).all() and x[:, :, 32:].eq(0).all()
    assert mask[32:, :].eq(-1).all() and mask[:, 32:].eq(-1).all()
    assert torch.equal(mask[:32, :32], torch.from_numpy(gld.sample(0)["mask"]))


def test_scene_padding_uses_the_dataset_ignore_index(synth_root, tmp_path):
    spec = get_dataset("sicd")
    split = TileCache(tmp_path).open(spec, synth_root("sicd"), "train")
    data = SegmentationData(split, map_bands(spec, {"sar": ("VV", "VH")}, "x"), 64, True)
    for k in range(len(data)):
        h, w = split.shape(k)
        mask = data[k]["mask"]
        assert mask.shape == (64, 64)
        assert mask[h:, :].eq(255).all() and mask[:, w:].eq(255).all()


def test_eval_items_are_whole_tiles_or_scenes(synth_root, tmp_path):
    spec = get_dataset("caffe")
    split = TileCache(tmp_path).open(spec, synth_root("caffe"), "val")
    mapping = map_bands(spec, {"optical": ("B2", "B3", "B4")}, "remoteclip")
    data = SegmentationData(split, mapping, crop_size=16, train=False)
    for k in range(len(data)):
        item = data[k]
        assert item["inputs"]["optical"].shape == (3, *split.shape(k))
        assert torch.equal(item["mask"], torch.from_numpy(split.sample(k)["mask"]))
    assert data.modalities == ("optical",)


def test_indices_select_a_subset_and_batches_collate(gld):
    mapping = map_bands(gld.spec, {"optical": ("B4", "B3", "B2")}, "rgb")
    data = SegmentationData(gld, mapping, 16, True, indices=[3, 1])
    assert len(data) == 2
    batch = next(iter(DataLoader(data, batch_size=2)))
    assert batch["inputs"]["optical"].shape == (2, 3, 16, 16)
    assert batch["mask"].shape == (2, 16, 16)
    eval_data = SegmentationData(gld, mapping, None, False, indices=np.array([1]))
    assert torch.equal(eval_data[0]["mask"], torch.from_numpy(gld.sample(1)["mask"]))
    with pytest.raises(UsageError, match="out of range"):
        SegmentationData(gld, mapping, 16, True, indices=[4])


def _reference(split, mapping, i):
    """An item built the plain way: the cached sample, then BandMapping.apply."""
    sample = split.sample(i, mapping.dataset_modalities)
    mask = torch.from_numpy(sample.pop("mask"))
    return mapping.apply(sample), mask


def _assert_batches_equal(a: dict, b: dict) -> None:
    assert a["inputs"].keys() == b["inputs"].keys()
    for name in a["inputs"]:
        assert torch.equal(a["inputs"][name], b["inputs"][name]), name
    assert torch.equal(a["mask"], b["mask"])


@pytest.mark.parametrize(
    "bands",
    [ANY_BANDS, {"optical": S2_12}, {"optical": ("B4", "B3", "B2"), "sar": ("VV",)}],
    ids=["concatenated", "filled-and-reordered", "two-modalities"],
)
def test_gathered_batches_equal_stacked_items_and_the_plain_mapping(gld, bands):
    mapping = map_bands(gld.spec, bands, "x")
    data = SegmentationData(gld, mapping, 16, train=True)
    torch.manual_seed(3)
    batch = collate_tiles(data.__getitems__([2, 0, 3]))
    torch.manual_seed(3)
    items = [data[k] for k in (2, 0, 3)]
    _assert_batches_equal(batch, default_collate(items))
    whole = SegmentationData(gld, mapping, None, train=False)
    batch = collate_tiles(whole.__getitems__([1, 3]))
    for b, i in enumerate((1, 3)):
        inputs, mask = _reference(gld, mapping, i)
        for name, x in inputs.items():
            assert torch.equal(batch["inputs"][name][b], x)
        assert torch.equal(batch["mask"][b], mask)


def test_a_plain_dataloader_collates_a_gathered_batch_to_the_same_tensors(gld):
    data = SegmentationData(gld, map_bands(gld.spec, {"optical": S2_12}, "x"), 16, True)
    torch.manual_seed(0)
    ours = next(iter(DataLoader(data, batch_size=4, collate_fn=collate_tiles)))
    torch.manual_seed(0)
    plain = next(iter(DataLoader(data, batch_size=4)))
    _assert_batches_equal(ours, plain)
    gathered = data.__getitems__([0, 1])
    assert isinstance(gathered, TileBatch) and len(gathered) == 2
    assert gathered[-1]["mask"].shape == (16, 16)
    with pytest.raises(IndexError):
        gathered[2]


@pytest.mark.parametrize("workers", [0, 2])
def test_training_loader_crops_repeat_under_the_same_seeds(gld, workers):
    data = SegmentationData(gld, map_bands(gld.spec, ANY_BANDS, "unet"), 20, train=True)

    def epoch(seed: int) -> list[dict]:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        return list(training_loader(data, 2, num_workers=workers, generator=generator))

    first, again, other = epoch(5), epoch(5), epoch(6)
    assert len(first) == 2 and first[0]["inputs"]["all"].shape == (2, 10, 20, 20)
    for a, b in zip(first, again, strict=True):
        _assert_batches_equal(a, b)
    assert any(
        not torch.equal(a["inputs"]["all"], b["inputs"]["all"])
        for a, b in zip(first, other, strict=True)
    )


def test_mixed_scene_sizes_batch_as_padded_crops_and_evaluate_whole(synth_root, tmp_path):
    spec = get_dataset("sicd")
    split = TileCache(tmp_path).open(spec, synth_root("sicd"), "train")
    mapping = map_bands(spec, {"sar": ("VH", "VV")}, "x")
    assert len({split.shape(i) for i in range(len(split))}) > 1
    data = SegmentationData(split, mapping, 48, train=True)
    torch.manual_seed(1)
    batch = next(iter(DataLoader(data, batch_size=len(data), collate_fn=collate_tiles)))
    assert batch["inputs"]["sar"].shape == (len(data), 2, 48, 48)
    torch.manual_seed(1)
    _assert_batches_equal(batch, default_collate([data[k] for k in range(len(data))]))

    whole = SegmentationData(split, mapping, 48, train=False)
    for i, item in enumerate(evaluation_loader(whole)):
        inputs, mask = _reference(split, mapping, i)
        assert torch.equal(item["inputs"]["sar"][0], inputs["sar"])
        assert torch.equal(item["mask"][0], mask)
    sizes = {whole.split.shape(i) for i in (0, 1)}
    assert len(sizes) == 2, "the synthetic scenes 0 and 1 differ in size"
    items = whole.__getitems__([0, 1])
    assert isinstance(items, list) and [tuple(x["mask"].shape) for x in items] == [
        split.shape(0),
        split.shape(1),
    ]
