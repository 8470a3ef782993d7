from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from cryotune.data.check import check_dataset
from cryotune.data.datasets import get_dataset
from cryotune.data.layouts import list_pairs
from cryotune.data.normalize import normalize_sample
from cryotune.data.readers import read_raster, read_sample
from cryotune.errors import DataError


def _write(path: Path, data: np.ndarray, driver: str = "GTiff") -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver=driver,
            height=data.shape[1],
            width=data.shape[2],
            count=data.shape[0],
            dtype=data.dtype.name,
        ) as dst:
            dst.write(data)


def test_glid_pairs_by_sorted_order_and_uses_only_the_first_three_bands(synth_copy):
    root = synth_copy("glid")
    spec = get_dataset("glid")
    image, mask = list_pairs(spec, root, "train")[0]
    assert image.name.startswith("img_") and mask.name.startswith("mask_")
    rgb = read_raster(image)
    nir = np.full((1, *rgb.shape[1:]), 7, dtype=np.uint8)
    _write(image, np.concatenate([rgb, nir]))
    sample = read_sample(spec, image, mask)
    assert np.array_equal(sample["optical"], rgb.astype(np.float32))
    assert check_dataset("glid", root).ok


def test_gld_band_6_is_sar_and_the_rest_optical(synth_root):
    spec = get_dataset("gld")
    image, mask = list_pairs(spec, synth_root("gld"), "val")[0]
    raw = read_raster(image).astype(np.float32)
    sample = read_sample(spec, image, mask)
    assert np.array_equal(sample["sar"][0], raw[6])
    assert np.array_equal(sample["optical"], raw[[0, 1, 2, 3, 4, 5, 7, 8, 9]])


def test_caffe_labels_as_raw_codes_or_class_ids_decode_alike_and_zones_names_pair(synth_copy):
    spec = get_dataset("caffe")
    root = synth_copy("caffe")
    image, mask = list_pairs(spec, root, "train")[0]
    raw = read_raster(mask)
    assert set(np.unique(raw)) <= {0, 64, 127, 254}
    from_raw = read_sample(spec, image, mask)["mask"]
    ids = np.select([raw == 64, raw == 127, raw == 254], [1, 2, 3], 0).astype(np.uint8)
    zones = mask.with_name(mask.stem + "_zones.png")
    mask.unlink()
    _write(zones, ids, "PNG")
    assert list_pairs(spec, root, "train")[0] == (image, zones)
    assert np.array_equal(read_sample(spec, image, zones)["mask"], from_raw)
    assert set(np.unique(from_raw)) <= {0, 1, 2, 3}
    assert check_dataset("caffe", root).ok


def test_caffe_grey_png_feeds_sar_and_the_fallback_rgb(synth_root):
    spec = get_dataset("caffe")
    image, mask = list_pairs(spec, synth_root("caffe"), "val")[0]
    sample = read_sample(spec, image, mask)
    assert sample["sar"].shape[0] == 1
    assert all(np.array_equal(band, sample["sar"][0]) for band in sample["optical"])


def test_sicd_nan_reads_as_zero_and_mask_keeps_ignore_255(synth_root):
    spec = get_dataset("sicd")
    pairs = list_pairs(spec, synth_root("sicd"), "train")
    raws = [read_raster(image) for image, _ in pairs]
    samples = [read_sample(spec, image, mask) for image, mask in pairs]
    assert any(np.isnan(r).any() for r in raws)
    for raw, sample in zip(raws, samples):
        assert raw.shape[0] == 3
        assert not np.isnan(sample["sar"]).any() and not np.isnan(sample["optical"]).any()
        assert np.all(sample["sar"][np.isnan(raw[:2])] == 0)
        assert np.all(sample["optical"][np.isnan(raw)] == 0)
    assert any((s["mask"] == 255).any() for s in samples)


def test_shelf_image_is_scaled_to_unit_range_and_mask_is_value_above_zero(synth_root):
    spec = get_dataset("shelf")
    image, mask = list_pairs(spec, synth_root("shelf"), "test")[0]
    sample = read_sample(spec, image, mask)
    assert 0 <= sample["optical"].min() and sample["optical"].max() <= 1
    assert np.allclose(sample["optical"], read_raster(image) / 255, atol=1e-6)
    assert np.array_equal(sample["mask"], (read_raster(mask)[0] > 0).astype(np.int64))


def test_normalisation_uses_the_spec_statistics(synth_root):
    spec = get_dataset("glid")
    sample = read_sample(spec, *list_pairs(spec, synth_root("glid"), "train")[0])
    normed = normalize_sample(spec, sample)
    mean = np.array(spec.modality("optical").mean, dtype=np.float32)[:, None, None]
    std = np.array(spec.modality("optical").std, dtype=np.float32)[:, None, None]
    assert np.allclose(normed["optical"], (sample["optical"] - mean) / std, atol=1e-6)
    assert normed["mask"] is sample["mask"]
    assert normed["optical"].dtype == np.float32


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_shelf_png_is_converted_to_grey(tmp_path, synth_copy, channels):
    spec = get_dataset("shelf")
    root = synth_copy("shelf")
    image, mask = list_pairs(spec, root, "train")[0]
    rgb = np.stack([np.full((32, 32), v, np.uint8) for v in (200, 100, 50, 255)[:channels]])
    _write(image, rgb, "PNG")
    grey = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert np.allclose(read_sample(spec, image, mask)["optical"], grey, atol=1e-5)


def test_truncated_png_raises_instead_of_returning_garbage_rows(synth_copy):
    root = synth_copy("caffe")
    image = root / "images" / "train" / "caffe_train_0000.png"
    read_raster(image)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"caffe_train_0000.png: unreadable or corrupt.*truncated"):
        read_raster(image)
    problems = {i.path: i.problem for i in check_dataset("caffe", root).issues}
    assert "truncated PNG" in problems[str(image)]
